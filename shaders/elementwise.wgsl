// elementwise: activations, residual adds and block copies on rectangular blocks of row-major f32 buffers.
// A block is rows x cols elements, element (r, c) at offset + r * stride + c (elements), so one dispatch can
// read or write a column range of a wider buffer (the single block's concat(attention, gelu(mlp))).
//
// entry point map:         dst[r, c] = f(src[r, c])                  src and dst in different buffers
//   bindings: 0 src array<f32>, 1 dst array<f32>, 2 params
// entry point map_inplace: dst[r, c] = f(dst[r, c])
//   bindings: 0 dst array<f32>, 1 params
//   f is chosen by the override ACTIVATION: IDENTITY (a copy), GELU_TANH, SILU or QUICK_GELU.
//   uniforms (u32, elements): rows, cols, src_offset, src_stride, dst_offset, dst_stride
//     (map_inplace ignores the src fields)
//
// entry point gated_map:   dst[r, c] = f(gate[r, c]) * up[r, c]    (T5's gated GELU; gate and up may share a buffer)
//   bindings: 0 gate array<f32>, 1 up array<f32>, 2 dst array<f32>, 3 params
//   uniforms (u32, elements): rows, cols, gate_offset, gate_stride, up_offset, up_stride, dst_offset, dst_stride
//
// entry point residual_add: x[r, c] += gate[c] * y[r, c], or x[r, c] += y[r, c] when has_gate = 0;
//                           gate[c] = modulation[gate_offset + c], shared by all rows
//   bindings: 0 x array<f32> (read and written), 1 y array<f32>, 2 modulation array<f32>, 3 params
//   uniforms (u32, elements): rows, cols, y_offset, y_stride, x_offset, x_stride, gate_offset, has_gate
//
// grid (all): ceil(rows * cols / WG) workgroups of WG (split into x·y past 65535; the flat workgroup index
//             is wid.x + wid.y * nwg.x); one invocation per element, r and c from the flat element index.

struct MapParams {
  rows: u32, cols: u32,
  src_offset: u32, src_stride: u32,
  dst_offset: u32, dst_stride: u32,
}

struct ResidualParams {
  rows: u32, cols: u32,
  y_offset: u32, y_stride: u32,
  x_offset: u32, x_stride: u32,
  gate_offset: u32, has_gate: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> map_params: MapParams;

@group(0) @binding(0) var<storage, read_write> inplace: array<f32>;
@group(0) @binding(1) var<uniform> inplace_params: MapParams;

struct GatedParams {
  rows: u32, cols: u32,
  gate_offset: u32, gate_stride: u32,
  up_offset: u32, up_stride: u32,
  dst_offset: u32, dst_stride: u32,
}

@group(0) @binding(0) var<storage, read> gate_src: array<f32>;
@group(0) @binding(1) var<storage, read> up_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> gated_dst: array<f32>;
@group(0) @binding(3) var<uniform> gated_params: GatedParams;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> modulation: array<f32>;
@group(0) @binding(3) var<uniform> residual_params: ResidualParams;

const WG = 256u;

const IDENTITY = 0u;
const GELU_TANH = 1u;
const SILU = 2u;
const QUICK_GELU = 3u;
override ACTIVATION: u32 = IDENTITY;

// exp(80) is finite in f32, and below x = -80 silu(x) is below 1e-33: clamping avoids an infinite exp.
const EXP_ARGUMENT_LIMIT = 80.0;

#include "gelu"

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(min(-v, EXP_ARGUMENT_LIMIT)));
}

// OpenAI CLIP's sigmoid approximation of GELU.
const QUICK_GELU_SLOPE = 1.702;

fn quick_gelu(v: f32) -> f32 {
  return v / (1.0 + exp(min(-QUICK_GELU_SLOPE * v, EXP_ARGUMENT_LIMIT)));
}

fn activation(v: f32) -> f32 {
  switch ACTIVATION {
    case GELU_TANH: { return gelu_tanh(v); }
    case SILU: { return silu(v); }
    case QUICK_GELU: { return quick_gelu(v); }
    default: { return v; }
  }
}

// (row, col) of this invocation's element, or rows past the end (the caller returns) for the tail.
fn element(wid: vec3u, nwg: vec3u, li: u32, cols: u32) -> vec2u {
  let e = (wid.x + wid.y * nwg.x) * WG + li;
  return vec2u(e / cols, e % cols);
}

@compute @workgroup_size(WG)
fn map(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = map_params;
  let rc = element(wid, nwg, li, p.cols);
  if (rc.x >= p.rows) { return; }
  dst[p.dst_offset + rc.x * p.dst_stride + rc.y] = activation(src[p.src_offset + rc.x * p.src_stride + rc.y]);
}

@compute @workgroup_size(WG)
fn map_inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = inplace_params;
  let rc = element(wid, nwg, li, p.cols);
  if (rc.x >= p.rows) { return; }
  let i = p.dst_offset + rc.x * p.dst_stride + rc.y;
  inplace[i] = activation(inplace[i]);
}

@compute @workgroup_size(WG)
fn gated_map(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = gated_params;
  let rc = element(wid, nwg, li, p.cols);
  if (rc.x >= p.rows) { return; }
  let g = gate_src[p.gate_offset + rc.x * p.gate_stride + rc.y];
  gated_dst[p.dst_offset + rc.x * p.dst_stride + rc.y] = activation(g) * up_src[p.up_offset + rc.x * p.up_stride + rc.y];
}

@compute @workgroup_size(WG)
fn residual_add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = residual_params;
  let rc = element(wid, nwg, li, p.cols);
  if (rc.x >= p.rows) { return; }
  var v = y[p.y_offset + rc.x * p.y_stride + rc.y];
  if (p.has_gate != 0u) { v *= modulation[p.gate_offset + rc.y]; }
  x[p.x_offset + rc.x * p.x_stride + rc.y] += v;
}
