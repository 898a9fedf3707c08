// gemv_weight_only: y = x · dequant(W)ᵀ + b for weight-only quantized W and a few f32 rows x (the modulation
// linears see one vector per step, so their activations stay float). W is per-output-channel symmetric INT4 or
// INT8 in convrot_quant's packed row format without rotation: value k of row n at bits BITS·(k % VALUES_PER_WORD)
// of word n·words_per_row + k / VALUES_PER_WORD, two's complement, scale s_n in row_meta[n].x. Dequantization
// happens in the dot product: y[r, n] = s_n · Σ_k q[n, k] · x[r, k] + b[n].
//
// bindings: 0 x        array<f32>   rows x k, (r, c) at x_offset + r * x_stride + c
//           1 packed   array<u32>   [n, words_per_row]
//           2 row_meta array<vec2u> [n] (bitcast<u32>(scale), Σq unused here)
//           3 bias     array<f32>   [n] (read only when has_bias = 1)
//           4 y        array<f32>   rows x n, (r, c) at y_offset + r * y_stride + c
//           5 params (uniform)
// uniforms (u32): rows, k, n, words_per_row, has_bias, x_offset, x_stride, y_offset, y_stride
// grid: one workgroup of WG invocations per output channel (n), split into x · y past 65535.

struct Params {
  rows: u32, k: u32, n: u32, words_per_row: u32, has_bias: u32,
  x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> packed: array<u32>;
@group(0) @binding(2) var<storage, read> row_meta: array<vec2u>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 64u;
const BITS = {{BITS}}u;
const VALUES_PER_WORD = 32u / BITS;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let col = wid.x + wid.y * nwg.x;
  // Uniform per workgroup, so every invocation leaves before any barrier or none does.
  if (col >= p.n) { return; }
  let row_words = col * p.words_per_row;
  let scale = bitcast<f32>(row_meta[col].x);
  for (var r = 0u; r < p.rows; r++) {
    let x_row = p.x_offset + r * p.x_stride;
    var acc = 0.0;
    for (var w = li; w < p.words_per_row; w += WG) {
      let word = packed[row_words + w];
      let k0 = w * VALUES_PER_WORD;
      for (var j = 0u; j < VALUES_PER_WORD; j++) {
        let k = k0 + j;
        if (k < p.k) {
          // Shift the value to the top bits, then arithmetic-shift back down: sign extension.
          let q = bitcast<i32>(word << (32u - BITS * (j + 1u))) >> (32u - BITS);
          acc += f32(q) * x[x_row + k];
        }
      }
    }
    partial[li] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
      if (li < stride) { partial[li] += partial[li + stride]; }
      workgroupBarrier();
    }
    if (li == 0u) {
      var v = partial[0] * scale;
      if (p.has_bias == 1u) { v += bias[col]; }
      y[p.y_offset + r * p.y_stride + col] = v;
    }
    workgroupBarrier();
  }
}
