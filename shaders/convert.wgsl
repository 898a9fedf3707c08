// convert: widen 16-bit floats to f32. Checkpoints are bf16/f16; WebGPU without shader-f16 computes in f32.
// Decoding is integer bit manipulation (no shader-f16 needed); bf16 is the top half of an f32.
//
// bindings: 0 src array<u32> [ceil(n / 2)]  two 16-bit values per word, element 2i in the low half
//           1 dst array<f32> [n]
//           2 params (uniform)
// uniforms (elements): n
// grid: ceil(n / 2 / WG) workgroups of WG (split into x·y past 65535); one invocation per source word.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;

#if BF16
#include "bf16"
fn widen(w: u32) -> vec2f { return bf16_pair(w); }
#else
// f16, decoded bit by bit rather than with unpack2x16float, which may flush f16 subnormals on some GPUs.
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
fn widen(w: u32) -> vec2f { return vec2f(f16_bits_to_f32(w & 0xffffu), f16_bits_to_f32(w >> 16u)); }
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let word = (wid.x + wid.y * nwg.x) * WG + li;
  let e = word * 2u;
  if (e >= p.n) { return; }
  let v = widen(src[word]);
  dst[e] = v.x;
  if (e + 1u < p.n) { dst[e + 1u] = v.y; }
}
