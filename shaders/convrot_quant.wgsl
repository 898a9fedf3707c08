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
// FLUX rows reach K = 15360 (60 KB), more than workgroup memory holds, so a longer row is processed twice:
// pass 1 rotates each chunk and reduces the absmax, pass 2 rotates it again and quantizes (cheaper than a
// round trip of the rotated row through memory). A row of one chunk is rotated once.
//
// bindings: 0 src      array<SRC_TYPE>  rows x cols values, (r, c) at src_offset + r * src_stride + c
//                                       (f32, or bf16 pairs in u32 with element 2i in the low half: load_src)
//           1 packed   array<u32>       [rows, words_per_row] quantized values
//           2 row_meta array<vec2u>     [rows] (bitcast<u32>(scale), bitcast<u32>(i32 sum of q over the row))
//           3 params (uniform)
// uniforms (u32): rows, cols (K before padding), src_offset, src_stride (elements of src),
//                 words_per_row (row length in u32 words; words_per_row * VALUES_PER_WORD is the padded K,
//                 a multiple of GROUP and of 16; values past cols are zero)
// grid: one workgroup per row, (rows) or split into x * y past 65535 (row = wid.x + wid.y * nwg.x);
//       workgroup WG invocations (override).
{{ENABLE}}

struct Params { rows: u32, cols: u32, src_offset: u32, src_stride: u32, words_per_row: u32 }

@group(0) @binding(0) var<storage, read> src: array<{{SRC_TYPE}}>;
@group(0) @binding(1) var<storage, read_write> packed: array<u32>;
@group(0) @binding(2) var<storage, read_write> row_meta: array<vec2u>;
@group(0) @binding(3) var<uniform> p: Params;

// Invocations per workgroup, chosen per device: on a CPU device every barrier switches between all SIMD groups
// of the workgroup, so there it is a single SIMD group.
override WG: u32 = 64u;
// Values per chunk of the row in workgroup memory (16 KB): a multiple of every supported GROUP.
const CHUNK = 4096u;
const GROUP = {{GROUP}}u;
const BITS = {{BITS}}u;
const VALUES_PER_WORD = 32u / BITS;
const VEC4_PER_WORD = VALUES_PER_WORD / 4u;
const VALUE_MASK = (1u << BITS) - 1u;
const QMIN = {{QMIN}}.0;
const QMAX = {{QMAX}}.0;
// f32(1 / sqrt(GROUP)) exactly as the CPU reference rounds it, applied once after all butterfly stages
// (1.0 for the identity rotation).
const ROTATION_SCALE = bitcast<f32>({{ROTATION_SCALE_BITS}}u);
// Smallest normal f32 (2^-126): an all-zero row gets a finite scale and quantizes to q = 0.
const SCALE_FLOOR = 1.17549435e-38;
// f32 mantissa: 23 stored bits below an implicit leading one.
const MANTISSA_BITS = 23u;
const IMPLICIT_ONE = 1u << MANTISSA_BITS;

var<workgroup> chunk: array<vec4f, CHUNK / 4u>;
// Row absmax as the bits of a non-negative f32 (their u32 order is the float order), and the row sum of q.
var<workgroup> row_max: atomic<u32>;
var<workgroup> row_sum: atomic<i32>;

{{LOAD_SRC}}

{{ROTATE}}

{{REDUCE}}

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
