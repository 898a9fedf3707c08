/**
 * WGSL text from `shaders/<name>.wgsl`, loaded through the platform (raw import in Vite, disk in Node), with
 * the one template feature we allow: `{{NAME}}` substitution of compile-time parameters.
 */
import { platform } from '#platform';
import { FluxError } from '../errors.ts';

export type ShaderDefines = Readonly<Record<string, string | number | boolean>>;

export function shaderText(name: string, defines: ShaderDefines = {}): string {
  const template = platform.shaderSource(name);
  const text = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in defines)) throw new FluxError('bad-argument', `shader ${name}: no value for {{${key}}}`);
    return String(defines[key]);
  });
  return text;
}
