/** Shared by the model tests: the flux-tiny-a fixtures read through the weight plan. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openFileSource } from '#platform';
import { configFromDiffusers, type FluxConfig } from '../../src/model/config.ts';
import type { FluxInputs } from '../../src/model/inputs.ts';
import { FluxCheckpoint, type CanonicalTensor } from '../../src/model/checkpoint.ts';
import type { WeightPlan } from '../../src/model/layout.ts';
import { toFloat32 } from '../../src/weights/dtypes.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { maxRelError } from '../helpers/random.ts';

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

/** A checkpoint with every canonical tensor read up front (the CPU reference wants synchronous access). */
export interface PlannedCheckpoint {
  readonly plan: WeightPlan;
  /** Raw bytes of a canonical tensor, as the plan assembles them from the file. */
  bytes(name: string): Uint8Array;
  float32(name: string): Float32Array;
}

export async function loadPlanned(path: string, config: FluxConfig): Promise<PlannedCheckpoint> {
  const checkpoint = FluxCheckpoint.open(await openSafetensors(path), config);
  try {
    const tensors = new Map<string, CanonicalTensor>();
    for (const name of checkpoint.plan.params.keys()) tensors.set(name, await checkpoint.read(name));
    const get = (name: string): CanonicalTensor => {
      const t = tensors.get(name);
      if (!t) throw new Error(`no canonical parameter ${name}`);
      return t;
    };
    return { plan: checkpoint.plan, bytes: (name) => get(name).bytes, float32: (name) => toFloat32(get(name).bytes, get(name).dtype) };
  } finally {
    await checkpoint.close();
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

/** flux-tiny-a's config (from its config.json) with the golden forward file and its inputs. */
export async function loadTinyGolden(): Promise<{ config: FluxConfig; golden: Map<string, Float32Array>; inputs: FluxInputs }> {
  return { config: configFromDiffusers(await readConfigJson()), ...(await loadForwardGolden()) };
}

/** The golden README's float32 criterion: max |engine − reference| / max |reference|. */
export const FLOAT_MATCH_TOLERANCE = 1e-4;

/** The golden file's block-stream names (`double_blocks.N.img|txt`, `single_blocks.N.out`). */
export function goldenStreamNames(golden: ReadonlyMap<string, Float32Array>): string[] {
  return [...golden.keys()].filter((n) => n.startsWith('double_blocks.') || n.startsWith('single_blocks.')).sort();
}

/** maxRelError of `out` and of every golden block stream, by name. */
export function goldenErrors(out: Float32Array, streams: ReadonlyMap<string, Float32Array>, golden: ReadonlyMap<string, Float32Array>): Record<string, number> {
  const errors: Record<string, number> = { out: maxRelError(out, golden.get('out')!) };
  for (const name of goldenStreamNames(golden)) errors[name] = maxRelError(streams.get(name)!, golden.get(name)!);
  return errors;
}
