import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/pipeline/bench.ts';
import { cli, expectOneErrorLine } from './helpers.ts';

/** One small shape (ours and the three ORT peers) and attention, each run twice, on a CPU-emulated GPU shared with other work. */
const SLOW = 600_000;

// A smoke test that the command runs and prints the shared rows; speeds are read off a `flux-w4a4 bench` run,
// never asserted. The model rows are the shared module's, checked on the bench page (e2e/bench.test.ts).
// A small awkward shape (M odd) keeps the ORT peers quick on SwiftShader; --quick runs the same code at M=256 3072x3072.
describe('flux-w4a4 bench --shape', () => {
  it('prints the f32, W8A8, W4A4 and onnxruntime-web peer rows of one shape, attention and the speed-ups, as JSON too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flux-bench-'));
    try {
      const json = join(dir, 'bench.json');
      const run = await cli('bench', '--shape', '33x256x96', '--repeats', '1', '--model', 'none', '--json', json);
      expect(run.code, run.stderr).toBe(0);
      const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
      expect(report.rows.map((r) => `${r.section} ${r.name}`)).toEqual([
        'linear f32 GEMM',
        'linear W8A8 layer',
        'linear W4A4 layer',
        'quantize W8A8 rotate + quantize',
        'quantize W4A4 rotate + quantize',
        'peer ORT MatMul f32',
        'peer ORT MatMulNBits 4-bit acc 0',
        'peer ORT MatMulNBits 4-bit acc 4',
        'attention attention',
      ]);
      for (const r of report.rows) {
        expect(r.wallMs, r.name).toBeGreaterThan(0);
        // Each printed row carries its kernel, shape and wall time as the JSON has them.
        expect(run.stdout).toMatch(new RegExp(`${r.section}\\s+${r.name.replace(/[+]/g, '\\+')}\\s+${r.shape}`));
      }
      for (const r of report.rows.filter((row) => row.section === 'linear' || row.section === 'peer')) expect(r.gops, r.name).toBeGreaterThan(0);
      // The speed-ups are ratios of the printed rows (never bounded: timings on a shared CPU GPU vary), so a
      // comparison wired to the wrong row fails here.
      const row = (name: string) => report.rows.find((r) => r.name === name)!;
      const w4 = row('W4A4 layer');
      const [comparison] = report.comparisons;
      expect(comparison!.shape).toBe('M=33 256x96');
      expect(comparison!.w4a4VsF32).toBeCloseTo(row('f32 GEMM').wallMs! / w4.wallMs!, 9);
      expect(comparison!.w4a4VsW8a8).toBeCloseTo(row('W8A8 layer').wallMs! / w4.wallMs!, 9);
      const quantize = row('W4A4 rotate + quantize');
      expect(comparison!.quantizeShare).toBeCloseTo((quantize.gpuMs ?? quantize.wallMs!) / (w4.gpuMs ?? w4.wallMs!), 9);
      expect(run.stdout).toContain('f32 / W4A4');
      for (const peer of ['ORT MatMul f32', 'ORT MatMulNBits 4-bit acc 0', 'ORT MatMulNBits 4-bit acc 4']) {
        expect(comparison!.w4a4VsPeers[peer], peer).toBeCloseTo(row(peer).wallMs! / w4.wallMs!, 9);
        expect(run.stdout).toContain(`${peer} / W4A4`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, SLOW);

  it('refuses a malformed shape, or one given with --quick, in one line', async () => {
    expect(expectOneErrorLine(await cli('bench', '--shape', '256x3072'), 2)).toContain('--shape must look like 256x3072x3072');
    expect(expectOneErrorLine(await cli('bench', '--quick', '--shape', '1x32x1'), 2)).toContain('without --quick');
  });
});
