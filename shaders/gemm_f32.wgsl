// gemm_f32: y[m, n] = sum_k x[m, k] * w[n, k] + bias[n] — a PyTorch Linear (W is [N, K], K-contiguous); with
// accumulate = 1, y[m, n] += that instead (a low-rank branch adding into a quantized layer's output).
// The float path of every linear and the baseline the integer GEMMs are measured against.
//
// bindings: 0 x    array<f32>           M rows of K at x_offset + row * x_stride
//           1 w    array<u32> [N, K]    f32 bits, or bf16 pairs (W_BF16; element 2i in the low half of word i)
//           2 bias array<f32> [N]       (read only when has_bias = 1)
//           3 y    array<f32>           M rows of N at y_offset + row * y_stride (a view of a wider matrix)
//           4 params (uniform)
// uniforms (elements): m, k, n, has_bias, x_offset, x_stride, y_offset, y_stride, accumulate
// grid: (ceil(N / BN), ceil(M / BM)), BM = TM * WG_Y, BN = TN * WG_X; workgroup WG_X x WG_Y, each invocation computes a TM x TN = 16 x 16 tile of y.

struct Params { m: u32, k: u32, n: u32, has_bias: u32, x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32, accumulate: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Tile of one invocation, 16 x 16: TM + TN vec4 reads from workgroup memory feed 4 * TM * TN multiply-adds. The
// code below is written out for it (fma_k, fma_quad). Large register tiles and few barriers suit CPU devices
// (SwiftShader), where every memory access costs about ten arithmetic operations.
const TM = 16u;
const TN = 16u;
const WG_X = 4u;
const WG_Y = 4u;
const INVOCATIONS = WG_X * WG_Y;
const BM = TM * WG_Y;
const BN = TN * WG_X;
// k per stage; the tiles hold it as BK / 4 vec4 per row.
const BK = 16u;
const QUADS = BK / 4u;

// Row r of a tile, k = 4q .. 4q + 3 of the stage, at r * QUADS + q.
var<workgroup> xs: array<vec4f, BM * QUADS>;
var<workgroup> ws: array<vec4f, BN * QUADS>;

// bf16 weights stay 16-bit on the GPU: half the memory of f32.
override W_BF16: bool = false;

#include "bf16"

fn load_w(row: u32, col: u32) -> f32 {
  if (row < p.n && col < p.k) {
    let e = row * p.k + col;
    if (W_BF16) { return bf16_at(w[e >> 1u], e); }
    return bitcast<f32>(w[e]);
  }
  return 0.0;
}

fn load_x(row: u32, col: u32) -> f32 {
  if (row < p.m && col < p.k) { return x[p.x_offset + row * p.x_stride + col]; }
  return 0.0;
}

// Accumulators: a[16 * c + r] holds channels 4c .. 4c + 3 of row r. Values in, values out: CPU devices keep
// them in registers, where a private array would live in memory.
alias Tile = array<vec4f, TM * TN / 4u>;
// One value of each of 16 rows: rows 4i .. 4i + 3 in element i.
alias Column = array<vec4f, 4>;

// Adds x[r, k] * w[c, k] for one k: f holds x of the 16 rows, g w of the 16 channels.
fn fma_k(a: Tile, f: Column, g: Column) -> Tile {
  return Tile(a[0] + f[0].x * g[0], a[1] + f[0].y * g[0], a[2] + f[0].z * g[0], a[3] + f[0].w * g[0],
              a[4] + f[1].x * g[0], a[5] + f[1].y * g[0], a[6] + f[1].z * g[0], a[7] + f[1].w * g[0],
              a[8] + f[2].x * g[0], a[9] + f[2].y * g[0], a[10] + f[2].z * g[0], a[11] + f[2].w * g[0],
              a[12] + f[3].x * g[0], a[13] + f[3].y * g[0], a[14] + f[3].z * g[0], a[15] + f[3].w * g[0],
              a[16] + f[0].x * g[1], a[17] + f[0].y * g[1], a[18] + f[0].z * g[1], a[19] + f[0].w * g[1],
              a[20] + f[1].x * g[1], a[21] + f[1].y * g[1], a[22] + f[1].z * g[1], a[23] + f[1].w * g[1],
              a[24] + f[2].x * g[1], a[25] + f[2].y * g[1], a[26] + f[2].z * g[1], a[27] + f[2].w * g[1],
              a[28] + f[3].x * g[1], a[29] + f[3].y * g[1], a[30] + f[3].z * g[1], a[31] + f[3].w * g[1],
              a[32] + f[0].x * g[2], a[33] + f[0].y * g[2], a[34] + f[0].z * g[2], a[35] + f[0].w * g[2],
              a[36] + f[1].x * g[2], a[37] + f[1].y * g[2], a[38] + f[1].z * g[2], a[39] + f[1].w * g[2],
              a[40] + f[2].x * g[2], a[41] + f[2].y * g[2], a[42] + f[2].z * g[2], a[43] + f[2].w * g[2],
              a[44] + f[3].x * g[2], a[45] + f[3].y * g[2], a[46] + f[3].z * g[2], a[47] + f[3].w * g[2],
              a[48] + f[0].x * g[3], a[49] + f[0].y * g[3], a[50] + f[0].z * g[3], a[51] + f[0].w * g[3],
              a[52] + f[1].x * g[3], a[53] + f[1].y * g[3], a[54] + f[1].z * g[3], a[55] + f[1].w * g[3],
              a[56] + f[2].x * g[3], a[57] + f[2].y * g[3], a[58] + f[2].z * g[3], a[59] + f[2].w * g[3],
              a[60] + f[3].x * g[3], a[61] + f[3].y * g[3], a[62] + f[3].z * g[3], a[63] + f[3].w * g[3]);
}

// Value i (0..3) of 16 vec4s, regrouped as a Column.
fn column(v: array<vec4f, 16>, i: u32) -> Column {
  var c = v;
  return Column(vec4f(c[0][i], c[1][i], c[2][i], c[3][i]), vec4f(c[4][i], c[5][i], c[6][i], c[7][i]),
                vec4f(c[8][i], c[9][i], c[10][i], c[11][i]), vec4f(c[12][i], c[13][i], c[14][i], c[15][i]));
}

// The 4 k of quad q: the invocation's 16 rows of xs (from r0) and 16 rows of ws (from c0).
fn fma_quad(a: Tile, r0: u32, c0: u32, q: u32) -> Tile {
  var f: array<vec4f, 16>;
  var g: array<vec4f, 16>;
  f = array(xs[(r0 + 0u) * QUADS + q], xs[(r0 + 1u) * QUADS + q], xs[(r0 + 2u) * QUADS + q], xs[(r0 + 3u) * QUADS + q],
            xs[(r0 + 4u) * QUADS + q], xs[(r0 + 5u) * QUADS + q], xs[(r0 + 6u) * QUADS + q], xs[(r0 + 7u) * QUADS + q],
            xs[(r0 + 8u) * QUADS + q], xs[(r0 + 9u) * QUADS + q], xs[(r0 + 10u) * QUADS + q], xs[(r0 + 11u) * QUADS + q],
            xs[(r0 + 12u) * QUADS + q], xs[(r0 + 13u) * QUADS + q], xs[(r0 + 14u) * QUADS + q], xs[(r0 + 15u) * QUADS + q]);
  g = array(ws[(c0 + 0u) * QUADS + q], ws[(c0 + 1u) * QUADS + q], ws[(c0 + 2u) * QUADS + q], ws[(c0 + 3u) * QUADS + q],
            ws[(c0 + 4u) * QUADS + q], ws[(c0 + 5u) * QUADS + q], ws[(c0 + 6u) * QUADS + q], ws[(c0 + 7u) * QUADS + q],
            ws[(c0 + 8u) * QUADS + q], ws[(c0 + 9u) * QUADS + q], ws[(c0 + 10u) * QUADS + q], ws[(c0 + 11u) * QUADS + q],
            ws[(c0 + 12u) * QUADS + q], ws[(c0 + 13u) * QUADS + q], ws[(c0 + 14u) * QUADS + q], ws[(c0 + 15u) * QUADS + q]);
  let t = fma_k(fma_k(a, column(f, 0u), column(g, 0u)), column(f, 1u), column(g, 1u));
  return fma_k(fma_k(t, column(f, 2u), column(g, 2u)), column(f, 3u), column(g, 3u));
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let r0 = lid.y * TM;
  let c0 = lid.x * TN;
  var a = Tile();
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    // The workgroup stages BM rows of x and BN rows of w, BK values each (zero past the ends).
    for (var i = li; i < BM * QUADS; i += INVOCATIONS) {
      let row = m0 + i / QUADS;
      let k = k0 + 4u * (i % QUADS);
      xs[i] = vec4f(load_x(row, k), load_x(row, k + 1u), load_x(row, k + 2u), load_x(row, k + 3u));
    }
    for (var i = li; i < BN * QUADS; i += INVOCATIONS) {
      let row = n0 + i / QUADS;
      let k = k0 + 4u * (i % QUADS);
      ws[i] = vec4f(load_w(row, k), load_w(row, k + 1u), load_w(row, k + 2u), load_w(row, k + 3u));
    }
    workgroupBarrier();
    a = fma_quad(fma_quad(fma_quad(fma_quad(a, r0, c0, 0u), r0, c0, 1u), r0, c0, 2u), r0, c0, 3u);
    workgroupBarrier();
  }
  for (var r = 0u; r < TM; r++) {
    let row = m0 + r0 + r;
    if (row >= p.m) { break; }
    for (var c = 0u; c < TN; c++) {
      let col = n0 + c0 + c;
      if (col >= p.n) { break; }
      var v = a[(c / 4u) * TM + r][c % 4u];
      if (p.has_bias != 0u) { v += bias[col]; }
      let at = p.y_offset + row * p.y_stride + col;
      if (p.accumulate != 0u) { v += y[at]; }
      y[at] = v;
    }
  }
}
