/** The quality commands as a user runs them: calibrate (and its precision map), smooth (then forward on the GPU), report, auto errors. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '#platform';
import { canonicalLinears } from '../../src/model/layout.ts';
import { decodePrecisionMap, makeQuantPlan, modulationLinearNames } from '../../src/model/precision.ts';
import { autoPrecisionMap } from '../../src/model/quality/auto-precision.ts';
import { readCalibration, sensitivityFor } from '../../src/model/quality/calibration.ts';
import { loadHostModel } from '../../src/pipeline/quality.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { maxRelError } from '../helpers/random.ts';
import { FLOAT_MATCH_TOLERANCE } from '../model/helpers.ts';
import { cli, expectOneErrorLine, FIXTURES } from './helpers.ts';

const MODEL = join(FIXTURES, 'transformer.safetensors');
const INPUTS = join(FIXTURES, 'forward.safetensors');

async function readAll(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(await openFileSource(path));
}

describe('flux-w4a4 calibrate / smooth / report', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-quality-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('calibrates, smooths offline, and the smoothed file runs on the GPU with the original float output', async () => {
    const calib = join(dir, 'calib.safetensors');
    const run = await cli('calibrate', '--model', MODEL, '--inputs', INPUTS, '--out', calib, '--absmax-only');
    expect(run.stderr).toContain('input maxima of 44 layers over 1 call(s)');
    expect(run.code).toBe(0);
    const file = await readAll(calib);
    expect(file.metadata['format']).toBe('flux-w4a4-calibration');
    expect(file.names().filter((n) => n.endsWith('.input_absmax'))).toHaveLength(44);
    expect(file.names().some((n) => n.endsWith('.int4_sensitivity'))).toBe(false);
    await file.close();

    // Absmax-only calibration cannot drive auto precision: one clear line, before any GPU work.
    const out = join(dir, 'out.safetensors');
    const auto = await cli('forward', '--model', MODEL, '--inputs', INPUTS, '--out', out, '--precision', 'auto', '--calib', calib);
    expect(expectOneErrorLine(auto, 1)).toContain('sensitivities');
    expect(expectOneErrorLine(await cli('forward', '--model', MODEL, '--inputs', INPUTS, '--out', out, '--precision', 'auto:2'), 2)).toContain('--precision');

    const smoothed = join(dir, 'smoothed.safetensors');
    const smooth = await cli('smooth', '--model', MODEL, '--calib', calib, '--out', smoothed);
    expect(smooth.code).toBe(0);
    const forward = await cli('forward', '--model', smoothed, '--inputs', INPUTS, '--out', out, '--precision', 'float');
    expect(forward.code).toBe(0);
    const [got, golden] = [await readAll(out), await readAll(INPUTS)];
    expect(maxRelError(await got.readFloat32('out'), await golden.readFloat32('out'))).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
    await Promise.all([got.close(), golden.close()]);
  });

  it('reads a precision map file for --precision, and refuses other JSON with one line', async () => {
    const notAMap = join(dir, 'other.json');
    await writeFile(notAMap, '{"layers": {}}');
    const run = await cli('forward', '--model', MODEL, '--inputs', INPUTS, '--out', join(dir, 'x.safetensors'), '--precision', notAMap);
    expect(expectOneErrorLine(run, 1)).toContain('not a precision map');
  });

  it('writes the automatic precision map: the greedy INT8 choice over the measured sensitivities, modulation INT8', async () => {
    const calib = join(dir, 'sens.safetensors');
    const mapPath = join(dir, 'precision-auto.json');
    const run = await cli('calibrate', '--model', MODEL, '--inputs', INPUTS, '--out', calib, '--precision-map', mapPath, '--auto', '0.25');
    expect(run.code).toBe(0);
    const host = await loadHostModel(MODEL);
    const file = await readAll(calib);
    const calibration = await readCalibration(file, host.config);
    await file.close();
    const expected = autoPrecisionMap(host.config, sensitivityFor(calibration)!, 0.25);
    const map = makeQuantPlan(host.config, decodePrecisionMap(JSON.parse(await readFile(mapPath, 'utf8')), mapPath)).layers;
    const blocks = canonicalLinears(host.config).filter((l) => l.role === 'block');
    expect(blocks.map((l) => map.get(l.name))).toEqual(blocks.map((l) => expected.get(l.name)));
    const int8Params = blocks.filter((l) => map.get(l.name) === 'int8').reduce((n, l) => n + l.inFeatures * l.outFeatures, 0);
    const allParams = blocks.reduce((n, l) => n + l.inFeatures * l.outFeatures, 0);
    expect(int8Params).toBeGreaterThan(0);
    expect(int8Params).toBeLessThanOrEqual(0.25 * allParams);
    expect(new Set(modulationLinearNames(host.config).map((name) => map.get(name)))).toEqual(new Set(['int8']));
  });

  it('reports methods as JSON, with the calibration next to the model', async () => {
    const run = await cli('report', '--model', MODEL, '--inputs', INPUTS, '--methods', 'w4a4-regular,auto', '--json');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { rows: { id: string; relativeL2: number; cosine: number; bytesVsW4a4: number }[]; best: { id: string } };
    expect(report.rows.map((r) => r.id)).toEqual(['w4a4-regular', 'auto']);
    expect(report.rows[0]!.relativeL2).toBeCloseTo(0.1914, 3);
    expect(report.rows[1]!.relativeL2).toBeLessThan(report.rows[0]!.relativeL2);
    expect(report.best.id).toBe('auto');
    expect(expectOneErrorLine(await cli('report', '--model', MODEL, '--methods', 'nope'), 2)).toContain('unknown method');
  });
});
