/**
 * CPU references for the VAE decoder's operations, in PyTorch's layout and semantics (channel-major
 * [C, H, W] tensors, conv weights [cout, cin, k, k]) so the GPU's pixel-major layouts are checked against
 * an independent formulation. Sums in f64.
 */

/** Conv2d, stride 1, zero padding k/2, with bias: [cin, h, w] → [cout, h, w]. */
export function conv2d(x: Float32Array, cin: number, h: number, w: number, weight: Float32Array, bias: Float32Array, cout: number, k: number): Float32Array {
  const r = (k - 1) / 2;
  const out = new Float32Array(cout * h * w);
  for (let o = 0; o < cout; o++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        let acc = bias[o]!;
        for (let i = 0; i < cin; i++) {
          for (let ky = 0; ky < k; ky++) {
            const iy = y + ky - r;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = xx + kx - r;
              if (ix < 0 || ix >= w) continue;
              acc += weight[((o * cin + i) * k + ky) * k + kx]! * x[(i * h + iy) * w + ix]!;
            }
          }
        }
        out[(o * h + y) * w + xx] = acc;
      }
    }
  }
  return out;
}

/** Nearest-neighbour 2× upsampling: [c, h, w] → [c, 2h, 2w]. */
export function upsampleNearest2x(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(c * 4 * h * w);
  for (let i = 0; i < c; i++) {
    for (let y = 0; y < 2 * h; y++) {
      for (let xx = 0; xx < 2 * w; xx++) out[(i * 2 * h + y) * 2 * w + xx] = x[(i * h + (y >> 1)) * w + (xx >> 1)]!;
    }
  }
  return out;
}

/** GroupNorm statistics as each channel's affine form: GN(x)[c] = scale[c]·x[c] + shift[c]. Returns [scale | shift]. */
export function groupNormAffine(x: Float32Array, c: number, pixels: number, groups: number, eps: number, gamma: Float32Array, beta: Float32Array): Float32Array {
  const per = c / groups;
  const out = new Float32Array(2 * c);
  for (let g = 0; g < groups; g++) {
    const values = x.subarray(g * per * pixels, (g + 1) * per * pixels);
    let sum = 0;
    for (const v of values) sum += v;
    const mean = sum / values.length;
    let sq = 0;
    for (const v of values) sq += (v - mean) ** 2;
    const rstd = 1 / Math.sqrt(sq / values.length + eps);
    for (let j = g * per; j < (g + 1) * per; j++) {
      out[j] = gamma[j]! * rstd;
      out[c + j] = beta[j]! - mean * gamma[j]! * rstd;
    }
  }
  return out;
}

/** GroupNorm: [c, pixels] normalized per group of c/groups channels, then gamma·x + beta. */
export function groupNorm(x: Float32Array, c: number, pixels: number, groups: number, eps: number, gamma: Float32Array, beta: Float32Array): Float32Array {
  const affine = groupNormAffine(x, c, pixels, groups, eps, gamma, beta);
  return x.map((v, i) => {
    const ch = Math.floor(i / pixels);
    return affine[ch]! * v + affine[c + ch]!;
  });
}
