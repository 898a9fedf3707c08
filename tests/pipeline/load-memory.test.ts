/** Streaming load: a multi-shard checkpoint never sits whole in JS memory (measured with a full GC per tensor). */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLUX1_DEFAULTS, type FluxConfig } from '../../src/model/config.ts';
import { encodeSafetensors } from '../../src/weights/safetensors-writer.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { blobSource } from '../../src/weights/sources.ts';
import { ROOT } from '../cli/helpers.ts';
import { randomBflCheckpoint } from '../helpers/flux-checkpoints.ts';

/** Large enough that tensors dominate the JS heap's noise (linear1: 3.7 MB), small enough to load in seconds. */
const CONFIG: FluxConfig = { ...FLUX1_DEFAULTS, hiddenSize: 512, numHeads: 4, mlpHidden: 2048, depthDouble: 2, depthSingle: 4, contextDim: 256, vecDim: 64 };
const SHARDS = 3;
/** The bound: at most about two of the largest tensors above the baseline. */
const LARGEST_TENSORS_HELD = 2.5;

let dir: string;
let tensorCount: number;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flux-load-memory-'));
  const whole = await SafetensorsFile.open(blobSource(new Blob([randomBflCheckpoint(CONFIG, 7) as Uint8Array<ArrayBuffer>])));
  const names = whole.names();
  tensorCount = names.length;
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < SHARDS; s++) {
    const file = `model-0000${s + 1}-of-0000${SHARDS}.safetensors`;
    const part = names.filter((_, i) => i % SHARDS === s);
    const tensors = [];
    for (const name of part) {
      tensors.push({ name, ...(await whole.readTensor(name)) });
      weightMap[name] = file;
    }
    await writeFile(join(dir, file), encodeSafetensors(tensors));
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('streaming load', () => {
  it(`holds at most ${LARGEST_TENSORS_HELD} of the largest tensors in JS memory while loading ${SHARDS} shards`, async () => {
    const probe = join(ROOT, 'tests/helpers/load-memory-probe.ts');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--expose-gc', '--import', 'tsx', probe, join(dir, 'model.safetensors.index.json')], { cwd: ROOT }, (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
      );
    });
    const { peakAboveBaseline, largestTensor, totalBytes, reads } = JSON.parse(stdout) as Record<string, number>;
    expect(largestTensor).toBe((3 * 512 + 2048) * 512 * 2);
    expect(totalBytes).toBeGreaterThan(60e6);
    // Every file tensor read exactly once.
    expect(reads).toBe(tensorCount);
    expect(peakAboveBaseline).toBeLessThanOrEqual(LARGEST_TENSORS_HELD * largestTensor);
  });
});
