// Procedural scenes for the demo model: one or two flat shapes on a plain background, with a caption.
// The same generator makes the training set (tools/train-demo), the scorer's fixed prompt set and the
// scorer's own ground-truth test images, so all three agree on colours, shapes and caption wording.

export const COLOURS = {
  red: [220, 30, 30],
  green: [30, 170, 60],
  blue: [30, 60, 220],
  yellow: [245, 210, 30],
  white: [245, 245, 245],
  black: [20, 20, 20],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as ColourName[];

export const SHAPE_NAMES = ['circle', 'square', 'triangle'] as const;
export type ShapeName = (typeof SHAPE_NAMES)[number];

/** The demo model's native image size (pixels, square): 64 px -> an 8x8x16 latent -> 16 image tokens. */
export const SCENE_SIZE = 64;

export interface SceneObject {
  shape: ShapeName;
  colour: ColourName;
  /** Centre and size (circle diameter, square side, triangle base and height) in pixels. */
  cx: number;
  cy: number;
  size: number;
}

export interface Scene {
  background: ColourName;
  objects: SceneObject[];
}

/** What a caption asks for (object order as written). */
export interface SceneSpec {
  background: ColourName;
  objects: { colour: ColourName; shape: ShapeName }[];
}

/** Caption templates; `{c1} {s1}` etc. are the objects, `{b}` the background. The first of each is canonical. */
export const SINGLE_TEMPLATES = [
  'a {c1} {s1} on a {b} background',
  'a {c1} {s1} against a {b} background',
  'a {b} background with a {c1} {s1}',
  '{c1} {s1}, {b} background',
] as const;
export const DOUBLE_TEMPLATES = [
  'a {c1} {s1} and a {c2} {s2} on a {b} background',
  'a {c1} {s1} next to a {c2} {s2} on a {b} background',
  'a {b} background with a {c1} {s1} and a {c2} {s2}',
  '{c1} {s1} and {c2} {s2}, {b} background',
] as const;

/** Single-object sizes (px) and two-object sizes; the gap keeps two objects apart so each is its own region. */
const SINGLE_SIZE = [18, 40] as const;
const DOUBLE_SIZE = [14, 26] as const;
const EDGE_MARGIN = 3;
const OBJECT_GAP = 4;
/** Subsamples per pixel side: edges are anti-aliased like a photo of a flat shape, which the VAE learns easily. */
const SUPERSAMPLE = 4;

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function makeRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

function uniform(rng: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

function overlaps(a: SceneObject, b: SceneObject): boolean {
  const reach = (a.size + b.size) / 2 + OBJECT_GAP;
  return Math.abs(a.cx - b.cx) < reach && Math.abs(a.cy - b.cy) < reach;
}

function placeObject(rng: () => number, size: readonly [number, number], spec: { colour: ColourName; shape: ShapeName }, imageSize: number): SceneObject {
  const s = uniform(rng, size[0], size[1]) * (imageSize / SCENE_SIZE);
  const lo = s / 2 + EDGE_MARGIN;
  const hi = imageSize - s / 2 - EDGE_MARGIN;
  return { ...spec, size: s, cx: uniform(rng, lo, hi), cy: uniform(rng, lo, hi) };
}

/** Places the objects of a spec at random positions and sizes (two objects never touch). */
export function layoutScene(rng: () => number, spec: SceneSpec, imageSize = SCENE_SIZE): Scene {
  if (spec.objects.length === 1) {
    return { background: spec.background, objects: [placeObject(rng, SINGLE_SIZE, spec.objects[0]!, imageSize)] };
  }
  for (;;) {
    const objects = spec.objects.map((o) => placeObject(rng, DOUBLE_SIZE, o, imageSize));
    if (!overlaps(objects[0]!, objects[1]!)) return { background: spec.background, objects };
  }
}

/** A random spec: 1 or 2 objects (equally likely), colours never the background's, two objects not identical. */
export function randomSpec(rng: () => number): SceneSpec {
  const background = pick(rng, COLOUR_NAMES);
  const objectColours = COLOUR_NAMES.filter((c) => c !== background);
  const randomObject = () => ({ colour: pick(rng, objectColours), shape: pick(rng, SHAPE_NAMES) });
  const first = randomObject();
  if (rng() < 0.5) return { background, objects: [first] };
  for (;;) {
    const second = randomObject();
    if (second.colour !== first.colour || second.shape !== first.shape) return { background, objects: [first, second] };
  }
}

/** The caption of a spec with the given template index (0 = canonical wording). */
export function captionOf(spec: SceneSpec, template = 0): string {
  const templates = spec.objects.length === 1 ? SINGLE_TEMPLATES : DOUBLE_TEMPLATES;
  const [o1, o2] = spec.objects;
  return templates[template]!
    .replace('{b}', spec.background)
    .replace('{c1}', o1!.colour)
    .replace('{s1}', o1!.shape)
    .replace('{c2}', o2?.colour ?? '')
    .replace('{s2}', o2?.shape ?? '');
}

/** A random captioned scene, using any template. */
export function randomCaptionedScene(rng: () => number, imageSize = SCENE_SIZE): { scene: Scene; caption: string } {
  const spec = randomSpec(rng);
  const template = Math.floor(rng() * SINGLE_TEMPLATES.length);
  const scene = layoutScene(rng, spec, imageSize);
  return { scene, caption: captionOf(spec, template) };
}

const COLOUR_PATTERN = COLOUR_NAMES.join('|');
const SHAPE_PATTERN = SHAPE_NAMES.join('|');

/** Reads the background and objects out of a caption in any template's wording; null if it is none of them. */
export function parseCaption(caption: string): SceneSpec | null {
  const text = caption.trim().toLowerCase();
  const background = new RegExp(`\\b(${COLOUR_PATTERN}) background\\b`).exec(text);
  if (!background) return null;
  const rest = text.slice(0, background.index) + text.slice(background.index + background[0].length);
  const objectPattern = new RegExp(`\\b(${COLOUR_PATTERN}) (${SHAPE_PATTERN})\\b`, 'g');
  const objects = [...rest.matchAll(objectPattern)].map((m) => ({ colour: m[1] as ColourName, shape: m[2] as ShapeName }));
  if (objects.length < 1 || objects.length > 2) return null;
  return { background: background[1] as ColourName, objects };
}

function inside(o: SceneObject, x: number, y: number): boolean {
  const h = o.size / 2;
  const dx = x - o.cx;
  const dy = y - o.cy;
  switch (o.shape) {
    case 'circle':
      return dx * dx + dy * dy <= h * h;
    case 'square':
      return Math.abs(dx) <= h && Math.abs(dy) <= h;
    case 'triangle': {
      // Upright isosceles triangle: apex at the top centre, base along the bottom of the size x size box.
      if (dy < -h || dy > h) return false;
      const halfWidth = (dy + h) / 2;
      return Math.abs(dx) <= halfWidth;
    }
  }
}

/** Renders a scene to RGBA (row-major, 4 bytes a pixel), anti-aliased by supersampling. */
export function renderScene(scene: Scene, imageSize = SCENE_SIZE): Uint8ClampedArray {
  const out = new Uint8ClampedArray(imageSize * imageSize * 4);
  const bg = COLOURS[scene.background];
  const samples = SUPERSAMPLE * SUPERSAMPLE;
  for (let py = 0; py < imageSize; py++) {
    for (let px = 0; px < imageSize; px++) {
      let r = 0, g = 0, b = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const x = px + (sx + 0.5) / SUPERSAMPLE;
          const y = py + (sy + 0.5) / SUPERSAMPLE;
          let colour: readonly number[] = bg;
          for (const o of scene.objects) if (inside(o, x, y)) colour = COLOURS[o.colour];
          r += colour[0]!; g += colour[1]!; b += colour[2]!;
        }
      }
      const i = (py * imageSize + px) * 4;
      out[i] = Math.round(r / samples);
      out[i + 1] = Math.round(g / samples);
      out[i + 2] = Math.round(b / samples);
      out[i + 3] = 255;
    }
  }
  return out;
}
