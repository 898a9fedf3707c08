import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '#platform';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { maxRelError } from '../helpers/random.ts';
import { FLOAT_MATCH_TOLERANCE } from '../model/helpers.ts';
import { cli, expectOneErrorLine, FIXTURES } from './helpers.ts';

const INPUTS = join(FIXTURES, 'forward.safetensors');

async function readAll(path: string): Promise<Map<string, Float32Array>> {
  const file = await SafetensorsFile.open(await openFileSource(path));
  const out = new Map<string, Float32Array>();
  for (const name of file.names()) out.set(name, await file.readFloat32(name));
  await file.close();
  return out;
}

describe('flux-w4a4 forward', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-forward-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes out and the block streams of the diffusers folder, matching the golden file in fp32', async () => {
    const out = join(dir, 'fp32.safetensors');
    const run = await cli('forward', '--model', join(FIXTURES, 'transformer'), '--inputs', INPUTS, '--out', out, '--precision', 'float', '--intermediates');
    expect(run.stderr).toContain('wrote');
    expect(run.code).toBe(0);
    const [got, golden] = [await readAll(out), await readAll(INPUTS)];
    const expectedNames = ['out', ...[...golden.keys()].filter((n) => n.includes('_blocks.'))];
    expect([...got.keys()].sort()).toEqual(expectedNames.sort());
    for (const name of expectedNames) expect(maxRelError(got.get(name)!, golden.get(name)!), name).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
  });

  it('rejects inputs that lack a reference argument, and unknown layer patterns, with one line', async () => {
    const out = join(dir, 'bad.safetensors');
    const model = join(FIXTURES, 'transformer.safetensors');
    expect(expectOneErrorLine(await cli('forward', '--model', model, '--inputs', model, '--out', out), 1)).toContain('missing input tensor "img"');
    const pattern = await cli('forward', '--model', model, '--inputs', INPUTS, '--out', out, '--int8-layers', 'no_such_layer.*');
    expect(expectOneErrorLine(pattern, 1)).toContain('no_such_layer');
    expect(expectOneErrorLine(await cli('forward', '--model', model, '--out', out), 2)).toContain('--inputs is required');
    expect(expectOneErrorLine(await cli('forward', '--model', model, '--inputs', INPUTS, '--out', out, '--precision', 'w3a3'), 2)).toContain('--precision');
  });
});
