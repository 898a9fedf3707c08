// gemm_int: the integer GEMM of a ConvRot linear layer, on packed operands written by convrot_quant:
//   acc[t, o] = sum_k qx[t, k] * qw[o, k]                 exact, i32
//   v[t, o]   = (s_x[t] * s_w[o]) * f32(acc[t, o]) + bias[o]   f32, in this order (as dequantRef)
// How packed words are multiplied is chosen at compile time (#if INT4, #if DOT4: the dot4 built-ins or plain
// integer math). Every path sums the products of u = q + OFFSET
// (unsigned, 0..2^BITS - 1); with the row sums of q,
//   sum_k u_x u_w = acc + OFFSET * (sum_k qx + sum_k qw) + OFFSET^2 * K     over the padded K.
//
// bindings: 0 xq     array<vec4u> [M, kv]  packed activations, kv = words per row / 4
//           1 x_meta array<vec2u> [M]      (bitcast<u32>(s_x), bitcast<u32>(sum_k qx)) per token
//           2 wq     array<vec4u> [N, kv]  packed weights
//           3 w_meta array<vec2u> [N]      (bitcast<u32>(s_w), bitcast<u32>(sum_k qw)) per output channel
//           4 bias   array<f32>   [N]      (read only when has_bias = 1)
//           5 y      array<f32>            (t, o) at y_offset + t * y_stride + o (a view of a wider matrix)
//           6 params (uniform)
// uniforms (u32): m, n, kv, k_len (padded K = kv * 4 * values per word), has_bias, y_offset, y_stride (elements)
// grid: (ceil(N / (TN * WG_X)), ceil(M / (TM * WG_Y))); workgroup WG_X x WG_Y; every invocation computes a tile
//       of TM = 16 tokens x TN = 16 channels, straight from storage (no workgroup memory, no barriers).

struct Params { m: u32, n: u32, kv: u32, k_len: u32, has_bias: u32, y_offset: u32, y_stride: u32 }

@group(0) @binding(0) var<storage, read> xq: array<vec4u>;
@group(0) @binding(1) var<storage, read> x_meta: array<vec2u>;
@group(0) @binding(2) var<storage, read> wq: array<vec4u>;
@group(0) @binding(3) var<storage, read> w_meta: array<vec2u>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// Tile of one invocation, 16 tokens x 16 channels: TM + TN packed vec4 loads feed TM * TN * 32 products. On CPU
// devices (SwiftShader) the per-lane loads cost about ten integer operations each, and smaller tiles measured
// up to 1.4x slower. The code below is written out for this tile (mac_part, column, the loads in main).
const TM = 16u;
const TN = 16u;
// Invocations share no memory: a small workgroup keeps its rows in a CPU core's cache.
const WG_X = 4u;
const WG_Y = 2u;
// Partial sums move to the exact i32 totals every FLUSH_VEC4 vec4 words (32 words = 256 INT4 values): the
// 16-bit fields of the INT4 SWAR partials hold at most 32 words of products (see MAC).
const FLUSH_VEC4 = 8u;

// Bits per quantized value: 4 (#if INT4) or 8.
override BITS: u32;
// The unsigned offset of the quantized values: u = q + OFFSET.
override OFFSET: i32 = 1i << (BITS - 1u);

// One packed word (or a part of it, after part()) of each of 16 rows: rows 4i .. 4i + 3 in element i.
alias Words = array<vec4u, 4>;

// The tile's partial sums of u_x u_w: a[16 * c + r] holds channels 4c .. 4c + 3 of token r.
alias Tile = array<vec4u, TM * TN / 4u>;

// Adds the products of one part of a word: f of the 16 tokens, g of the 16 channels. Values in, values out:
// CPU devices keep them in registers, where a private array would live in memory.
fn mac_part(a: Tile, f: Words, g: Words) -> Tile {
  return Tile(a[0] + mac(f[0].x, g[0]), a[1] + mac(f[0].y, g[0]), a[2] + mac(f[0].z, g[0]), a[3] + mac(f[0].w, g[0]),
              a[4] + mac(f[1].x, g[0]), a[5] + mac(f[1].y, g[0]), a[6] + mac(f[1].z, g[0]), a[7] + mac(f[1].w, g[0]),
              a[8] + mac(f[2].x, g[0]), a[9] + mac(f[2].y, g[0]), a[10] + mac(f[2].z, g[0]), a[11] + mac(f[2].w, g[0]),
              a[12] + mac(f[3].x, g[0]), a[13] + mac(f[3].y, g[0]), a[14] + mac(f[3].z, g[0]), a[15] + mac(f[3].w, g[0]),
              a[16] + mac(f[0].x, g[1]), a[17] + mac(f[0].y, g[1]), a[18] + mac(f[0].z, g[1]), a[19] + mac(f[0].w, g[1]),
              a[20] + mac(f[1].x, g[1]), a[21] + mac(f[1].y, g[1]), a[22] + mac(f[1].z, g[1]), a[23] + mac(f[1].w, g[1]),
              a[24] + mac(f[2].x, g[1]), a[25] + mac(f[2].y, g[1]), a[26] + mac(f[2].z, g[1]), a[27] + mac(f[2].w, g[1]),
              a[28] + mac(f[3].x, g[1]), a[29] + mac(f[3].y, g[1]), a[30] + mac(f[3].z, g[1]), a[31] + mac(f[3].w, g[1]),
              a[32] + mac(f[0].x, g[2]), a[33] + mac(f[0].y, g[2]), a[34] + mac(f[0].z, g[2]), a[35] + mac(f[0].w, g[2]),
              a[36] + mac(f[1].x, g[2]), a[37] + mac(f[1].y, g[2]), a[38] + mac(f[1].z, g[2]), a[39] + mac(f[1].w, g[2]),
              a[40] + mac(f[2].x, g[2]), a[41] + mac(f[2].y, g[2]), a[42] + mac(f[2].z, g[2]), a[43] + mac(f[2].w, g[2]),
              a[44] + mac(f[3].x, g[2]), a[45] + mac(f[3].y, g[2]), a[46] + mac(f[3].z, g[2]), a[47] + mac(f[3].w, g[2]),
              a[48] + mac(f[0].x, g[3]), a[49] + mac(f[0].y, g[3]), a[50] + mac(f[0].z, g[3]), a[51] + mac(f[0].w, g[3]),
              a[52] + mac(f[1].x, g[3]), a[53] + mac(f[1].y, g[3]), a[54] + mac(f[1].z, g[3]), a[55] + mac(f[1].w, g[3]),
              a[56] + mac(f[2].x, g[3]), a[57] + mac(f[2].y, g[3]), a[58] + mac(f[2].z, g[3]), a[59] + mac(f[2].w, g[3]),
              a[60] + mac(f[3].x, g[3]), a[61] + mac(f[3].y, g[3]), a[62] + mac(f[3].z, g[3]), a[63] + mac(f[3].w, g[3]));
}

// How packed words are multiplied. Every path multiplies the unsigned u = q + 2^(bits - 1) (q XOR the sign bit
// of each field, unsigned()), so the GEMM only needs unsigned arithmetic, which CPU devices run 2 to 4x faster
// than signed; the dequantization removes the offsets with the row sums of q. A word splits into parts (part,
// then next for the following one); mac multiplies a token's part by 4 channels' parts into u32 partial sums;
// mac_word runs every part of a word through mac_part; to_total turns a flushed partial into its exact i32 value.
#if INT4
const TO_UNSIGNED = vec4u(0x88888888u);
#else
const TO_UNSIGNED = vec4u(0x80808080u);
#endif
fn unsigned(w: Words) -> Words { return Words(w[0] ^ TO_UNSIGNED, w[1] ^ TO_UNSIGNED, w[2] ^ TO_UNSIGNED, w[3] ^ TO_UNSIGNED); }

#if DOT4
// 4 unsigned bytes of a token's part against 4 channels' parts.
fn mac(f: u32, g: vec4u) -> vec4u {
  return vec4u(dot4U8Packed(f, g.x), dot4U8Packed(f, g.y), dot4U8Packed(f, g.z), dot4U8Packed(f, g.w));
}
fn to_total(s: vec4u) -> vec4i { return vec4i(s); }
#if INT4
// The even and the odd nibbles of a word are 4 unsigned bytes each. The two parts go through a loop, not
// inlined like the others: SwiftShader's JIT crashes on a block with the 2048 dot4 emulations of four inlined
// words (CPU devices take the plain path anyway, see prefersDot4 in src/kernels/convrot.ts).
const BYTE_NIBBLES = vec4u(0x0f0f0f0fu);
fn part(w: Words) -> Words { return Words(w[0] & BYTE_NIBBLES, w[1] & BYTE_NIBBLES, w[2] & BYTE_NIBBLES, w[3] & BYTE_NIBBLES); }
fn next(w: Words) -> Words { return Words(w[0] >> vec4u(4u), w[1] >> vec4u(4u), w[2] >> vec4u(4u), w[3] >> vec4u(4u)); }
fn mac_word(a: Tile, x: Words, w: Words) -> Tile {
  var t = a;
  var ux = unsigned(x);
  var uw = unsigned(w);
  for (var nibble = 0u; nibble < 2u; nibble++) {
    t = mac_part(t, part(ux), part(uw));
    ux = next(ux);
    uw = next(uw);
  }
  return t;
}
#else
// A word is 4 unsigned bytes: one part.
fn mac_word(a: Tile, x: Words, w: Words) -> Tile { return mac_part(a, unsigned(x), unsigned(w)); }
#endif
#else
// The plain paths take a word in 4 parts, one product per 32-bit lane of each part.
fn mac(f: u32, g: vec4u) -> vec4u { return f * g; }
fn mac_parts(a: Tile, x0: Words, w0: Words) -> Tile {
  let x1 = next(x0);
  let w1 = next(w0);
  let x2 = next(x1);
  let w2 = next(w1);
  let t = mac_part(mac_part(mac_part(a, part(x0), part(w0)), part(x1), part(w1)), part(x2), part(w2));
  return mac_part(t, part(next(x2)), part(next(w2)));
}
#if INT4
// SIMD within a register: two 16-bit fields per u32. For unsigned a0, a1, b0, b1 < 2^8,
// (a0 + a1 * 2^16) * (b1 + b0 * 2^16) mod 2^32 has a0 * b0 + a1 * b1 in its top 16 bits (a0 * b1 < 2^16 below
// them never carries). Part j pairs nibbles j and j + 4 of a word as (low, high) fields; the weight word is
// turned by 16 bits first, so its fields come swapped and each multiply-add sums 2 of the 8 products u_x * u_w
// of the word. On CPU devices (no native dot4) this beats both the emulated dot4 built-ins and one product per
// multiply. A word adds at most 4 * 2 * 225 = 1800 to the top field and 4 * 225 = 900 to the low one, so 32
// words fit (FLUSH_VEC4).
const FIELD_MASK = vec4u(0x000f000fu);
fn turn(v: vec4u) -> vec4u { return (v << vec4u(16u)) | (v >> vec4u(16u)); }
fn turned(w: Words) -> Words { return Words(turn(w[0]), turn(w[1]), turn(w[2]), turn(w[3])); }
fn part(w: Words) -> Words { return Words(w[0] & FIELD_MASK, w[1] & FIELD_MASK, w[2] & FIELD_MASK, w[3] & FIELD_MASK); }
fn next(w: Words) -> Words { return Words(w[0] >> vec4u(4u), w[1] >> vec4u(4u), w[2] >> vec4u(4u), w[3] >> vec4u(4u)); }
fn mac_word(a: Tile, x: Words, w: Words) -> Tile { return mac_parts(a, unsigned(x), turned(unsigned(w))); }
fn to_total(s: vec4u) -> vec4i { return vec4i(s >> vec4u(16u)); }
#else
// One multiply-add per product of the bytes u = q + 128; 32 words add at most 128 * 255^2 < 2^31.
const BYTE_MASK = vec4u(0xffu);
fn part(w: Words) -> Words { return Words(w[0] & BYTE_MASK, w[1] & BYTE_MASK, w[2] & BYTE_MASK, w[3] & BYTE_MASK); }
fn next(w: Words) -> Words { return Words(w[0] >> vec4u(8u), w[1] >> vec4u(8u), w[2] >> vec4u(8u), w[3] >> vec4u(8u)); }
fn mac_word(a: Tile, x: Words, w: Words) -> Tile { return mac_parts(a, unsigned(x), unsigned(w)); }
fn to_total(s: vec4u) -> vec4i { return vec4i(s); }
#endif
#endif

// Word i (0..3) of each of the 16 vec4 words loaded for the tile's rows, regrouped as Words.
fn column(words: array<vec4u, 16>, i: u32) -> Words {
  var v = words;
  return Words(vec4u(v[0][i], v[1][i], v[2][i], v[3][i]), vec4u(v[4][i], v[5][i], v[6][i], v[7][i]),
               vec4u(v[8][i], v[9][i], v[10][i], v[11][i]), vec4u(v[12][i], v[13][i], v[14][i], v[15][i]));
}

// Row r's offset in vec4 words: rows past the end are clamped to the last one (loaded, never stored), so the
// loop needs no bounds tests.
fn row_offsets(r0: u32, rows: u32, first: u32) -> vec4u {
  return min(vec4u(r0 + first) + vec4u(0u, 1u, 2u, 3u), vec4u(rows - 1u)) * p.kv;
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t0 = gid.y * TM;
  let o0 = gid.x * TN;
  if (t0 >= p.m || o0 >= p.n) { return; }
  let xa = row_offsets(t0, p.m, 0u);
  let xb = row_offsets(t0, p.m, 4u);
  let xc = row_offsets(t0, p.m, 8u);
  let xd = row_offsets(t0, p.m, 12u);
  let wa = row_offsets(o0, p.n, 0u);
  let wb = row_offsets(o0, p.n, 4u);
  let wc = row_offsets(o0, p.n, 8u);
  let wd = row_offsets(o0, p.n, 12u);
  var total: array<vec4i, TM * TN / 4u>;
  for (var k0 = 0u; k0 < p.kv; k0 += FLUSH_VEC4) {
    var a = Tile();
    for (var k = k0; k < min(k0 + FLUSH_VEC4, p.kv); k++) {
      let x = array(xq[xa.x + k], xq[xa.y + k], xq[xa.z + k], xq[xa.w + k], xq[xb.x + k], xq[xb.y + k], xq[xb.z + k], xq[xb.w + k],
                    xq[xc.x + k], xq[xc.y + k], xq[xc.z + k], xq[xc.w + k], xq[xd.x + k], xq[xd.y + k], xq[xd.z + k], xq[xd.w + k]);
      let w = array(wq[wa.x + k], wq[wa.y + k], wq[wa.z + k], wq[wa.w + k], wq[wb.x + k], wq[wb.y + k], wq[wb.z + k], wq[wb.w + k],
                    wq[wc.x + k], wq[wc.y + k], wq[wc.z + k], wq[wc.w + k], wq[wd.x + k], wq[wd.y + k], wq[wd.z + k], wq[wd.w + k]);
      let a1 = mac_word(a, column(x, 0u), column(w, 0u));
      let a2 = mac_word(a1, column(x, 1u), column(w, 1u));
      let a3 = mac_word(a2, column(x, 2u), column(w, 2u));
      a = mac_word(a3, column(x, 3u), column(w, 3u));
    }
    for (var i = 0u; i < TM * TN / 4u; i++) { total[i] += to_total(a[i]); }
  }
  for (var r = 0u; r < TM; r++) {
    let t = t0 + r;
    if (t >= p.m) { break; }
    let xm = x_meta[t];
    for (var c = 0u; c < TN; c++) {
      let o = o0 + c;
      if (o >= p.n) { break; }
      let wm = w_meta[o];
      let raw = total[(c / 4u) * TM + r][c % 4u];
      let acc = raw - OFFSET * (bitcast<i32>(xm.y) + bitcast<i32>(wm.y)) - OFFSET * OFFSET * i32(p.k_len);
      var v = (bitcast<f32>(xm.x) * bitcast<f32>(wm.x)) * f32(acc);
      if (p.has_bias != 0u) { v += bias[o]; }
      y[p.y_offset + t * p.y_stride + o] = v;
    }
  }
}
