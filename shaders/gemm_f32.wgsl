// gemm_f32: y[m, n] = sum_k x[m, k] * w[n, k] + bias[n] — a PyTorch Linear (W is [N, K], K-contiguous).
// The float path of every linear and the baseline the integer GEMMs are measured against.
//
// bindings: 0 x    array<f32>           M rows of K at x_offset + row * x_stride
//           1 w    W_TYPE     [N, K]    (f32, or bf16 pairs packed in u32, see load_w)
//           2 bias array<f32> [N]       (read only when has_bias = 1)
//           3 y    array<f32>           M rows of N at y_offset + row * y_stride (a block of a wider matrix)
//           4 params (uniform)
// uniforms (elements): m, k, n, has_bias, x_offset, x_stride, y_offset, y_stride
// grid: (ceil(N / BN), ceil(M / BM)); workgroup 16 x 16, each invocation computes TM x TN outputs.

struct Params { m: u32, k: u32, n: u32, has_bias: u32, x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<{{W_TYPE}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const BM = 64u;
const BN = 64u;
const BK = 16u;
const TM = 4u;
const TN = 4u;
const THREADS = 256u;

// Tiles are stored k-major so the inner product reads 4 consecutive rows/cols as one vec4.
var<workgroup> xs: array<vec4f, BK * BM / 4u>;
var<workgroup> ws: array<vec4f, BK * BN / 4u>;

{{LOAD_W}}

fn load_x(row: u32, col: u32) -> f32 {
  if (row < p.m && col < p.k) { return x[p.x_offset + row * p.x_stride + col]; }
  return 0.0;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  var acc: array<vec4f, TM>;
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    // Each invocation fills one vec4 of each tile: 4 consecutive rows at one k.
    let kk = li % BK;
    let r4 = (li / BK) * 4u;
    xs[kk * (BM / 4u) + r4 / 4u] = vec4f(load_x(m0 + r4, k0 + kk), load_x(m0 + r4 + 1u, k0 + kk),
                                         load_x(m0 + r4 + 2u, k0 + kk), load_x(m0 + r4 + 3u, k0 + kk));
    ws[kk * (BN / 4u) + r4 / 4u] = vec4f(load_w(n0 + r4, k0 + kk), load_w(n0 + r4 + 1u, k0 + kk),
                                         load_w(n0 + r4 + 2u, k0 + kk), load_w(n0 + r4 + 3u, k0 + kk));
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = xs[k * (BM / 4u) + lid.y];
      let b = ws[k * (BN / 4u) + lid.x];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let row = m0 + lid.y * TM + i;
    if (row >= p.m) { break; }
    for (var j = 0u; j < TN; j++) {
      let col = n0 + lid.x * TN + j;
      if (col < p.n) {
        var v = acc[i][j];
        if (p.has_bias != 0u) { v += bias[col]; }
        y[p.y_offset + row * p.y_stride + col] = v;
      }
    }
  }
}
