// embed: sinusoidal timestep embedding of a scalar t (a timestep or the guidance scale):
//   out = [cos(a_0) .. cos(a_{HALF-1}) | sin(a_0) .. sin(a_{HALF-1})],   a_i = 1000 * t * 10000^(-i / HALF)
//
// Arguments reach 3500 rad (guidance 3.5): an f32 angle there is off by up to 1.2e-4 rad, and GPU sin/cos
// are only specified on [-pi, pi] (to 2^-11). So the angle is carried in turns, a_i / (2 pi) = t * g_i, and
// reduced exactly:
//   g_i = 1000 * 10000^(-i / HALF) / (2 pi), computed in f64 on the host, is split into g_hi (its top 12
//   significant bits) and g_lo = f32(g_i - g_hi); t arrives as an f32 pair t_hi + t_lo (t_lo = f32(t - t_hi))
//   and t_hi is split in-shader by masking into t_a (top 12 significant bits) + t_b (the rest, <= 12 bits).
//   t_a * g_hi and t_b * g_hi are exact in f32 (12 x 12 bits), so their fractional parts are exact; the
//   remaining terms t_hi * g_lo and t_lo * g_i are at most 2^-12 of t * g_i and carry ~1e-8 turn of rounding.
// The reduced angle, in [-1/8, 1/8] turn after removing whole quarter turns, goes through Taylor
// polynomials (truncation < 2e-9 on [-pi/4, pi/4]); the quarter turns are applied as an exact rotation.
// Error against f64: about 1e-7 turn in the argument, so about 1e-6 absolute at most in every output.
//
// bindings: 0 out array<f32> [2 * HALF]
//           1 params (uniform)
// uniforms: t_hi (f32), t_lo (f32)
// grid: ceil(HALF / WG) workgroups of WG; invocation i writes out[i] and out[HALF + i].
// defines: HALF (dim / 2), TURNS_HI / TURNS_LO (comma-separated u32 bit patterns of g_hi, g_lo)

struct Params { t_hi: f32, t_lo: f32 }

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

const WG = 64u;
const HALF = {{HALF}}u;
const TURNS_HI = array<u32, HALF>({{TURNS_HI}});
const TURNS_LO = array<u32, HALF>({{TURNS_LO}});
// Keeps the sign, exponent and top 11 stored mantissa bits: 12 significant bits.
const TOP_12_BITS = 0xfffff000u;
const TAU = 6.283185307179586;

// cos and sin of theta, |theta| <= pi/4: Taylor series to theta^10 and theta^9 (next terms < 2e-9).
fn cos_sin_small(theta: f32) -> vec2f {
  let t2 = theta * theta;
  let c = 1.0 + t2 * (-1.0 / 2.0 + t2 * (1.0 / 24.0 + t2 * (-1.0 / 720.0 + t2 * (1.0 / 40320.0 + t2 * (-1.0 / 3628800.0)))));
  let s = theta * (1.0 + t2 * (-1.0 / 6.0 + t2 * (1.0 / 120.0 + t2 * (-1.0 / 5040.0 + t2 * (1.0 / 362880.0)))));
  return vec2f(c, s);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= HALF) { return; }
  let g_hi = bitcast<f32>(TURNS_HI[i]);
  let g_lo = bitcast<f32>(TURNS_LO[i]);
  let t_a = bitcast<f32>(bitcast<u32>(p.t_hi) & TOP_12_BITS);
  let t_b = p.t_hi - t_a;
  let whole = t_a * g_hi;                     // exact
  let part = t_b * g_hi;                      // exact
  // Whole turns are dropped exactly before the sum, so it stays below 1.5 turns and rounds by <= 6e-8.
  var turns = (whole - round(whole)) + (part - round(part)) + (p.t_hi * g_lo + p.t_lo * (g_hi + g_lo));
  turns -= round(turns);                      // [-1/2, 1/2] turn
  let quarters = round(turns * 4.0);          // -2 .. 2
  let cs = cos_sin_small(TAU * (turns - quarters * 0.25));
  // Rotate (cos, sin) by `quarters` quarter turns: (c, s) -> (-s, c) per quarter.
  var r = cs;
  switch ((i32(quarters) + 4) % 4) {
    case 1: { r = vec2f(-cs.y, cs.x); }
    case 2: { r = -cs; }
    case 3: { r = vec2f(cs.y, -cs.x); }
    default: {}
  }
  out[i] = r.x;
  out[HALF + i] = r.y;
}
