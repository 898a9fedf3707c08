import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, expectOneErrorLine, FIXTURES } from './helpers.ts';

describe('flux-w4a4 decode / sample / generate arguments', () => {
  it('are listed in the help', async () => {
    const run = await cli('--help');
    for (const name of ['decode', 'sample', 'generate']) expect(run.stdout).toContain(name);
  });

  it('a missing flag is a usage error', async () => {
    expect(expectOneErrorLine(await cli('decode', '--inputs', join(FIXTURES, 'decode.safetensors'), '--out', 'x.safetensors'), 2)).toContain('--vae is required');
    expect(expectOneErrorLine(await cli('generate', '--model', 'nowhere', '--out', 'x.png'), 2)).toContain('--prompt is required');
  });

  it('an input without the latent is one error line', async () => {
    const line = expectOneErrorLine(await cli('decode', '--vae', join(FIXTURES, 'vae'), '--inputs', join(FIXTURES, 'forward.safetensors'), '--out', 'x.safetensors'), 1);
    expect(line).toContain('missing input tensor "z"');
  });

  it('a folder without model_index.json is one error line', async () => {
    const line = expectOneErrorLine(await cli('generate', '--model', FIXTURES, '--prompt', 'x', '--out', 'x.png'), 1);
    expect(line).toContain('model_index.json');
  });
});
