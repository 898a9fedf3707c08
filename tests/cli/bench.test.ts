import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers.ts';

// A smoke test that the benchmark command runs and reports what it promises; the speed targets themselves
// are read off a full `flux-w4a4 bench` run, not asserted here.
describe('flux-w4a4 bench --quick', () => {
  it('times the f32, W8A8 and W4A4 layers on one FLUX shape and writes the JSON report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flux-bench-'));
    try {
      const json = join(dir, 'bench.json');
      const run = await cli('bench', '--quick', '--repeats', '1', '--json', json);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('3072x3072');
      const report = JSON.parse(await readFile(json, 'utf8'));
      expect(report.rows).toHaveLength(1);
      const [row] = report.rows;
      expect([row.m, row.k, row.n]).toEqual([256, 3072, 3072]);
      for (const kernel of ['f32', 'w8a8', 'w4a4']) expect(row[kernel].gops, kernel).toBeGreaterThan(0);
      expect(row.w4a4.quantizeShare).toBeGreaterThan(0);
      expect(row.w4a4.quantizeShare).toBeLessThan(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
