// Writes procedural scenes for the Python trainer: <out> = raw RGB uint8 [count, size, size, 3], <out>.json = captions.
// Usage: npx tsx tools/train-demo/dump-dataset.ts --seed 0 --count 20000 --out /tmp/data.bin
//        npx tsx tools/train-demo/dump-dataset.ts --eval --extra 256 --out /tmp/eval.json
//          -> {"fixed": the scorer's fixed prompt set, "extra": that many more random canonical prompts with seeds}
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { captionOf, makeRng, randomCaptionedScene, randomSpec, renderScene, SCENE_SIZE } from '../../src/eval/scenes.ts';
import { EVAL_PROMPTS } from '../../src/eval/prompts.ts';

/** Seed of the extra (larger, Python-only) evaluation prompt stream. */
const EXTRA_PROMPT_SEED = 777;

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '0' },
    count: { type: 'string', default: '1000' },
    out: { type: 'string' },
    eval: { type: 'boolean', default: false },
    extra: { type: 'string', default: '0' },
  },
});
if (!values.out) throw new Error('--out is required');

if (values.eval) {
  const fixed = EVAL_PROMPTS.map(({ prompt, seed }) => ({ prompt, seed }));
  const rng = makeRng(EXTRA_PROMPT_SEED);
  const extra = Array.from({ length: Number(values.extra) }, (_, i) => ({ prompt: captionOf(randomSpec(rng)), seed: 5000 + i }));
  writeFileSync(values.out, JSON.stringify({ fixed, extra }, null, 1));
} else {
  const count = Number(values.count);
  const rng = makeRng(Number(values.seed));
  const pixels = SCENE_SIZE * SCENE_SIZE;
  const rgb = new Uint8Array(count * pixels * 3);
  const captions: string[] = [];
  for (let n = 0; n < count; n++) {
    const { scene, caption } = randomCaptionedScene(rng);
    const rgba = renderScene(scene);
    for (let p = 0; p < pixels; p++) {
      rgb.set(rgba.subarray(p * 4, p * 4 + 3), (n * pixels + p) * 3);
    }
    captions.push(caption);
  }
  writeFileSync(values.out, rgb);
  writeFileSync(`${values.out}.json`, JSON.stringify({ size: SCENE_SIZE, captions }));
}
