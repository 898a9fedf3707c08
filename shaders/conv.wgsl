// conv: the gather half of a 2-D convolution (stride 1, zero padding KSIZE / 2) done as im2col + GEMM: it
// writes, for every output pixel of a band, the KSIZE x KSIZE x cin input values its outputs combine, so that
// gemm_f32 with weights [cout, KSIZE * KSIZE * cin] finishes the convolution. Tensors are pixel-major
// [rows, width, channels] (a band of image rows is one contiguous range). Fused on the way:
//
//   columns[pixel, (ky * KSIZE + kx) * cin + ci] = f(u[oy + ky - R, ox + kx - R, ci])     (R = KSIZE / 2)
//
//   u = x, or x upsampled 2x by nearest neighbour (UPSAMPLE = 2: u[y, x] = x[y / 2, x / 2]), zero outside;
//   f = identity, or scale[ci] * v + shift[ci] (NORM: a GroupNorm in affine form), then SiLU when SILU; the
//       normalized tensor is never stored, and padding stays zero, as it pads f(u).
//
// Row bands: x holds input rows [in_row0, in_row0 + in_rows) of an in_h-row tensor, and halo holds the rows
// just outside (row in_row0 - 1 at halo row 0, row in_row0 + in_rows at halo row 1) when they exist; the
// columns cover output rows [out_row0, out_row0 + out_rows). The host checks every row read is present.
//
// bindings: 0 x       array<f32> [in_rows, in_w, cin]                        (read only)
//           1 halo    array<f32> [2, in_w, cin]                              (read only)
//           2 affine  array<f32> [2, cin]: scale, then shift                 (read only when NORM)
//           3 columns array<f32> [out_rows * in_w * UPSAMPLE, KSIZE * KSIZE * cin]
//           4 params (uniform)
// uniforms (u32): in_h, in_w, cin, in_row0, in_rows, out_row0, out_rows
// grid: ceil(out_rows * out_w * KSIZE * KSIZE * cin / WG) workgroups (split into x·y past 65535; the flat
//       workgroup index is wid.x + wid.y * nwg.x), one invocation per column value.
// defines: KSIZE (1 or 3), UPSAMPLE (1 or 2). overrides: NORM, SILU.

struct Params {
  in_h: u32, in_w: u32, cin: u32,
  in_row0: u32, in_rows: u32,
  out_row0: u32, out_rows: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> halo: array<f32>;
@group(0) @binding(2) var<storage, read> affine: array<f32>;
@group(0) @binding(3) var<storage, read_write> columns: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const KSIZE = {{KSIZE}}u;
const UPSAMPLE = {{UPSAMPLE}}u;
override NORM: bool = false;
override SILU: bool = false;

const WG = 256u;
const RADIUS = KSIZE / 2u;
// exp(80) is finite in f32, and below -80 silu is below 1e-33: clamping keeps exp from overflowing.
const EXP_ARGUMENT_LIMIT = 80.0;

fn load_x(row: u32, col: u32, ci: u32) -> f32 {
  if (row + 1u == p.in_row0) { return halo[col * p.cin + ci]; }
  if (row == p.in_row0 + p.in_rows) { return halo[(p.in_w + col) * p.cin + ci]; }
  return x[((row - p.in_row0) * p.in_w + col) * p.cin + ci];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let index = (wid.x + wid.y * nwg.x) * WG + li;
  let out_w = p.in_w * UPSAMPLE;
  let k = KSIZE * KSIZE * p.cin;
  if (index >= p.out_rows * out_w * k) { return; }
  let pixel = index / k;
  let ci = index % p.cin;
  let tap = (index % k) / p.cin;
  let uy = i32(p.out_row0 + pixel / out_w) + i32(tap / KSIZE) - i32(RADIUS);
  let ux = i32(pixel % out_w) + i32(tap % KSIZE) - i32(RADIUS);
  var v = 0.0;
  if (uy >= 0 && uy < i32(p.in_h * UPSAMPLE) && ux >= 0 && ux < i32(out_w)) {
    v = load_x(u32(uy) / UPSAMPLE, u32(ux) / UPSAMPLE, ci);
    if (NORM) { v = v * affine[ci] + affine[p.cin + ci]; }
    if (SILU) { v = v / (1.0 + exp(min(-v, EXP_ARGUMENT_LIMIT))); }
  }
  columns[index] = v;
}
