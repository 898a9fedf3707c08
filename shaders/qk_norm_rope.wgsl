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
// bindings: 0 qkv         array<f32> [rows, row_stride]   read and written in place (columns >= 2 * k_col untouched)
//           1 q_scale_txt array<f32> [head_dim]
//           2 k_scale_txt array<f32> [head_dim]
//           3 q_scale_img array<f32> [head_dim]
//           4 k_scale_img array<f32> [head_dim]
//           5 cos         array<f32> [rows, head_dim / 2]
//           6 sin         array<f32> [rows, head_dim / 2]
//           7 params (uniform)
// uniforms (u32, elements): rows, row_stride, heads, head_dim, k_col, text_rows
// grid: rows * 2 * heads workgroups, one per head vector, ordered (row, q|k, head) (split into x·y past
//       65535; vector = wid.x + wid.y * nwg.x); workgroup WG threads, each owning pairs li, li + WG, ...

struct Params { rows: u32, row_stride: u32, heads: u32, head_dim: u32, k_col: u32, text_rows: u32 }

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> q_scale_txt: array<f32>;
@group(0) @binding(2) var<storage, read> k_scale_txt: array<f32>;
@group(0) @binding(3) var<storage, read> q_scale_img: array<f32>;
@group(0) @binding(4) var<storage, read> k_scale_img: array<f32>;
@group(0) @binding(5) var<storage, read> cos_table: array<f32>;
@group(0) @binding(6) var<storage, read> sin_table: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// FLUX QK RMSNorm epsilon (BFL `RMSNorm`, 1e-6).
const EPS = 1e-6;
// A power of two (the tree reduction halves it); 64 threads hold the 64 pairs of a 128-dim head.
const WG = 64u;

var<workgroup> partial: array<f32, WG>;

fn scale_of(is_k: bool, is_text: bool, d: u32) -> f32 {
  if (is_text) { return select(q_scale_txt[d], k_scale_txt[d], is_k); }
  return select(q_scale_img[d], k_scale_img[d], is_k);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let vector = wid.x + wid.y * nwg.x;
  let per_row = 2u * p.heads;
  let row = vector / per_row;
  if (row >= p.rows) { return; }
  let is_k = (vector % per_row) >= p.heads;
  let head = (vector % per_row) % p.heads;
  let base = row * p.row_stride + select(0u, p.k_col, is_k) + head * p.head_dim;
  let pairs = p.head_dim / 2u;

  var squares = 0.0;
  for (var i = li; i < pairs; i += WG) {
    let a = qkv[base + 2u * i];
    let b = qkv[base + 2u * i + 1u];
    squares += a * a + b * b;
  }
  partial[li] = squares;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) { partial[li] += partial[li + stride]; }
    workgroupBarrier();
  }
  let inv_rms = inverseSqrt(partial[0] / f32(p.head_dim) + EPS);

  let is_text = row < p.text_rows;
  for (var i = li; i < pairs; i += WG) {
    let a = qkv[base + 2u * i] * inv_rms * scale_of(is_k, is_text, 2u * i);
    let b = qkv[base + 2u * i + 1u] * inv_rms * scale_of(is_k, is_text, 2u * i + 1u);
    let c = cos_table[row * pairs + i];
    let s = sin_table[row * pairs + i];
    qkv[base + 2u * i] = c * a - s * b;
    qkv[base + 2u * i + 1u] = s * a + c * b;
  }
}
