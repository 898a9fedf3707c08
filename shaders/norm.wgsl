// norm: row normalisations, one row per workgroup, sums in f32: FLUX's parameter-free LayerNorm fused with the
// AdaLN modulation, and the text encoders' affine LayerNorm (CLIP) and RMSNorm (T5).
//
// entry point layer_norm_modulate:
//   y[r, c] = (1 + scale[c]) * (x[r, c] - mean_r) / sqrt(var_r + EPS) + shift[c]
//   mean_r and the biased variance var_r are over the row's `cols` elements, two passes in f32 (the second
//   pass re-reads the row, which is still in cache, and sums (x - mean)^2 so no cancellation occurs);
//   shift[c] = modulation[shift_offset + c], scale[c] = modulation[scale_offset + c].
//
// bindings: 0 x          array<f32>  rows x cols block: x[r, c] at x_offset + r * x_stride + c
//           1 modulation array<f32>  shift and scale vectors at element offsets
//           2 y          array<f32>  rows x cols block: y[r, c] at y_offset + r * y_stride + c
//           3 params (uniform)
// uniforms (u32, offsets and strides in elements):
//           rows, cols, x_offset, x_stride, y_offset, y_stride, shift_offset, scale_offset
// grid: rows workgroups (split into x·y past 65535; row = wid.x + wid.y * nwg.x); workgroup WG threads,
//       each handling columns li, li + WG, ...

// entry point layer_norm:  y[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * weight[c] + bias[c]
// entry point rms_norm:    y[r, c] = x[r, c] / sqrt(mean_r(x^2) + eps) * weight[c]
//   bindings: 0 x, 1 weight [cols], 2 bias [cols] (layer_norm only), then y, then params (uniform)
//   uniforms: rows, cols, x_offset, x_stride, y_offset, y_stride (u32, elements), eps (f32)

struct Params {
  rows: u32, cols: u32,
  x_offset: u32, x_stride: u32,
  y_offset: u32, y_stride: u32,
  shift_offset: u32, scale_offset: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> modulation: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

struct AffineParams {
  rows: u32, cols: u32,
  x_offset: u32, x_stride: u32,
  y_offset: u32, y_stride: u32,
  eps: f32,
}

@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> ln_bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> ln_y: array<f32>;
@group(0) @binding(4) var<uniform> ln_p: AffineParams;
@group(0) @binding(2) var<storage, read_write> rms_y: array<f32>;
@group(0) @binding(3) var<uniform> rms_p: AffineParams;

// FLUX LayerNorm epsilon (BFL `nn.LayerNorm(..., eps=1e-6)`).
const EPS = 1e-6;
// A power of two (the tree reduction halves it). 64 threads take 48 columns each of a 3072-wide row; more
// threads would add reduction steps, each a barrier, for little gain.
const WG = 64u;

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the workgroup; every invocation gets the result. Must be called in uniform control flow.
fn workgroup_sum(v: f32, li: u32) -> f32 {
  partial[li] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) { partial[li] += partial[li + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  // The next call overwrites `partial`: everyone must have read the total first.
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn layer_norm_modulate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let xr = p.x_offset + row * p.x_stride;
  let n = f32(p.cols);

  var sum = 0.0;
  for (var c = li; c < p.cols; c += WG) { sum += x[xr + c]; }
  let mean = workgroup_sum(sum, li) / n;

  var squares = 0.0;
  for (var c = li; c < p.cols; c += WG) {
    let d = x[xr + c] - mean;
    squares += d * d;
  }
  let inv_std = inverseSqrt(workgroup_sum(squares, li) / n + EPS);

  let yr = p.y_offset + row * p.y_stride;
  for (var c = li; c < p.cols; c += WG) {
    let normed = (x[xr + c] - mean) * inv_std;
    y[yr + c] = (1.0 + modulation[p.scale_offset + c]) * normed + modulation[p.shift_offset + c];
  }
}

@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let q = ln_p;
  let row = wid.x + wid.y * nwg.x;
  if (row >= q.rows) { return; }
  let xr = q.x_offset + row * q.x_stride;
  let n = f32(q.cols);
  var sum = 0.0;
  for (var c = li; c < q.cols; c += WG) { sum += x[xr + c]; }
  let mean = workgroup_sum(sum, li) / n;
  var squares = 0.0;
  for (var c = li; c < q.cols; c += WG) {
    let d = x[xr + c] - mean;
    squares += d * d;
  }
  let inv_std = inverseSqrt(workgroup_sum(squares, li) / n + q.eps);
  let yr = q.y_offset + row * q.y_stride;
  for (var c = li; c < q.cols; c += WG) { ln_y[yr + c] = (x[xr + c] - mean) * inv_std * weight[c] + ln_bias[c]; }
}

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let q = rms_p;
  let row = wid.x + wid.y * nwg.x;
  if (row >= q.rows) { return; }
  let xr = q.x_offset + row * q.x_stride;
  var squares = 0.0;
  for (var c = li; c < q.cols; c += WG) { squares += x[xr + c] * x[xr + c]; }
  let inv_rms = inverseSqrt(workgroup_sum(squares, li) / f32(q.cols) + q.eps);
  let yr = q.y_offset + row * q.y_stride;
  for (var c = li; c < q.cols; c += WG) { rms_y[yr + c] = x[xr + c] * inv_rms * weight[c]; }
}
