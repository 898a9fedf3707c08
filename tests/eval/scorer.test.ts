import { describe, expect, it } from 'vitest';
import { COLOURS, captionOf, layoutScene, makeRng, parseCaption, randomCaptionedScene, renderScene, SCENE_SIZE, DOUBLE_TEMPLATES, SINGLE_TEMPLATES } from '../../src/eval/scenes.ts';
import { EVAL_DOUBLE_COUNT, EVAL_PROMPTS, EVAL_SINGLE_COUNT } from '../../src/eval/prompts.ts';
import { accuracy, detectScene, scoreImage, scoreScene } from '../../src/eval/scorer.ts';

/** 3x3 box blur (twice), roughly the softness of the demo VAE's decodes. */
function blur(rgba: Uint8ClampedArray, size: number): Uint8ClampedArray {
  let src = rgba;
  for (let pass = 0; pass < 2; pass++) {
    const out = new Uint8ClampedArray(src.length);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < 4; c++) {
          let sum = 0, n = 0;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const xx = Math.min(size - 1, Math.max(0, x + dx)), yy = Math.min(size - 1, Math.max(0, y + dy));
              sum += src[(yy * size + xx) * 4 + c]!;
              n++;
            }
          }
          out[(y * size + x) * 4 + c] = Math.round(sum / n);
        }
      }
    }
    src = out;
  }
  return src;
}

describe('scene generator', () => {
  it('is reproducible from its seed and keeps objects off the background colour', () => {
    const a = randomCaptionedScene(makeRng(7));
    const b = randomCaptionedScene(makeRng(7));
    expect(a).toEqual(b);
    expect(renderScene(a.scene)).toEqual(renderScene(b.scene));
    const rng = makeRng(3);
    for (let i = 0; i < 200; i++) {
      const { scene } = randomCaptionedScene(rng);
      for (const o of scene.objects) expect(o.colour).not.toBe(scene.background);
    }
  });

  it('captions parse back to their spec in every template', () => {
    const spec = { background: 'yellow' as const, objects: [{ colour: 'red' as const, shape: 'circle' as const }, { colour: 'blue' as const, shape: 'square' as const }] };
    for (let t = 0; t < DOUBLE_TEMPLATES.length; t++) expect(parseCaption(captionOf(spec, t))).toEqual(spec);
    const single = { background: 'black' as const, objects: [{ colour: 'white' as const, shape: 'triangle' as const }] };
    for (let t = 0; t < SINGLE_TEMPLATES.length; t++) expect(parseCaption(captionOf(single, t))).toEqual(single);
    expect(captionOf(spec)).toBe('a red circle and a blue square on a yellow background');
    expect(parseCaption('a cat on a mat')).toBeNull();
  });

  it('renders the palette colours exactly inside shapes and on the background', () => {
    const scene = layoutScene(makeRng(1), { background: 'green', objects: [{ colour: 'red', shape: 'square' }] });
    const rgba = renderScene(scene);
    const o = scene.objects[0]!;
    const centre = (Math.round(o.cy) * SCENE_SIZE + Math.round(o.cx)) * 4;
    expect([...rgba.subarray(centre, centre + 3)]).toEqual([...COLOURS.red]);
    expect([...rgba.subarray(0, 3)]).toEqual([...COLOURS.green]);
  });
});

describe('prompt-adherence scorer', () => {
  it('scores the fixed prompt set rendered by the generator at 100 %', () => {
    expect(EVAL_PROMPTS.length).toBe(EVAL_SINGLE_COUNT + EVAL_DOUBLE_COUNT);
    expect(new Set(EVAL_PROMPTS.map((p) => p.seed)).size).toBe(EVAL_PROMPTS.length);
    const scores = EVAL_PROMPTS.map(({ prompt, seed, spec }) =>
      scoreImage(prompt, renderScene(layoutScene(makeRng(seed), spec)), SCENE_SIZE, SCENE_SIZE));
    const acc = accuracy(scores);
    expect(acc.single.images).toBe(EVAL_SINGLE_COUNT);
    expect(acc.all).toEqual({ images: EVAL_PROMPTS.length, background: 1, colour: 1, shape: 1, allCorrect: 1 });
  });

  it('stays near 100 % on blurred ground truth (as a VAE decodes it)', () => {
    const rng = makeRng(11);
    const scores = Array.from({ length: 150 }, () => {
      const { scene, caption } = randomCaptionedScene(rng);
      return scoreImage(caption, blur(renderScene(scene), SCENE_SIZE), SCENE_SIZE, SCENE_SIZE);
    });
    const acc = accuracy(scores).all;
    expect(acc.background).toBe(1);
    expect(acc.colour).toBeGreaterThanOrEqual(0.98);
    expect(acc.shape).toBeGreaterThanOrEqual(0.95);
  });

  it('reports wrong attributes as wrong', () => {
    const scene = layoutScene(makeRng(5), { background: 'white', objects: [{ colour: 'blue', shape: 'triangle' }] });
    const detected = detectScene(renderScene(scene), SCENE_SIZE, SCENE_SIZE);
    expect(detected.objects.map((o) => [o.colour, o.shape])).toEqual([['blue', 'triangle']]);
    expect(scoreScene({ background: 'black', objects: [{ colour: 'red', shape: 'circle' }] }, detected))
      .toEqual({ background: false, colours: [false], shapes: [false], allCorrect: false });
    // Two asked for, one drawn: the missing object's attributes are wrong.
    const two = scoreScene({ background: 'white', objects: [{ colour: 'green', shape: 'square' }, { colour: 'blue', shape: 'triangle' }] }, detected);
    expect(two).toEqual({ background: true, colours: [false, true], shapes: [false, true], allCorrect: false });
    const blank = new Uint8ClampedArray(SCENE_SIZE * SCENE_SIZE * 4).fill(245);
    expect(scoreImage('a red circle on a white background', blank, SCENE_SIZE, SCENE_SIZE).colours).toEqual([false]);
  });

  it('rejects a caption that is not a scene caption and mis-sized pixel data', () => {
    expect(() => scoreImage('a photo of a dog', new Uint8Array(16), 2, 2)).toThrow(/not a scene caption/);
    expect(() => detectScene(new Uint8Array(15), 2, 2)).toThrow(/expected 2x2x4/);
  });
});
