/** Shared by the model tests: the flux-tiny-a fixtures read through the weight plan. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openFileSource } from '#platform';
import type { FluxConfig } from '../../src/model/config.ts';
import type { FluxInputs } from '../../src/model/reference/flux-ref.ts';
import { buildWeightPlan, sliceByteRange, type PlannedParam, type WeightPlan } from '../../src/model/layout.ts';
import { toFloat32 } from '../../src/weights/dtypes.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/flux-tiny-a/', import.meta.url));
export const BFL_TRANSFORMER = `${FIXTURES}transformer.safetensors`;
export const DIFFUSERS_TRANSFORMER = `${FIXTURES}transformer/diffusion_pytorch_model.safetensors`;
export const FORWARD = `${FIXTURES}forward.safetensors`;
export const CONFIG_JSON = `${FIXTURES}config.json`;

export async function readConfigJson(): Promise<unknown> {
  return JSON.parse(await readFile(CONFIG_JSON, 'utf8'));
}

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(await openFileSource(path));
}

/** Name, dtype and shape of every tensor in the file. */
export function tensorList(file: SafetensorsFile): { name: string; dtype: string; shape: readonly number[] }[] {
  return file.names().map((name) => {
    const { dtype, shape } = file.info(name);
    return { name, dtype, shape };
  });
}

/** A checkpoint with its plan; canonical tensors are assembled from the plan's byte ranges. */
export interface PlannedCheckpoint {
  readonly plan: WeightPlan;
  /** Raw bytes of a canonical tensor: its slices' byte ranges, concatenated. */
  bytes(name: string): Uint8Array;
  float32(name: string): Float32Array;
}

export async function loadPlanned(path: string, config: FluxConfig): Promise<PlannedCheckpoint> {
  const file = await openSafetensors(path);
  try {
    const plan = buildWeightPlan(tensorList(file), config);
    const sources = new Map<string, Uint8Array>();
    for (const name of file.names()) sources.set(name, (await file.readTensor(name)).data);
    const param = (name: string): PlannedParam => {
      const p = plan.params.get(name);
      if (!p) throw new Error(`no canonical parameter ${name}`);
      return p;
    };
    const bytes = (name: string): Uint8Array => {
      const ranges = param(name).slices.map((s) => {
        const { byteOffset, byteLength } = sliceByteRange(s);
        return sources.get(s.sourceName)!.subarray(byteOffset, byteOffset + byteLength);
      });
      const out = new Uint8Array(ranges.reduce((n, r) => n + r.length, 0));
      let at = 0;
      for (const r of ranges) {
        out.set(r, at);
        at += r.length;
      }
      return out;
    };
    return { plan, bytes, float32: (name) => toFloat32(bytes(name), param(name).slices[0]!.dtype) };
  } finally {
    await file.close();
  }
}

/** The golden forward file: every tensor as float32, and the inputs of the call it records. */
export async function loadForwardGolden(): Promise<{ golden: Map<string, Float32Array>; inputs: FluxInputs }> {
  const file = await openSafetensors(FORWARD);
  const golden = new Map<string, Float32Array>();
  for (const name of file.names()) golden.set(name, await file.readFloat32(name));
  await file.close();
  const inputs: FluxInputs = {
    img: golden.get('img')!,
    imgIds: golden.get('img_ids')!,
    txt: golden.get('txt')!,
    txtIds: golden.get('txt_ids')!,
    timestep: golden.get('timesteps')![0]!,
    y: golden.get('y')!,
    guidance: golden.get('guidance')![0]!,
  };
  return { golden, inputs };
}
