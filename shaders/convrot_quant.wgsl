// convrot_quant: ConvRot row quantization, fused. One workgroup per row (a token of the activations, or an
// output channel of the weights): zero-pad the row to the packed length, rotate every group of GROUP values
// by the normalised Hadamard matrix (ROTATE), take the absmax over the whole padded row, s = max(absmax /
// QMAX, SCALE_FLOOR), q = clamp(round(v / s), QMIN, QMAX) (round() is half-to-even), and pack q into u32
// words, element k at bits BITS * (k % VALUES_PER_WORD) in two's complement. The same f32 operations in
// the same order as the CPU reference (src/quant/hadamard.ts rotateGroup, quantize.ts), so GPU and CPU
// agree bit for bit.
//
// The row is rotated in workgroup memory, in chunks of CHUNK values held as vec4: butterfly stages with a
// stride below 4 act inside a vec4 as it is loaded (rotate_vec4), the others on whole vec4s (rotate_chunk).
// CHUNK is chosen by the host from the device's workgroup storage limit (src/kernels/convrot.ts quantChunk):
// 3840 values under the WebGPU default of 16 KiB, 1024 on CPU devices (their compile time grows with it).
// FLUX rows reach K = 15360 (60 KB), more than workgroup memory holds, so a longer row is processed twice:
// pass 1 rotates each chunk and reduces the absmax, pass 2 rotates it again and quantizes (cheaper than a round
// trip of the rotated row through memory). A row of one chunk is rotated once. See docs/convrot-method.md for what is computed and why.
//
// bindings: 0 src      array<u32>       rows x cols values, (r, c) at src_offset + r * src_stride + c
//                                       (f32 bits, or bf16 pairs with element 2i in the low half: SRC_BF16)
//           1 packed   array<u32>       [rows, words_per_row] quantized values
//           2 row_meta array<vec2u>     [rows] (bitcast<u32>(scale), bitcast<u32>(i32 sum of q over the row))
//           3 params (uniform)
// uniforms (u32): rows, cols (K before padding), src_offset, src_stride (elements of src),
//                 words_per_row (row length in u32 words; words_per_row * VALUES_PER_WORD is the padded K,
//                 a multiple of GROUP and of 16; values past cols are zero)
// grid: one workgroup per row, (rows) or split into x * y past 65535 (row = wid.x + wid.y * nwg.x);
//       workgroup WG invocations (override).
// variants: overrides ROTATION, GROUP, BITS, QMIN, QMAX, ROTATION_SCALE, SRC_BF16, WG, CHUNK; #if SUBGROUPS
// where the device has subgroups.
#if SUBGROUPS
enable subgroups;
#endif

struct Params { rows: u32, cols: u32, src_offset: u32, src_stride: u32, words_per_row: u32 }

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> packed: array<u32>;
@group(0) @binding(2) var<storage, read_write> row_meta: array<vec2u>;
@group(0) @binding(3) var<uniform> p: Params;

// Invocations per workgroup, chosen per device: on a CPU device every barrier switches between all SIMD groups
// of the workgroup, so there it is a single SIMD group.
override WG: u32 = 64u;
// Values per chunk of the row in workgroup memory: a multiple of GROUP and of 4 * VALUES_PER_WORD, within
// the device's workgroup storage (the host chooses it).
override CHUNK: u32;
// The rotation: REGULAR (radix-4 Hadamard, ConvRot's), SYLVESTER (radix-2 Walsh, ablation) or NONE.
const NONE = 0u;
const REGULAR = 1u;
const SYLVESTER = 2u;
override ROTATION: u32;
// Rotation group size N0 (a power of 4 for REGULAR, of 2 for SYLVESTER).
override GROUP: u32;
// Bits per quantized value (4 or 8).
override BITS: u32;
override VALUES_PER_WORD = 32u / BITS;
override VEC4_PER_WORD = VALUES_PER_WORD / 4u;
override VALUE_MASK = (1u << BITS) - 1u;
// The clamp range: [-8, 7] / [-127, 127] for activations, [-7, 7] / [-127, 127] for weights.
override QMIN: f32;
override QMAX: f32;
// f32(1 / sqrt(GROUP)) exactly as the CPU reference rounds it (src/format/rotation.ts rotationScale), applied
// once after all butterfly stages (1.0 for the identity rotation).
override ROTATION_SCALE: f32;
// The source holds bf16 checkpoint weights (two per word) instead of f32.
override SRC_BF16: bool = false;
// Smallest normal f32 (2^-126): an all-zero row gets a finite scale and quantizes to q = 0.
const SCALE_FLOOR = 1.17549435e-38;
// f32 mantissa: 23 stored bits below an implicit leading one.
const MANTISSA_BITS = 23u;
const IMPLICIT_ONE = 1u << MANTISSA_BITS;

var<workgroup> chunk: array<vec4f, CHUNK / 4u>;
// Row absmax as the bits of a non-negative f32 (their u32 order is the float order), and the row sum of q.
var<workgroup> row_max: atomic<u32>;
var<workgroup> row_sum: atomic<i32>;

#include "bf16"

fn load_src(i: u32) -> f32 {
  if (SRC_BF16) { return bf16_at(src[i >> 1u], i); }
  return bitcast<f32>(src[i]);
}

// Radix-4 stages at strides s = 1, 4, ..., GROUP / 4: each quadruple (x0, x1, x2, x3) at i0 + (0, 1, 2, 3) * s
// becomes y_i = S - 2 x_{3-i} with S = (x0 + x1) + (x2 + x3). Stride 1 is the quadruple of a vec4.
fn regular_vec4(v: vec4f) -> vec4f {
  let sum = (v.x + v.y) + (v.z + v.w);
  return vec4f(sum) - 2.0 * v.wzyx;
}

// Strides 4, 16, ... are 1, 4, ... vec4s: quadruples of vec4s at i0 + (0, 1, 2, 3) * s, s in vec4s. A block of
// 4 strides lies inside one group.
fn regular_chunk(len4: u32, li: u32) {
  for (var shift = 0u; (4u << shift) < GROUP; shift += 2u) {
    let s = 1u << shift;
    for (var q = li; q < len4 / 4u; q += WG) {
      let i0 = ((q >> shift) << (shift + 2u)) | (q & (s - 1u));
      let x0 = chunk[i0];
      let x1 = chunk[i0 + s];
      let x2 = chunk[i0 + 2u * s];
      let x3 = chunk[i0 + 3u * s];
      let sum = (x0 + x1) + (x2 + x3);
      chunk[i0] = sum - 2.0 * x3;
      chunk[i0 + s] = sum - 2.0 * x2;
      chunk[i0 + 2u * s] = sum - 2.0 * x1;
      chunk[i0 + 3u * s] = sum - 2.0 * x0;
    }
    workgroupBarrier();
  }
}

// Radix-2 stages at strides h = 1, 2, ..., GROUP / 2: each pair (a, b) at (i, i + h) becomes (a + b, a - b).
// Strides 1 and 2 pair the values of a vec4: (x, y), (z, w), then (x, z), (y, w).
fn sylvester_vec4(v: vec4f) -> vec4f {
  let a = vec4f(v.x + v.y, v.x - v.y, v.z + v.w, v.z - v.w);
  if (GROUP < 4u) { return a; }
  return vec4f(a.x + a.z, a.y + a.w, a.x - a.z, a.y - a.w);
}

// Strides 4, 8, ... are 1, 2, ... vec4s.
fn sylvester_chunk(len4: u32, li: u32) {
  for (var shift = 0u; (4u << shift) < GROUP; shift++) {
    let h = 1u << shift;
    for (var q = li; q < len4 / 2u; q += WG) {
      let i = ((q >> shift) << (shift + 1u)) | (q & (h - 1u));
      let a = chunk[i];
      let b = chunk[i + h];
      chunk[i] = a + b;
      chunk[i + h] = a - b;
    }
    workgroupBarrier();
  }
}

// ROTATION is an override, so each pipeline keeps one of these branches (NONE only pads: plain round-to-nearest).
fn rotate_vec4(v: vec4f) -> vec4f {
  if (ROTATION == REGULAR) { return regular_vec4(v); }
  if (ROTATION == SYLVESTER) { return sylvester_vec4(v); }
  return v;
}

fn rotate_chunk(len4: u32, li: u32) {
  if (ROTATION == REGULAR) { regular_chunk(len4, li); }
  if (ROTATION == SYLVESTER) { sylvester_chunk(len4, li); }
}

// Row reductions into the workgroup atomics: per subgroup first where the device has subgroups.
#if SUBGROUPS
fn publish_max(m: f32) {
  let subgroup_max = subgroupMax(m);
  if (subgroupElect()) { atomicMax(&row_max, bitcast<u32>(subgroup_max)); }
}
fn publish_sum(s: i32) {
  let subgroup_sum = subgroupAdd(s);
  if (subgroupElect()) { atomicAdd(&row_sum, subgroup_sum); }
}
#else
fn publish_max(m: f32) { atomicMax(&row_max, bitcast<u32>(m)); }
fn publish_sum(s: i32) { atomicAdd(&row_sum, s); }
#endif

// The scale max(absmax / QMAX, SCALE_FLOOR), the quotient rounded to nearest even like the CPU's f32 division.
// WGSL only bounds f32 division to 2.5 ULP (compilers turn a division by a constant into a multiplication by
// its reciprocal), so the quotient of the mantissa by QMAX is taken in integers and rounded by hand.
fn row_scale(absmax: f32) -> f32 {
  // Below QMAX * 2^-126 the quotient is under the floor (and the code below assumes a normal absmax).
  if (absmax < QMAX * SCALE_FLOOR) { return SCALE_FLOOR; }
  let bits = bitcast<u32>(absmax);
  let exponent = bits >> MANTISSA_BITS;
  // absmax = mantissa * 2^(exponent - 150) with mantissa in [2^23, 2^24); shifted by 8 it still fits a u32, and
  // its quotient by QMAX (< 2^8) keeps at least 25 significant bits: a rounding bit below the 24 of the result.
  let numerator = ((bits & (IMPLICIT_ONE - 1u)) | IMPLICIT_ONE) << 8u;
  let quotient = numerator / u32(QMAX);
  let inexact = numerator % u32(QMAX) != 0u;
  let dropped = firstLeadingBit(quotient) - MANTISSA_BITS;
  var mantissa = quotient >> dropped;
  let rest = quotient & ((1u << dropped) - 1u);
  let half = 1u << (dropped - 1u);
  if (rest > half || (rest == half && (inexact || (mantissa & 1u) == 1u))) { mantissa += 1u; }
  // quotient * 2^(exponent - 158) = mantissa * 2^(dropped + exponent - 158): biased exponent dropped + exponent - 8.
  // A mantissa rounded up to 2^24 carries into the exponent field, which is the right result.
  return bitcast<f32>(((dropped + exponent - 8u) << MANTISSA_BITS) + (mantissa - IMPLICIT_ONE));
}

// Value col of the row starting at element base of src, zero past cols (the padding).
fn load_value(base: u32, col: u32) -> f32 {
  if (col < p.cols) { return load_src(base + col); }
  return 0.0;
}

// Loads values [c0, c0 + 4 * len4) of the row into the chunk and rotates them.
fn load_rotated(row: u32, c0: u32, len4: u32, li: u32) {
  let base = p.src_offset + row * p.src_stride;
  for (var i = li; i < len4; i += WG) {
    let col = c0 + 4u * i;
    let v = vec4f(load_value(base, col), load_value(base, col + 1u), load_value(base, col + 2u), load_value(base, col + 3u));
    chunk[i] = rotate_vec4(v);
  }
  workgroupBarrier();
  rotate_chunk(len4, li);
}

// q of the 4 rotated values chunk[i]: the division, not a multiplication by 1 / scale, as the reference.
fn quantize_vec4(i: u32, scale: f32) -> vec4i {
  return vec4i(clamp(round(chunk[i] * ROTATION_SCALE / scale), vec4f(QMIN), vec4f(QMAX)));
}

// 4 consecutive values of q as BITS-wide two's-complement fields, the first in the lowest bits.
fn pack_vec4(q: vec4i) -> u32 {
  let u = bitcast<vec4u>(q) & vec4u(VALUE_MASK);
  return u.x | (u.y << BITS) | (u.z << (2u * BITS)) | (u.w << (3u * BITS));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
  if (row >= p.rows) { return; }
  let padded = p.words_per_row * VALUES_PER_WORD;

  var absmax = vec4f();
  for (var c0 = 0u; c0 < padded; c0 += CHUNK) {
    let len4 = min(CHUNK, padded - c0) / 4u;
    load_rotated(row, c0, len4, li);
    for (var i = li; i < len4; i += WG) { absmax = max(absmax, abs(chunk[i] * ROTATION_SCALE)); }
    workgroupBarrier();
  }
  publish_max(max(max(absmax.x, absmax.y), max(absmax.z, absmax.w)));
  workgroupBarrier();
  let scale = row_scale(bitcast<f32>(atomicLoad(&row_max)));

  var sum = vec4i();
  for (var c0 = 0u; c0 < padded; c0 += CHUNK) {
    let len4 = min(CHUNK, padded - c0) / 4u;
    // A row of one chunk is still rotated in workgroup memory from pass 1.
    if (padded > CHUNK) { load_rotated(row, c0, len4, li); }
    for (var w = li; w < len4 / VEC4_PER_WORD; w += WG) {
      var word = 0u;
      for (var h = 0u; h < VEC4_PER_WORD; h++) {
        let q = quantize_vec4(w * VEC4_PER_WORD + h, scale);
        sum += q;
        word |= pack_vec4(q) << (4u * BITS * h);
      }
      packed[row * p.words_per_row + c0 / VALUES_PER_WORD + w] = word;
    }
    workgroupBarrier();
  }
  publish_sum((sum.x + sum.y) + (sum.z + sum.w));
  workgroupBarrier();
  if (li == 0u) { row_meta[row] = vec2u(bitcast<u32>(scale), bitcast<u32>(atomicLoad(&row_sum))); }
}
