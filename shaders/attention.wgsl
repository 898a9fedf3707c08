// attention: self-attention over `rows` tokens, flash style: key/value tiles stream through workgroup
// memory and an online softmax keeps a running max and sum, so the rows x rows score matrix is never formed.
//
//   o[i, h*D + d] = sum_j softmax_j(s * q_i . k_j + bias_h(j - i)) * v[j, h*D + d]   for each head h, D = HEAD_DIM
//
// s is the host's scale (FLUX and CLIP: 1/sqrt(D); T5: 1). Options (uniforms, one pipeline for all):
//   causal:   keys j > i are masked out (CLIP's text model); key tiles past the workgroup's last row are skipped.
//   has_bias: an additive bias that depends only on the offset j - i (T5's relative position bias), read as
//             bias[h * bias_stride + (j - i + rows - 1)], i.e. per head the 2 * rows - 1 offsets -(rows-1) .. rows-1.
//
// q_i, k_j and v_j of head h are the D columns starting at h*D, k_col + h*D and v_col + h*D of rows i and j
// of the [rows, qkv_stride] buffer. Scores are kept in the log2 domain (q is pre-multiplied by
// log2(e) / sqrt(D), the host's `scale`) so the softmax uses exp2.
//
// bindings: 0 qkv  array<vec4f>  [rows, qkv_stride]             (read only)
//           1 o    array<vec4f>  rows x (heads * D) block: o[i, c] at o_offset + i * o_stride + c
//           2 bias array<f32>    [heads, bias_stride]             (read only; any buffer when has_bias = 0)
//           3 params (uniform)
// uniforms (columns, offsets and strides in vec4 units, since every one is a multiple of 4 floats):
//           rows (u32), qkv_stride, k_col, v_col, o_offset, o_stride, scale (f32, log2(e) * s),
//           causal (u32 0/1), has_bias (u32 0/1), bias_stride (u32, elements)
// grid: (ceil(rows / ROWS_PER_WG), heads); workgroup WG threads. THREADS_PER_ROW threads share one query
//       row, thread `part` owning vec4 columns part, part + THREADS_PER_ROW, ... of q and of its output;
//       partial dot products are summed across the row's threads through workgroup memory.
// defines: HEAD_DIM (multiple of 4, and of 32 when above 32), KEYS_PER_TILE (keys per K/V tile, chosen by
//          the host to fit the workgroup storage budget).
// workgroup storage: KEYS_PER_TILE * (2 * HEAD_DIM + WG) * 4 bytes: 15 KiB at D = 128 (10 keys per tile),
//          16 KiB at D = 64 (16 keys).

struct Params {
  rows: u32, qkv_stride: u32,
  k_col: u32, v_col: u32,
  o_offset: u32, o_stride: u32,
  scale: f32,
  causal: u32, has_bias: u32, bias_stride: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> o: array<vec4f>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const HEAD_DIM = {{HEAD_DIM}}u;
const D4 = HEAD_DIM / 4u;
// 8 vec4 of q plus 8 of the accumulator per thread keeps register use moderate at D = 128 (4 threads/row).
// Most vec4 columns of a query row one thread holds.
const MAX_V4_PER_THREAD = 8u;
const V4_PER_THREAD = min(D4, MAX_V4_PER_THREAD);
const THREADS_PER_ROW = D4 / V4_PER_THREAD;
const WG = 128u;
const ROWS_PER_WG = WG / THREADS_PER_ROW;
const KEYS = {{KEYS_PER_TILE}}u;
// Scores are in the log2 domain; the additive bias is in the natural one.
const LOG2E = 1.4426950408889634;
// Score of padding keys and running max before the first key: finite (WGSL may assume no infinities) and
// far below any real score, so exp2(NO_SCORE - m) is 0.
const NO_SCORE = -1e30;

var<workgroup> k_tile: array<vec4f, KEYS * D4>;
var<workgroup> v_tile: array<vec4f, KEYS * D4>;
// partial_scores[j * WG + thread]: one thread's share of q . k_j.
var<workgroup> partial_scores: array<f32, KEYS * WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let head_col = wid.y * D4;
  let local_row = li / THREADS_PER_ROW;
  let part = li % THREADS_PER_ROW;
  let row = wid.x * ROWS_PER_WG + local_row;
  // Threads past the last row compute on row 0 (so they take part in the barriers) and store nothing.
  let q_base = select(0u, row, row < p.rows) * p.qkv_stride + head_col + part;

  var q: array<vec4f, V4_PER_THREAD>;
  var acc: array<vec4f, V4_PER_THREAD>;
  for (var i = 0u; i < V4_PER_THREAD; i++) {
    q[i] = qkv[q_base + i * THREADS_PER_ROW] * p.scale;
    acc[i] = vec4f(0.0);
  }
  var running_max = NO_SCORE;
  var running_sum = 0.0;
  var score: array<f32, KEYS>;

  // With the causal mask no row of this workgroup sees keys past its last row (uniform across the workgroup).
  let key_end = select(p.rows, min(p.rows, (wid.x + 1u) * ROWS_PER_WG), p.causal != 0u);
  let bias_base = wid.y * p.bias_stride + p.rows - 1u;
  for (var k0 = 0u; k0 < key_end; k0 += KEYS) {
    // The last tile is padded with zero keys and values, whose scores are replaced by NO_SCORE below, so
    // every loop over the tile has the constant trip count KEYS (unrolled, `score` stays in registers).
    for (var e = li; e < KEYS * D4; e += WG) {
      let key = k0 + e / D4;
      var k_val = vec4f(0.0);
      var v_val = vec4f(0.0);
      if (key < p.rows) {
        let src = key * p.qkv_stride + head_col + e % D4;
        k_val = qkv[src + p.k_col];
        v_val = qkv[src + p.v_col];
      }
      k_tile[e] = k_val;
      v_tile[e] = v_val;
    }
    workgroupBarrier();

    for (var j = 0u; j < KEYS; j++) {
      var dot_part = 0.0;
      for (var i = 0u; i < V4_PER_THREAD; i++) {
        dot_part += dot(q[i], k_tile[j * D4 + part + i * THREADS_PER_ROW]);
      }
      partial_scores[j * WG + li] = dot_part;
    }
    workgroupBarrier();

    let first = local_row * THREADS_PER_ROW;
    var tile_max = NO_SCORE;
    for (var j = 0u; j < KEYS; j++) {
      var s = 0.0;
      for (var t = 0u; t < THREADS_PER_ROW; t++) { s += partial_scores[j * WG + first + t]; }
      let key = k0 + j;
      var visible = key < p.rows;
      if (p.causal != 0u) { visible = visible && key <= row; }
      if (p.has_bias != 0u && visible) { s += LOG2E * bias[bias_base + key - min(row, p.rows - 1u)]; }
      score[j] = select(NO_SCORE, s, visible);
      tile_max = max(tile_max, score[j]);
    }
    let new_max = max(running_max, tile_max);
    let rescale = exp2(running_max - new_max);
    running_sum *= rescale;
    for (var i = 0u; i < V4_PER_THREAD; i++) { acc[i] *= rescale; }
    for (var j = 0u; j < KEYS; j++) {
      let weight = exp2(score[j] - new_max);
      running_sum += weight;
      for (var i = 0u; i < V4_PER_THREAD; i++) {
        acc[i] += weight * v_tile[j * D4 + part + i * THREADS_PER_ROW];
      }
    }
    running_max = new_max;
    // The next tile overwrites k_tile, v_tile and partial_scores.
    workgroupBarrier();
  }

  if (row < p.rows) {
    let o_base = p.o_offset + row * p.o_stride + head_col + part;
    for (var i = 0u; i < V4_PER_THREAD; i++) { o[o_base + i * THREADS_PER_ROW] = acc[i] / running_sum; }
  }
}
