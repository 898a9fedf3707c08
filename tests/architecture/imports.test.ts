/**
 * Imports flow one way (docs/architecture.md): every folder of src/ may import only the rooms listed for it
 * here. A new upward import (a kernel reaching into the CPU references, the file formats into the GPU layer)
 * fails this test with the offending file and line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Room → the rooms it may import (besides itself and npm packages). `errors` is src/errors.ts. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  errors: [],
  platform: ['errors'],
  format: ['errors'],
  gpu: ['errors', 'platform'],
  weights: ['errors', 'platform'],
  quant: ['errors', 'format', 'weights'],
  kernels: ['errors', 'format', 'gpu'],
  nn: ['errors', 'format', 'gpu', 'kernels', 'quant', 'weights'],
  model: ['errors', 'format', 'gpu', 'kernels', 'nn', 'quant', 'weights'],
  text: ['errors', 'weights'],
  eval: ['errors'],
  pipeline: ['errors', 'format', 'gpu', 'kernels', 'nn', 'quant', 'weights', 'model', 'text', 'eval'],
  cli: ['errors', 'platform', 'format', 'gpu', 'kernels', 'nn', 'quant', 'weights', 'model', 'text', 'eval', 'pipeline'],
  ui: ['errors', 'platform', 'format', 'gpu', 'kernels', 'nn', 'quant', 'weights', 'model', 'text', 'eval', 'pipeline'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const roomOf = (path: string): string => relative(SRC, path).split(/[/\\]/)[0]!.replace(/\.ts$/, '');

describe('import direction', () => {
  it('every import of src/ goes to an allowed room', () => {
    const violations: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const room = roomOf(file);
      expect(ALLOWED, `src/${relative(SRC, file)}: room '${room}' is missing from ALLOWED`).toHaveProperty(room);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+['"]([^'"]+)['"]/gm)) {
        const spec = m[1]!;
        const target = spec === '#platform' ? 'platform' : spec.startsWith('.') ? roomOf(resolve(dirname(file), spec)) : undefined;
        if (target !== undefined && target !== room && !ALLOWED[room]!.includes(target)) {
          const line = text.slice(0, m.index).split('\n').length;
          violations.push(`src/${relative(SRC, file)}:${line} (${room}) imports ${spec} (${target})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
