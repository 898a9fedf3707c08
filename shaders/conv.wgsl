// conv: 2-D convolution, stride 1, zero padding KSIZE / 2, on pixel-major tensors [rows, width, channels]
// (channels fastest, so a band of image rows is one contiguous range), with the VAE decoder's fusions:
//
//   y[oy, ox, co] = bias[co] + sum_{ky, kx, ci} w[ky, kx, ci, co] * f(u[oy + ky - R, ox + kx - R, ci])   (R = KSIZE / 2)
//
//   u = x, or x upsampled 2x by nearest neighbour (UPSAMPLE = 2: u[y, x] = x[y / 2, x / 2]), zero outside;
//   f = identity, or scale[ci] * v + shift[ci] (NORM: a GroupNorm in affine form), then SiLU when SILU; the
//       normalized tensor is never stored, and padding stays zero, as it pads f(u);
//   ACCUMULATE adds the result to y's current contents (a residual written into y beforehand).
//
// Row bands: x holds input rows [in_row0, in_row0 + in_rows) of an in_h-row tensor, and halo holds the rows
// just outside (row in_row0 - 1 at halo row 0, row in_row0 + in_rows at halo row 1) when they exist; y holds
// output rows [out_row0, out_row0 + out_rows) from vec4 element y_offset on (a band of a whole-tensor buffer,
// without binding-offset alignment). The host guarantees every row a stored output reads is in x or halo.
//
// bindings: 0 x      array<f32>   [in_rows, in_w, cin]                         (read only)
//           1 halo   array<f32>   [2, in_w, cin]                               (read only)
//           2 w      array<vec4f> [KSIZE * KSIZE, cin, cout4]  (output channels padded to a multiple of 4)
//           3 bias   array<vec4f> [cout4]
//           4 affine array<f32>   [2, cin]: scale, then shift                  (read only when NORM)
//           5 y      array<vec4f> [out_rows, in_w * UPSAMPLE, cout4] from y_offset
//           6 params (uniform)
// uniforms (u32): in_h, in_w, cin, in_row0, in_rows, out_row0, out_rows, cout4, y_offset
// grid: (ceil(out_w / TILE), ceil(out_rows / TILE), ceil(cout4 / CO_VECS)). A workgroup computes a TILE x TILE
//       block of output pixels for CO_VECS * 4 output channels, one pixel per invocation. Input channels go
//       in chunks of CI_CHUNK: the chunk's input patch (transformed by f once) and weights are staged in
//       workgroup memory, then every invocation accumulates its pixel from there.
// defines: KSIZE (1 or 3), UPSAMPLE (1 or 2). overrides: NORM, SILU, ACCUMULATE.

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

const KSIZE = {{KSIZE}}u;
const UPSAMPLE = {{UPSAMPLE}}u;
override NORM: bool = false;
override SILU: bool = false;
override ACCUMULATE: bool = false;

const TILE = 8u;
const CO_VECS = 4u;
const CI_CHUNK = 8u;
const RADIUS = KSIZE / 2u;
const TAPS = KSIZE * KSIZE;
// Input rows (and columns) a tile reads: floor((TILE - 1 + 2R) / UPSAMPLE) + 2 covers every alignment.
const SPAN = (TILE - 1u + 2u * RADIUS) / UPSAMPLE + 2u;
// exp(80) is finite in f32, and below -80 silu is below 1e-33: clamping keeps exp from overflowing.
const EXP_ARGUMENT_LIMIT = 80.0;

var<workgroup> tile_in: array<f32, SPAN * SPAN * CI_CHUNK>;
var<workgroup> w_tile: array<vec4f, TAPS * CI_CHUNK * CO_VECS>;

// f(x[row, col, ci]) for a row and column inside the image; 0 for rows outside x and halo (such values only
// reach outputs this band does not store).
fn load_x(row: u32, col: u32, ci: u32) -> f32 {
  var v = 0.0;
  if (row + 1u == p.in_row0) {
    v = halo[col * p.cin + ci];
  } else if (row == p.in_row0 + p.in_rows) {
    v = halo[(p.in_w + col) * p.cin + ci];
  } else if (row >= p.in_row0 && row < p.in_row0 + p.in_rows) {
    v = x[((row - p.in_row0) * p.in_w + col) * p.cin + ci];
  } else {
    return 0.0;
  }
  if (NORM) { v = v * affine[ci] + affine[p.cin + ci]; }
  if (SILU) { v = v / (1.0 + exp(min(-v, EXP_ARGUMENT_LIMIT))); }
  return v;
}

// floor(u / UPSAMPLE) for u >= -UPSAMPLE.
fn input_coord(u: i32) -> i32 {
  return (u + i32(UPSAMPLE)) / i32(UPSAMPLE) - 1;
}

@compute @workgroup_size(TILE, TILE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let out_w = p.in_w * UPSAMPLE;
  let oy0 = i32(p.out_row0 + wid.y * TILE);
  let ox0 = i32(wid.x * TILE);
  let co4_0 = wid.z * CO_VECS;
  // Top-left input pixel of the tile_in (may be -1: padding).
  let iy0 = input_coord(oy0 - i32(RADIUS));
  let ix0 = input_coord(ox0 - i32(RADIUS));
  let oy = oy0 + i32(lid.y);
  let ox = ox0 + i32(lid.x);

  var acc: array<vec4f, CO_VECS>;
  for (var j = 0u; j < CO_VECS; j++) { acc[j] = bias[min(co4_0 + j, p.cout4 - 1u)]; }

  for (var c0 = 0u; c0 < p.cin; c0 += CI_CHUNK) {
    for (var e = li; e < SPAN * SPAN * CI_CHUNK; e += TILE * TILE) {
      let c = e % CI_CHUNK;
      let pix = e / CI_CHUNK;
      let iy = iy0 + i32(pix / SPAN);
      let ix = ix0 + i32(pix % SPAN);
      var v = 0.0;
      if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w) && c0 + c < p.cin) { v = load_x(u32(iy), u32(ix), c0 + c); }
      tile_in[e] = v;
    }
    for (var e = li; e < TAPS * CI_CHUNK * CO_VECS; e += TILE * TILE) {
      let j = e % CO_VECS;
      let c = (e / CO_VECS) % CI_CHUNK;
      let tap = e / (CO_VECS * CI_CHUNK);
      var v = vec4f(0.0);
      if (c0 + c < p.cin && co4_0 + j < p.cout4) { v = w[(tap * p.cin + c0 + c) * p.cout4 + co4_0 + j]; }
      w_tile[e] = v;
    }
    workgroupBarrier();
    for (var ky = 0u; ky < KSIZE; ky++) {
      let py = u32(input_coord(oy + i32(ky) - i32(RADIUS)) - iy0);
      for (var kx = 0u; kx < KSIZE; kx++) {
        let px = u32(input_coord(ox + i32(kx) - i32(RADIUS)) - ix0);
        let base = (py * SPAN + px) * CI_CHUNK;
        let tap = ky * KSIZE + kx;
        for (var c = 0u; c < CI_CHUNK; c++) {
          let v = tile_in[base + c];
          for (var j = 0u; j < CO_VECS; j++) { acc[j] += v * w_tile[(tap * CI_CHUNK + c) * CO_VECS + j]; }
        }
      }
    }
    workgroupBarrier();
  }

  // Taps outside the (upsampled) image read zero tile_in entries: the tile_in holds 0 outside [0, in_h) x [0, in_w).
  if (u32(oy) >= p.out_row0 + p.out_rows || u32(ox) >= out_w) { return; }
  let o = p.y_offset + ((u32(oy) - p.out_row0) * out_w + u32(ox)) * p.cout4;
  for (var j = 0u; j < CO_VECS; j++) {
    if (co4_0 + j < p.cout4) {
      var r = acc[j];
      if (ACCUMULATE) { r += y[o + co4_0 + j]; }
      y[o + co4_0 + j] = r;
    }
  }
}
