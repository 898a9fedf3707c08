// Prompt-adherence scorer for the demo model: reads a generated RGBA image back into a scene description
// (background colour, objects' colours and shapes) and compares it with what the caption asked for.
// Pure CPU, no dependencies; the procedural generator (scenes.ts) defines the colours and shapes.
import { COLOURS, COLOUR_NAMES, parseCaption, type ColourName, type SceneSpec, type ShapeName } from './scenes.ts';
import { FluxError } from '../errors.ts';

export interface DetectedObject {
  colour: ColourName;
  shape: ShapeName;
  /** Pixel count of the region. */
  area: number;
}

export interface DetectedScene {
  background: ColourName;
  /** Largest regions first. */
  objects: DetectedObject[];
}

/** A pixel is foreground when it is this far (RGB Euclidean) from the background colour: beyond blur and noise. */
const FOREGROUND_DISTANCE = 80;
/** Regions smaller than this (in pixels, at 64 px) are specks, not objects (the smallest object covers ~98 px). */
const MIN_OBJECT_AREA_AT_64 = 24;
/** Corner boxes are this fraction of the bounding box side. */
const CORNER_FRACTION = 0.2;

/** Shape prototypes in (fill ratio of the bounding box, top-corner occupancy, bottom-corner occupancy):
 * a square fills its box and corners; a circle fills pi/4 with nearly empty corners; an upright triangle fills
 * half its box, its bottom corners about 3/4 (the sides cross them), its top corners nothing. */
const SHAPE_PROTOTYPES: readonly { shape: ShapeName; features: readonly [number, number, number] }[] = [
  { shape: 'square', features: [1, 1, 1] },
  { shape: 'circle', features: [Math.PI / 4, 0.2, 0.2] },
  { shape: 'triangle', features: [0.5, 0, 0.75] },
];

function nearestColour(r: number, g: number, b: number, among: readonly ColourName[] = COLOUR_NAMES): ColourName {
  let best = among[0]!;
  let bestDistance = Infinity;
  for (const name of among) {
    const [cr, cg, cb] = COLOURS[name];
    const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
    if (d < bestDistance) {
      bestDistance = d;
      best = name;
    }
  }
  return best;
}

function majority<T extends string>(counts: Map<T, number>): T {
  let best: T | undefined;
  let bestCount = -1;
  for (const [key, count] of counts) {
    if (count > bestCount) {
      bestCount = count;
      best = key;
    }
  }
  return best!;
}

function classifyShape(mask: Uint8Array, width: number, pixels: number[]): ShapeName {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of pixels) {
    const x = p % width, y = (p - x) / width;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const fill = pixels.length / (w * h);
  const cw = Math.max(1, Math.round(w * CORNER_FRACTION)), ch = Math.max(1, Math.round(h * CORNER_FRACTION));
  const occupancy = (cx: number, cy: number) => {
    let on = 0;
    for (let y = cy; y < cy + ch; y++) for (let x = cx; x < cx + cw; x++) on += mask[y * width + x]!;
    return on / (cw * ch);
  };
  const top = (occupancy(x0, y0) + occupancy(x1 - cw + 1, y0)) / 2;
  const bottom = (occupancy(x0, y1 - ch + 1) + occupancy(x1 - cw + 1, y1 - ch + 1)) / 2;
  const features = [fill, top, bottom];
  let best: ShapeName = 'square';
  let bestDistance = Infinity;
  for (const { shape, features: proto } of SHAPE_PROTOTYPES) {
    const d = proto.reduce((sum, v, i) => sum + (v - features[i]!) ** 2, 0);
    if (d < bestDistance) {
      bestDistance = d;
      best = shape;
    }
  }
  return best;
}

/** Reads the scene out of an RGBA (or RGB: channels 3) image. */
export function detectScene(pixels: ArrayLike<number>, width: number, height: number, channels = 4): DetectedScene {
  if (pixels.length !== width * height * channels) {
    throw new FluxError('bad-argument', `image data has ${pixels.length} values, expected ${width}x${height}x${channels}`);
  }
  const at = (p: number, c: number) => pixels[p * channels + c]!;
  // Background: the majority palette colour of the border pixels.
  const borderVotes = new Map<ColourName, number>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (x !== 0 && y !== 0 && x !== width - 1 && y !== height - 1) continue;
      const p = y * width + x;
      const c = nearestColour(at(p, 0), at(p, 1), at(p, 2));
      borderVotes.set(c, (borderVotes.get(c) ?? 0) + 1);
    }
  }
  const background = majority(borderVotes);
  const [br, bg, bb] = COLOURS[background];
  const mask = new Uint8Array(width * height);
  for (let p = 0; p < width * height; p++) {
    const d = Math.hypot(at(p, 0) - br, at(p, 1) - bg, at(p, 2) - bb);
    mask[p] = d > FOREGROUND_DISTANCE ? 1 : 0;
  }
  // Objects: 4-connected foreground regions, coloured by their pixels' majority palette colour (not the background).
  const objectColours = COLOUR_NAMES.filter((c) => c !== background);
  const seen = new Uint8Array(width * height);
  const minArea = MIN_OBJECT_AREA_AT_64 * (width * height) / (64 * 64);
  const objects: DetectedObject[] = [];
  for (let start = 0; start < width * height; start++) {
    if (!mask[start] || seen[start]) continue;
    const region: number[] = [];
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const p = stack.pop()!;
      region.push(p);
      const x = p % width, y = (p - x) / width;
      const neighbours = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, y > 0 ? p - width : -1, y < height - 1 ? p + width : -1];
      for (const q of neighbours) {
        if (q >= 0 && mask[q] && !seen[q]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (region.length < minArea) continue;
    const votes = new Map<ColourName, number>();
    for (const p of region) {
      const c = nearestColour(at(p, 0), at(p, 1), at(p, 2), objectColours);
      votes.set(c, (votes.get(c) ?? 0) + 1);
    }
    objects.push({ colour: majority(votes), shape: classifyShape(mask, width, region), area: region.length });
  }
  objects.sort((a, b) => b.area - a.area);
  return { background, objects };
}

export interface ImageScore {
  background: boolean;
  /** Per asked-for object (in caption order): colour and shape correct. */
  colours: boolean[];
  shapes: boolean[];
  /** Background, every colour and every shape correct, and no extra object. */
  allCorrect: boolean;
}

/** Compares a detected scene with the spec; two objects are matched to the two asked for in the better order. */
export function scoreScene(spec: SceneSpec, detected: DetectedScene): ImageScore {
  const found = detected.objects.slice(0, spec.objects.length);
  const orders = spec.objects.length === 2 ? [[0, 1], [1, 0]] : [[0]];
  let best: { colours: boolean[]; shapes: boolean[] } | undefined;
  let bestCount = -1;
  for (const order of orders) {
    const colours = spec.objects.map((o, i) => found[order[i]!]?.colour === o.colour);
    const shapes = spec.objects.map((o, i) => found[order[i]!]?.shape === o.shape);
    const count = [...colours, ...shapes].filter(Boolean).length;
    if (count > bestCount) {
      bestCount = count;
      best = { colours, shapes };
    }
  }
  const background = detected.background === spec.background;
  const extra = detected.objects.length > spec.objects.length;
  return { background, ...best!, allCorrect: background && !extra && bestCount === 2 * spec.objects.length };
}

/** Scores an image against its caption (which must be in one of the generator's templates). */
export function scoreImage(caption: string, pixels: ArrayLike<number>, width: number, height: number, channels = 4): ImageScore {
  const spec = parseCaption(caption);
  if (!spec) throw new FluxError('bad-argument', `caption "${caption}" is not a scene caption (colour shape ... colour background)`);
  return scoreScene(spec, detectScene(pixels, width, height, channels));
}

export interface AccuracyGroup {
  images: number;
  background: number;
  colour: number;
  shape: number;
  allCorrect: number;
}

export interface Accuracy {
  single: AccuracyGroup;
  double: AccuracyGroup;
  all: AccuracyGroup;
}

/** Per-attribute accuracy (fractions in [0, 1]) over scored images, split by object count. */
export function accuracy(scores: readonly ImageScore[]): Accuracy {
  const group = (list: readonly ImageScore[]): AccuracyGroup => {
    const mean = (values: boolean[]) => (values.length === 0 ? 0 : values.filter(Boolean).length / values.length);
    return {
      images: list.length,
      background: mean(list.map((s) => s.background)),
      colour: mean(list.flatMap((s) => s.colours)),
      shape: mean(list.flatMap((s) => s.shapes)),
      allCorrect: mean(list.map((s) => s.allCorrect)),
    };
  };
  return {
    single: group(scores.filter((s) => s.colours.length === 1)),
    double: group(scores.filter((s) => s.colours.length === 2)),
    all: group(scores),
  };
}
