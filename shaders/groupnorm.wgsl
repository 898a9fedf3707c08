// groupnorm: GroupNorm statistics over a whole pixel-major tensor [pixels, channels] that may be stored as
// several row bands, in two passes (mean, then the mean of squared deviations, so a large mean costs no
// digits), ending in each channel's affine form scale = gamma * rstd, shift = beta - mean * scale that the
// conv kernel applies on load. Group g holds channels [g * group_channels, (g + 1) * group_channels).
//
// entry point partial_sums: one workgroup sums one chunk of chunk_pixels pixels of one group of one band:
//   partials[g * chunks + chunk_base + chunk] = sum of v (CENTERED = false) or (v - stats[g])^2 (true)
//   bindings: 0 x array<f32> [pixels, channels] (a band), 1 stats array<f32> [groups] (means; read when
//             CENTERED), 2 partials array<f32> [groups, chunks], 3 params
//   grid: (ceil(pixels / chunk_pixels), groups)
// entry point finalize: one workgroup per group adds its chunks' partial sums, divides by `count` (pixels of
//   the whole tensor x group_channels) and
//   CENTERED = false: writes the mean to stats[g];
//   CENTERED = true:  reads the mean, writes scale and shift for the group's channels to affine.
//   bindings: 0 partials, 1 gamma array<f32> [channels], 2 beta, 3 stats (read and written), 4 affine
//             array<f32> [2, channels], 5 params
//   grid: (groups)
// uniforms: pixels (u32), channels, group_channels, chunk_base, chunks, chunk_pixels, count (f32), eps (f32)

struct Params {
  pixels: u32, channels: u32, group_channels: u32,
  chunk_base: u32, chunks: u32, chunk_pixels: u32,
  count: f32, eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mean_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials_out: array<f32>;
@group(0) @binding(3) var<uniform> sums_params: Params;

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> affine: array<f32>;
@group(0) @binding(5) var<uniform> final_params: Params;

override CENTERED: bool = false;
// Few invocations and long per-invocation loops: barriers are what costs on CPU devices (SwiftShader).
const WG = 64u;

var<workgroup> sums: array<f32, WG>;

fn reduce_workgroup(li: u32, value: f32) -> f32 {
  sums[li] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (li < s) { sums[li] += sums[li + s]; }
    workgroupBarrier();
  }
  return sums[0];
}

@compute @workgroup_size(WG)
fn partial_sums(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = sums_params;
  let g = wid.y;
  let first = wid.x * p.chunk_pixels;
  let pixels = min(p.chunk_pixels, p.pixels - first);
  var center = 0.0;
  if (CENTERED) { center = mean_in[g]; }
  var acc = 0.0;
  for (var e = li; e < pixels * p.group_channels; e += WG) {
    let pixel = first + e / p.group_channels;
    let v = x[pixel * p.channels + g * p.group_channels + e % p.group_channels];
    if (CENTERED) { acc += (v - center) * (v - center); } else { acc += v; }
  }
  let total = reduce_workgroup(li, acc);
  if (li == 0u) { partials_out[g * p.chunks + p.chunk_base + wid.x] = total; }
}

@compute @workgroup_size(WG)
fn finalize(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = final_params;
  let g = wid.x;
  var acc = 0.0;
  for (var i = li; i < p.chunks; i += WG) { acc += partials[g * p.chunks + i]; }
  let value = reduce_workgroup(li, acc) / p.count;
  if (!CENTERED) {
    if (li == 0u) { stats[g] = value; }
    return;
  }
  let rstd = 1.0 / sqrt(value + p.eps);
  let mean = stats[g];
  for (var c = g * p.group_channels + li; c < (g + 1u) * p.group_channels; c += WG) {
    let scale = gamma[c] * rstd;
    affine[c] = scale;
    affine[p.channels + c] = beta[c] - mean * scale;
  }
}
