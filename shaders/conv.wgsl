// conv: 2-D convolution, stride 1, zero padding KSIZE / 2, on pixel-major tensors [rows, width, channels]
// (channels fastest, so a band of image rows is one contiguous range), with the VAE decoder's fusions:
//
//   y[oy, ox, co] = bias[co] + sum_{ky, kx, ci} w[ky, kx, ci, co] * f(u[oy + ky - R, ox + kx - R, ci])   (R = KSIZE / 2)
//
//   u = x, or x upsampled 2x by nearest neighbour (UPSAMPLE = 2: u[y, x] = x[y / 2, x / 2]), zero outside;
//   f = identity, or silu(scale[ci] * v + shift[ci]) (NORM_SILU: a GroupNorm's affine form plus SiLU, applied
//       on load so the normalized tensor is never stored; padding stays zero, as it pads f(u));
//   ACCUMULATE adds the result to y's current contents (a residual written into y beforehand).
//
// Row bands: x holds input rows [in_row0, in_row0 + in_rows) of an in_h-row tensor, and halo holds the rows
// just outside (row in_row0 - 1 at halo row 0, row in_row0 + in_rows at halo row 1) when they exist; y holds
// output rows [out_row0, out_row0 + out_rows) from vec4 element y_offset on (a band of a whole-tensor buffer,
// without binding-offset alignment). The host guarantees every row the band reads is in x or halo.
//
// bindings: 0 x      array<f32>   [in_rows, in_w, cin]                         (read only)
//           1 halo   array<f32>   [2, in_w, cin]                               (read only)
//           2 w      array<vec4f> [KSIZE * KSIZE, cin, cout4]  (output channels padded to a multiple of 4)
//           3 bias   array<vec4f> [cout4]
//           4 affine array<f32>   [2, cin]: scale, then shift                  (read only when NORM_SILU)
//           5 y      array<vec4f> [out_rows, in_w * UPSAMPLE, cout4] from y_offset
//           6 params (uniform)
// uniforms (u32): in_h, in_w, cin, in_row0, in_rows, out_row0, out_rows, cout4, y_offset
// grid: (ceil(out_rows * out_w / WG), cout4); one invocation per output pixel and group of 4 output channels.
// overrides: KSIZE (1 or 3), UPSAMPLE (1 or 2), NORM_SILU, ACCUMULATE.

struct Params {
  in_h: u32, in_w: u32, cin: u32,
  in_row0: u32, in_rows: u32,
  out_row0: u32, out_rows: u32,
  cout4: u32, y_offset: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> halo: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read> bias: array<vec4f>;
@group(0) @binding(4) var<storage, read> affine: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(6) var<uniform> p: Params;

override KSIZE: u32 = 3u;
override UPSAMPLE: u32 = 1u;
override NORM_SILU: bool = false;
override ACCUMULATE: bool = false;

const WG = 64u;
// exp(80) is finite in f32, and below -80 silu is below 1e-33: clamping keeps exp from overflowing.
const EXP_ARGUMENT_LIMIT = 80.0;

fn load_x(row: u32, col: u32, ci: u32) -> f32 {
  var v: f32;
  if (row < p.in_row0) {
    v = halo[col * p.cin + ci];
  } else if (row >= p.in_row0 + p.in_rows) {
    v = halo[(p.in_w + col) * p.cin + ci];
  } else {
    v = x[((row - p.in_row0) * p.in_w + col) * p.cin + ci];
  }
  if (NORM_SILU) {
    let n = v * affine[ci] + affine[p.cin + ci];
    v = n / (1.0 + exp(min(-n, EXP_ARGUMENT_LIMIT)));
  }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let out_w = p.in_w * UPSAMPLE;
  let out_h = i32(p.in_h * UPSAMPLE);
  let pixel = gid.x;
  let co4 = gid.y;
  if (pixel >= p.out_rows * out_w || co4 >= p.cout4) { return; }
  let oy = i32(p.out_row0 + pixel / out_w);
  let ox = i32(pixel % out_w);
  let radius = i32(KSIZE / 2u);
  var acc = bias[co4];
  for (var ky = 0u; ky < KSIZE; ky++) {
    let uy = oy + i32(ky) - radius;
    if (uy < 0 || uy >= out_h) { continue; }
    let row = u32(uy) / UPSAMPLE;
    for (var kx = 0u; kx < KSIZE; kx++) {
      let ux = ox + i32(kx) - radius;
      if (ux < 0 || ux >= i32(out_w)) { continue; }
      let col = u32(ux) / UPSAMPLE;
      let w_base = (ky * KSIZE + kx) * p.cin * p.cout4 + co4;
      for (var ci = 0u; ci < p.cin; ci++) {
        acc += load_x(row, col, ci) * w[w_base + ci * p.cout4];
      }
    }
  }
  let o = p.y_offset + pixel * p.cout4 + co4;
  if (ACCUMULATE) { acc += y[o]; }
  y[o] = acc;
}
