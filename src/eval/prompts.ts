// The fixed prompt set the prompt-adherence score is measured on: canonical captions with fixed noise seeds.
import { FluxError } from '../errors.ts';
import { captionOf, makeRng, randomSpec, type SceneSpec } from './scenes.ts';

export interface EvalPrompt {
  prompt: string;
  /** Noise seed for the generation. */
  seed: number;
  spec: SceneSpec;
}

/** Seed of the spec stream; distinct from any training seed's stream position by construction (own RNG). */
const EVAL_SPEC_SEED = 20261203;
export const EVAL_SINGLE_COUNT = 32;
export const EVAL_DOUBLE_COUNT = 16;

function buildEvalPrompts(): EvalPrompt[] {
  const rng = makeRng(EVAL_SPEC_SEED);
  const single: EvalPrompt[] = [];
  const double: EvalPrompt[] = [];
  while (single.length < EVAL_SINGLE_COUNT || double.length < EVAL_DOUBLE_COUNT) {
    const spec = randomSpec(rng);
    const list = spec.objects.length === 1 ? single : double;
    const limit = spec.objects.length === 1 ? EVAL_SINGLE_COUNT : EVAL_DOUBLE_COUNT;
    if (list.length < limit) list.push({ prompt: captionOf(spec), seed: 1000 + single.length + double.length, spec });
  }
  return [...single, ...double];
}

/** Single-object prompts first, then two-object prompts; every prompt has its own seed. */
export const EVAL_PROMPTS: readonly EvalPrompt[] = buildEvalPrompts();

/** The first `single` single-object and first `double` two-object prompts of EVAL_PROMPTS (quick runs, tests). */
export function evalPromptSubset(single: number, double: number): EvalPrompt[] {
  if (!(Number.isInteger(single) && Number.isInteger(double) && single >= 0 && double >= 0 && single <= EVAL_SINGLE_COUNT && double <= EVAL_DOUBLE_COUNT && single + double > 0)) {
    throw new FluxError('bad-argument', `prompt subset must be 0-${EVAL_SINGLE_COUNT} single and 0-${EVAL_DOUBLE_COUNT} two-object prompts, not both 0 (got ${single}, ${double})`);
  }
  return [...EVAL_PROMPTS.slice(0, single), ...EVAL_PROMPTS.slice(EVAL_SINGLE_COUNT, EVAL_SINGLE_COUNT + double)];
}
