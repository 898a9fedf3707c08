// qk_norm_rope: FLUX's QK-norm and rotary embedding, in place on the q and k blocks of a joint qkv buffer.
//
// For every row r and head h, the head vector v = q or k columns [h * head_dim, (h + 1) * head_dim) (q at
// column 0, k at column k_col = heads * head_dim):
//   v = v / sqrt(mean(v^2) + EPS) * scale          RMSNorm; scale is the learned [head_dim] vector
//   (v[2i], v[2i+1]) = (c * v[2i] - s * v[2i+1], s * v[2i] + c * v[2i+1])
//                                                   RoPE on interleaved pairs, c = cos[r, i], s = sin[r, i]
// Rows r < text_rows take the text stream's scales, the others the image stream's (the double block's
// joint sequence is text then image; single blocks bind the same scales to both pairs).
//
// One invocation per head vector, looping over its pairs (read twice: sum of squares, then the update).
// The vectors are short (head_dim <= 128), and a workgroup reduction per vector costs more in barriers
// than it saves.
//
// bindings: 0 qkv         array<vec2f> [rows, row_stride / 2]   pairs, updated in place (v and later columns untouched)
//           1 q_scale_txt array<vec2f> [head_dim / 2]
//           2 k_scale_txt array<vec2f> [head_dim / 2]
//           3 q_scale_img array<vec2f> [head_dim / 2]
//           4 k_scale_img array<vec2f> [head_dim / 2]
//           5 cos         array<f32>   [rows, head_dim / 2]
//           6 sin         array<f32>   [rows, head_dim / 2]
//           7 params (uniform)
// uniforms (u32, in pairs): rows, row_stride, heads, pairs (= head_dim / 2), k_col, text_rows (in rows)
// grid: ceil(rows * 2 * heads / WG) workgroups of WG (split into x·y past 65535); invocation
//       (wid.x + wid.y * nwg.x) * WG + li handles vector (row, q|k, head) in that order.

struct Params { rows: u32, row_stride: u32, heads: u32, pairs: u32, k_col: u32, text_rows: u32 }

@group(0) @binding(0) var<storage, read_write> qkv: array<vec2f>;
@group(0) @binding(1) var<storage, read> q_scale_txt: array<vec2f>;
@group(0) @binding(2) var<storage, read> k_scale_txt: array<vec2f>;
@group(0) @binding(3) var<storage, read> q_scale_img: array<vec2f>;
@group(0) @binding(4) var<storage, read> k_scale_img: array<vec2f>;
@group(0) @binding(5) var<storage, read> cos_table: array<f32>;
@group(0) @binding(6) var<storage, read> sin_table: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// FLUX QK RMSNorm epsilon (BFL `RMSNorm`, 1e-6).
const EPS = 1e-6;
const WG = 64u;

fn scale_of(is_k: bool, is_text: bool, i: u32) -> vec2f {
  if (is_text) { return select(q_scale_txt[i], k_scale_txt[i], is_k); }
  return select(q_scale_img[i], k_scale_img[i], is_k);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let vector = (wid.x + wid.y * nwg.x) * WG + li;
  let per_row = 2u * p.heads;
  let row = vector / per_row;
  if (row >= p.rows) { return; }
  let is_k = (vector % per_row) >= p.heads;
  let head = (vector % per_row) % p.heads;
  let base = row * p.row_stride + select(0u, p.k_col, is_k) + head * p.pairs;

  var squares = 0.0;
  for (var i = 0u; i < p.pairs; i++) {
    let v = qkv[base + i];
    squares += dot(v, v);
  }
  let inv_rms = inverseSqrt(squares / f32(2u * p.pairs) + EPS);

  let is_text = row < p.text_rows;
  let angles = row * p.pairs;
  for (var i = 0u; i < p.pairs; i++) {
    let v = qkv[base + i] * inv_rms * scale_of(is_k, is_text, i);
    let c = cos_table[angles + i];
    let s = sin_table[angles + i];
    qkv[base + i] = vec2f(c * v.x - s * v.y, s * v.x + c * v.y);
  }
}
