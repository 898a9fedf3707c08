import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shaderConstant, shaderConstants, shaderText } from '../../src/gpu/shaders.ts';

const SHADERS = readdirSync(new URL('../../shaders/', import.meta.url)).filter((f) => f.endsWith('.wgsl')).map((f) => f.replace(/\.wgsl$/, ''));

describe('shader preprocessor', () => {
  it('keeps the chosen #if branch and includes a file once', () => {
    const int4 = shaderText('gemm_int', { INT4: true, DOT4: false });
    const int8dot4 = shaderText('gemm_int', { INT4: false, DOT4: true });
    expect(int4).toContain('FIELD_MASK');
    expect(int4).not.toContain('dot4U8Packed');
    expect(int8dot4).toContain('dot4U8Packed');
    expect(int8dot4).not.toContain('FIELD_MASK');
    const quant = shaderText('convrot_quant', { SUBGROUPS: false });
    expect(quant.match(/fn bf16_at/g)).toHaveLength(1);
    expect(quant).not.toMatch(/^\s*#/m);
    expect(shaderText('convrot_quant', { SUBGROUPS: true })).toMatch(/^enable subgroups;/m);
  });

  it('every shader has one GELU and one bf16 decoder at most, from shaders/include', () => {
    for (const name of SHADERS) {
      const text = shaderText(name, { BF16: true, INT4: true, DOT4: false, SUBGROUPS: false, HEAD_DIM: 128, KEYS_PER_TILE: 8, KSIZE: 3, UPSAMPLE: 1, HALF: 1, TURNS_HI: '0u', TURNS_LO: '0u', BITS: 4 });
      expect(text.match(/GELU_SCALE =/g)?.length ?? 0, name).toBeLessThanOrEqual(1);
      expect(text.match(/0xffffu\) << 16u/g)?.length ?? 0, name).toBeLessThanOrEqual(1);
    }
  });

  it('refuses a non-boolean #if define and an unbalanced #if', () => {
    expect(() => shaderText('gemm_int', { INT4: 1, DOT4: false })).toThrow(/#if INT4 needs a boolean define/);
    expect(() => shaderText('gemm_int', { DOT4: false })).toThrow(/#if INT4/);
  });

  it('reads integer constants from the WGSL file, the one source of the numbers TS needs', () => {
    expect(shaderConstants('gemm_int')).toMatchObject({ TM: 16, TN: 16, WG_X: 4, WG_Y: 2 });
    expect(shaderConstant('convrot_quant', 'SYLVESTER')).toBe(2);
    expect(() => shaderConstant('gemm_int', 'NO_SUCH')).toThrow(/declares no integer const NO_SUCH/);
  });
});
