// convert: widen 8- and 16-bit floats (bf16, f16, FP8 e4m3 / e5m2) to f32. Checkpoints store them; WebGPU
// without shader-f16 computes in f32. Decoding is integer bit manipulation, so no shader-f16 is needed.
//
// bindings: 0 src array<u32> [ceil(n / VALUES_PER_WORD)]  element VALUES_PER_WORD·i + j in bits
//             [j·bits, (j + 1)·bits) of word i (little-endian packing)
//           1 dst array<f32> [n]
//           2 params (uniform)
// overrides: DTYPE (BF16, F16, F8E4M3, F8E5M2 below) and VALUES_PER_WORD (2 for 16-bit, 4 for 8-bit)
// uniforms (elements): n
// grid: ceil(n / VALUES_PER_WORD / WG) workgroups of WG (split into x·y past 65535); one invocation per word.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;
const BF16 = 0u;
const F16 = 1u;
const F8E4M3 = 2u;
const F8E5M2 = 3u;
override DTYPE: u32;
override VALUES_PER_WORD: u32;

#include "bf16"

// IEEE half (also the top byte of an e5m2 value shifted up by 8), subnormals kept.
fn f16_bits_to_f32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let exponent = (h >> 10u) & 0x1fu;
  let mantissa = h & 0x3ffu;
  if (exponent == 0u) {
    let magnitude = f32(mantissa) * 5.9604644775390625e-8; // mantissa * 2^-24, exact
    return select(magnitude, -magnitude, sign != 0u);
  }
  if (exponent == 31u) { return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u)); }
  return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

// e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
fn e4m3_bits_to_f32(b: u32) -> f32 {
  let sign = (b & 0x80u) << 24u;
  let exponent = (b >> 3u) & 0xfu;
  let mantissa = b & 0x7u;
  if (exponent == 0u) {
    let magnitude = f32(mantissa) * 0.001953125; // mantissa * 2^-9, exact
    return select(magnitude, -magnitude, sign != 0u);
  }
  if (exponent == 15u && mantissa == 7u) { return bitcast<f32>(sign | 0x7fc00000u); }
  return bitcast<f32>(sign | ((exponent + 120u) << 23u) | (mantissa << 20u));
}

// The word's values in its first VALUES_PER_WORD lanes.
fn widen(w: u32) -> vec4f {
  if (DTYPE == BF16) { return vec4f(bf16_pair(w), 0.0, 0.0); }
  // Decoded bit by bit rather than with unpack2x16float, which may flush f16 subnormals on some GPUs.
  if (DTYPE == F16) { return vec4f(f16_bits_to_f32(w & 0xffffu), f16_bits_to_f32(w >> 16u), 0.0, 0.0); }
  if (DTYPE == F8E4M3) {
    return vec4f(e4m3_bits_to_f32(w & 0xffu), e4m3_bits_to_f32((w >> 8u) & 0xffu), e4m3_bits_to_f32((w >> 16u) & 0xffu), e4m3_bits_to_f32(w >> 24u));
  }
  // e5m2 is the top byte of an f16.
  return vec4f(f16_bits_to_f32((w & 0xffu) << 8u), f16_bits_to_f32(w & 0xff00u), f16_bits_to_f32((w >> 8u) & 0xff00u), f16_bits_to_f32((w >> 16u) & 0xff00u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let word = (wid.x + wid.y * nwg.x) * WG + li;
  let e = word * VALUES_PER_WORD;
  if (e >= p.n) { return; }
  let v = widen(src[word]);
  for (var j = 0u; j < VALUES_PER_WORD; j++) {
    if (e + j < p.n) { dst[e + j] = v[j]; }
  }
}
