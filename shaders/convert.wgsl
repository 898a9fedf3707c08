// convert: widen 16-bit floats to f32. Checkpoints are bf16/f16; WebGPU without shader-f16 computes in f32.
// Decoding is integer bit manipulation (no shader-f16 needed); bf16 is the top half of an f32.
//
// bindings: 0 src array<u32> [ceil(n / 2)]  two 16-bit values per word, element 2i in the low half
//           1 dst array<f32> [n]
//           2 params (uniform)
// uniforms (elements): n
// grid: ceil(n / 2 / 256) workgroups of 256 (split into x·y past 65535); one invocation per source word.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

{{WIDEN}}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let word = (wid.x + wid.y * nwg.x) * 256u + li;
  let e = word * 2u;
  if (e >= p.n) { return; }
  let v = widen(src[word]);
  dst[e] = v.x;
  if (e + 1u < p.n) { dst[e + 1u] = v.y; }
}
