/** Runs the real `flux-w4a4` executable, as a user would. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/flux-w4a4.mjs');
export const FIXTURES = join(ROOT, 'tests/fixtures/flux-tiny-a');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

/** A user error: exactly one stderr line, `flux-w4a4: ...`, and the exit code. Returns the line. */
export function expectOneErrorLine(run: Run, code: number): string {
  expect(run.code).toBe(code);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^flux-w4a4: /);
  return lines[0]!;
}
