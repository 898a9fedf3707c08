import { beforeAll, describe, expect, it } from 'vitest';
import type { FluxConfig } from '../../src/model/config.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { fluxForward } from '../../src/model/reference/flux-ref.ts';
import { BFL_TRANSFORMER, DIFFUSERS_TRANSFORMER, FLOAT_MATCH_TOLERANCE, goldenErrors, goldenStreamNames, loadPlanned, loadTinyGolden } from './helpers.ts';

let config: FluxConfig;
let inputs: FluxInputs;
let golden: Map<string, Float32Array>;

beforeAll(async () => {
  ({ config, golden, inputs } = await loadTinyGolden());

});

describe.each([
  ['reference (BFL) file', BFL_TRANSFORMER],
  ['diffusers file', DIFFUSERS_TRANSFORMER],
])('CPU reference forward from the %s', (_, path) => {
  it('matches forward.safetensors: out and every block stream within 1e-4', async () => {
    const checkpoint = await loadPlanned(path, config);
    const { out, streams } = fluxForward(config, checkpoint.float32, inputs);
    const streamNames = goldenStreamNames(golden);
    expect(streamNames.length).toBe(2 * config.depthDouble + config.depthSingle);
    expect([...streams.keys()].sort()).toEqual(streamNames);
    for (const [name, error] of Object.entries(goldenErrors(out, streams, golden))) expect(error, name).toBeLessThanOrEqual(FLOAT_MATCH_TOLERANCE);
  });
});

describe('fluxForward inputs', () => {
  it('requires guidance for a guidance-distilled model and checks shapes', () => {
    const noParams = () => new Float32Array(0);
    expect(() => fluxForward(config, noParams, { ...inputs, guidance: undefined })).toThrow(/guidance is required/);
    expect(() => fluxForward(config, noParams, { ...inputs, imgIds: inputs.imgIds.subarray(3) })).toThrow(/img_ids: expected \[64, 3\]/);
    expect(() => fluxForward(config, noParams, { ...inputs, txt: inputs.txt.subarray(1) })).toThrow(/txt:/);
  });

  it('routes every linear through the hook by canonical name', async () => {
    const checkpoint = await loadPlanned(BFL_TRANSFORMER, config);
    const seen = new Set<string>();
    const plain = fluxForward(config, checkpoint.float32, inputs);
    const hooked = fluxForward(config, checkpoint.float32, inputs, (name, x, rows) => {
      seen.add(name);
      const w = checkpoint.float32(`${name}.weight`);
      const b = checkpoint.float32(`${name}.bias`);
      const out = new Float32Array(rows * b.length);
      const inF = w.length / b.length;
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < b.length; o++) {
          let acc = 0;
          for (let i = 0; i < inF; i++) acc += x[r * inF + i]! * w[o * inF + i]!;
          out[r * b.length + o] = acc + b[o]!;
        }
      }
      return out;
    });
    expect(hooked.out).toEqual(plain.out);
    const linears = [...checkpoint.plan.params.keys()].filter((n) => n.endsWith('.bias')).map((n) => n.slice(0, -'.bias'.length));
    expect([...seen].sort()).toEqual(linears.sort());
  });
});
