// GELU with the tanh approximation (FLUX's MLP activation), shared by the element-wise kernels and the GEMM
// epilogues (#include "gelu"), so a fused epilogue computes exactly what the separate pass did.

// sqrt(2 / pi) and the cubic coefficient of the tanh approximation.
const GELU_SCALE = 0.7978845608028654;
const GELU_CUBIC = 0.044715;
// tanh(10) rounds to 1 in f32; clamping there keeps exp-based tanh implementations from overflowing.
const TANH_SATURATION = 10.0;

fn gelu_tanh(v: f32) -> f32 {
  let u = GELU_SCALE * (v + GELU_CUBIC * v * v * v);
  return 0.5 * v * (1.0 + tanh(clamp(u, -TANH_SATURATION, TANH_SATURATION)));
}
