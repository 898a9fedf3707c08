// Tiles generated images into one PNG (rows of `--columns`), e.g. the README's sample grid.
// Usage: npx tsx tools/train-demo/grid.ts --images gen.bin --out grid.png [--columns 8] [--scale 2]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { encode } from 'fast-png';
import { tileImages } from '../../src/pipeline/image.ts';

const { values } = parseArgs({ options: { images: { type: 'string' }, out: { type: 'string' }, columns: { type: 'string', default: '8' }, scale: { type: 'string', default: '2' } } });
if (!values.images || !values.out) throw new Error('--images and --out are required');
const rgb = readFileSync(values.images);
const { size, captions } = JSON.parse(readFileSync(`${values.images}.json`, 'utf8')) as { size: number; captions: string[] };
const pixels = size * size * 3;
const images = captions.map((_, n) => rgb.subarray(n * pixels, (n + 1) * pixels));
const grid = tileImages(images, size, size, 3, Number(values.columns), Number(values.scale));
writeFileSync(values.out, encode({ ...grid, channels: 3, depth: 8 }));
