// position_bias: T5's relative position bias, per head and key-query offset, from the learned bucket table.
//
//   out[h, o] = table[bucket[o], h]      o = 0 .. width - 1 stands for the offset j - i = o - (rows - 1)
//
// The bucket of each offset is an integer computed on the host (src/model/t5-buckets.ts): its log-spaced
// boundaries must match the reference bit for bit, which a GPU log cannot promise.
//
// bindings: 0 bucket array<u32> [width]
//           1 table  array<f32> [num_buckets, heads] (relative_attention_bias.weight)
//           2 out    array<f32> [heads, width]
//           3 params (uniform)
// uniforms (u32): width, heads
// grid: ceil(width * heads / WG) workgroups of WG (split into x·y past 65535); one invocation per output.

struct Params { width: u32, heads: u32 }

@group(0) @binding(0) var<storage, read> bucket: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + li;
  if (e >= p.width * p.heads) { return; }
  let h = e / p.width;
  let o = e % p.width;
  out[e] = table[bucket[o] * p.heads + h];
}
