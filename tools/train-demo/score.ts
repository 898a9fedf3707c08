// Scores generated images against their captions and prints the accuracy as JSON.
// Usage: npx tsx tools/train-demo/score.ts --images gen.bin   (gen.bin: raw RGB uint8 [n, size, size, 3];
//        gen.bin.json: {"size": 64, "captions": [...]}, as tools/train-demo/train.py writes them)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { accuracy, scoreImage } from '../../src/eval/scorer.ts';

const { values } = parseArgs({ options: { images: { type: 'string' } } });
if (!values.images) throw new Error('--images is required');
const rgb = readFileSync(values.images);
const { size, captions } = JSON.parse(readFileSync(`${values.images}.json`, 'utf8')) as { size: number; captions: string[] };
const pixels = size * size * 3;
const scores = captions.map((caption, n) => scoreImage(caption, rgb.subarray(n * pixels, (n + 1) * pixels), size, size, 3));
console.log(JSON.stringify(accuracy(scores)));
