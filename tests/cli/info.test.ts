import { copyFile, mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '#platform';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { cli, expectOneErrorLine, FIXTURES } from './helpers.ts';

const TRANSFORMER = join(FIXTURES, 'transformer.safetensors');

describe('flux-w4a4 info', () => {
  let dir: string;
  let names: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flux-w4a4-cli-'));
    const file = await SafetensorsFile.open(await openFileSource(TRANSFORMER));
    names = file.names();
    await file.close();
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('lists every tensor with dtype, shape and bytes, and a total', async () => {
    const run = await cli('info', 'tests/fixtures/flux-tiny-a/transformer.safetensors');
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const lines = run.stdout.trimEnd().split('\n');
    const rows = lines.filter((l) => names.includes(l.split(/\s+/)[0]!));
    expect(rows).toHaveLength(100);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(names);
    expect(rows[0]!.split(/\s{2,}/)).toEqual(['img_in.weight', 'BF16', '[256, 64]', '32768']);
    expect(lines).toContain('metadata: none');
    expect(lines.at(-1)).toBe('total: 100 tensors, 18443392 bytes (17.6 MiB)');
  });

  it('accepts a diffusers component folder', async () => {
    const run = await cli('info', 'tests/fixtures/flux-tiny-a/transformer');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('x_embedder.weight');
    expect(run.stdout.trimEnd().split('\n').at(-1)).toMatch(/^total: 140 tensors, /);
  });

  it('reports a truncated file on one line, exit 1', async () => {
    const copy = join(dir, 'truncated.safetensors');
    await copyFile(TRANSFORMER, copy);
    await truncate(copy, 5_000_000);
    const line = expectOneErrorLine(await cli('info', copy), 1);
    expect(line).toContain(`${copy}: file is truncated: tensor "`);
  });

  it('reports a corrupted header on one line, exit 1', async () => {
    const copy = join(dir, 'corrupt.safetensors');
    await copyFile(TRANSFORMER, copy);
    const handle = await open(copy, 'r+');
    await handle.write(Buffer.from('}}garbage'), 0, 9, 8 + 100);
    await handle.close();
    const line = expectOneErrorLine(await cli('info', copy), 1);
    expect(line).toContain(`${copy}: header is not valid JSON`);
  });

  it('reports a missing file on one line, exit 1', async () => {
    expectOneErrorLine(await cli('info', join(dir, 'absent.safetensors')), 1);
  });
});

describe('flux-w4a4 usage', () => {
  it('--help, help and no arguments list the commands that exist', async () => {
    for (const args of [['--help'], ['help'], []]) {
      const run = await cli(...args);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^usage: flux-w4a4 <command>/);
      const commands = run.stdout.split('commands:\n')[1]!.split('\n\n')[0]!.split('\n');
      const names = commands.map((l) => l.trim().split(/\s+/)[0]);
      // Other rooms add commands; these must be there, each once.
      expect(names).toEqual(expect.arrayContaining(['info', 'forward', 'bench', 'calibrate', 'smooth', 'report']));
      expect(new Set(names).size).toBe(names.length);
    }
  });

  it('shows a command usage with help <command> and <command> --help', async () => {
    for (const args of [['help', 'info'], ['info', '--help']]) {
      const run = await cli(...args);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^usage: flux-w4a4 info </);
    }
  });

  it('exits 2 with one line for an unknown command, flag or missing argument', async () => {
    expect(expectOneErrorLine(await cli('frobnicate'), 2)).toBe('flux-w4a4: unknown command "frobnicate" (see flux-w4a4 --help)');
    expect(expectOneErrorLine(await cli('info', '--bogus', 'x'), 2)).toMatch(/--bogus/);
    expect(expectOneErrorLine(await cli('--verbose'), 2)).toMatch(/unknown option --verbose/);
    expect(expectOneErrorLine(await cli('info'), 2)).toMatch(/expected 1 argument, got 0/);
  });
});
