/** `report --adherence` argument errors: one line each, before any GPU work. */
import { describe, expect, it } from 'vitest';
import { cli, expectOneErrorLine } from './helpers.ts';

const DEMO = 'public/models/flux-demo';

describe('flux-w4a4 report --adherence arguments', () => {
  it('rejects unknown methods, bad subsets and group sizes that are not powers of 4', async () => {
    expect(expectOneErrorLine(await cli('report', '--adherence', '--model', DEMO, '--methods', 'fp32,w4a4-smooth'), 2)).toContain('unknown adherence method "w4a4-smooth"');
    expect(expectOneErrorLine(await cli('report', '--adherence', '--model', DEMO, '--subset', '8'), 2)).toContain('--subset must be <single>,<double>');
    expect(expectOneErrorLine(await cli('report', '--adherence', '--model', DEMO, '--subset', '40,2'), 1)).toContain('prompt subset must be 0-32 single');
    expect(expectOneErrorLine(await cli('report', '--adherence', '--model', DEMO, '--group', '128'), 1)).toContain('power of 4');
  });

  it('documents the mode in the command help', async () => {
    const run = await cli('help', 'report');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('report --adherence --model <demo folder>');
    expect(run.stdout).toContain('fp32 always runs as the reference');
  });
});
