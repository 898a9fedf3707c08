// bf16 decoding, shared by every kernel that reads checkpoint weights (#include "bf16"). bf16 is the top half of
// an f32, so widening is a shift and exact for every pattern. Two bf16 share a u32, element 2i in the low half
// (the little-endian order of the file).

// Element i of a bf16 array whose word holding it is `word` (= array[i / 2]).
fn bf16_at(word: u32, i: u32) -> f32 {
  return bitcast<f32>(((word >> ((i & 1u) * 16u)) & 0xffffu) << 16u);
}

// Both elements of a word: (element 2i, element 2i + 1).
fn bf16_pair(word: u32) -> vec2f {
  return vec2f(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}
