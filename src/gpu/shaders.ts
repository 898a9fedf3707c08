/**
 * WGSL text from `shaders/<name>.wgsl`, loaded through the platform (raw import in Vite, disk in Node), with a
 * deliberately small preprocessor for what WGSL cannot express itself (docs/architecture.md, "Shaders"):
 *  - `#include "bf16"` on its own line: the text of `shaders/include/bf16.wgsl`, once per shader (so one bf16
 *    decoder and one GELU serve every kernel);
 *  - `#if NAME` / `#else` / `#endif` on their own lines, NAME a boolean define: variants that differ in
 *    `enable` directives, binding types or built-ins a device may lack (anything else is an `override`);
 *  - `{{NAME}}`: a define's value (compile-time parameters such as a head dimension).
 * Numbers TS needs from a shader (tile sizes, workgroup sizes) are read from its `const` declarations with
 * `shaderConstants`, so the WGSL file is their one source of truth.
 */
import { platform } from '#platform';
import { FluxError } from '../errors.ts';

export type ShaderDefines = Readonly<Record<string, string | number | boolean>>;

const INCLUDE = /^\s*#include\s+"([\w/-]+)"\s*$/;
const IF = /^\s*#if\s+(\w+)\s*$/;
const ELSE = /^\s*#else\s*$/;
const ENDIF = /^\s*#endif\s*$/;

function expand(name: string, defines: ShaderDefines, included: Set<string>): string[] {
  const out: string[] = [];
  // One entry per open #if: whether its current branch is kept.
  const branches: boolean[] = [];
  const kept = () => branches.every(Boolean);
  for (const line of platform.shaderSource(name).split('\n')) {
    const cond = IF.exec(line);
    if (cond) {
      const value = defines[cond[1]!];
      if (typeof value !== 'boolean') throw new FluxError('bad-argument', `shader ${name}: #if ${cond[1]} needs a boolean define`);
      branches.push(value);
    } else if (ELSE.test(line)) {
      if (branches.length === 0) throw new FluxError('bad-argument', `shader ${name}: #else without #if`);
      branches.push(!branches.pop()!);
    } else if (ENDIF.test(line)) {
      if (branches.pop() === undefined) throw new FluxError('bad-argument', `shader ${name}: #endif without #if`);
    } else if (!kept()) {
      continue;
    } else {
      const include = INCLUDE.exec(line);
      if (!include) out.push(line);
      else if (!included.has(include[1]!)) {
        included.add(include[1]!);
        out.push(...expand(`include/${include[1]}`, defines, included));
      }
    }
  }
  if (branches.length > 0) throw new FluxError('bad-argument', `shader ${name}: #if without #endif`);
  return out;
}

export function shaderText(name: string, defines: ShaderDefines = {}): string {
  return expand(name, defines, new Set()).join('\n').replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in defines)) throw new FluxError('bad-argument', `shader ${name}: no value for {{${key}}}`);
    return String(defines[key]);
  });
}

const constantCache = new Map<string, Readonly<Record<string, number>>>();

/** The integer `const NAME = <literal>u;` (or i) declarations of a shader file, by name. */
export function shaderConstants(name: string): Readonly<Record<string, number>> {
  let constants = constantCache.get(name);
  if (!constants) {
    const found: Record<string, number> = {};
    for (const m of platform.shaderSource(name).matchAll(/^const (\w+)\s*=\s*(\d+)[ui]?;/gm)) found[m[1]!] = Number(m[2]);
    constants = found;
    constantCache.set(name, constants);
  }
  return constants;
}

/** One integer constant of a shader; throws if the file does not declare it as a literal. */
export function shaderConstant(name: string, constant: string): number {
  const value = shaderConstants(name)[constant];
  if (value === undefined) throw new FluxError('shader-compilation', `shaders/${name}.wgsl declares no integer const ${constant}`);
  return value;
}
