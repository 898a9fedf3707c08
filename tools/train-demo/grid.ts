// Tiles generated images into one PNG (rows of `--columns`), e.g. the README's sample grid.
// Usage: npx tsx tools/train-demo/grid.ts --images gen.bin --out grid.png [--columns 8] [--scale 2]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { encode } from 'fast-png';

const { values } = parseArgs({ options: { images: { type: 'string' }, out: { type: 'string' }, columns: { type: 'string', default: '8' }, scale: { type: 'string', default: '2' } } });
if (!values.images || !values.out) throw new Error('--images and --out are required');
const rgb = readFileSync(values.images);
const { size, captions } = JSON.parse(readFileSync(`${values.images}.json`, 'utf8')) as { size: number; captions: string[] };
const columns = Number(values.columns), scale = Number(values.scale);
const rows = Math.ceil(captions.length / columns);
const cell = size * scale;
const width = columns * cell, height = rows * cell;
const out = new Uint8Array(width * height * 3).fill(255);
captions.forEach((_, n) => {
  const ox = (n % columns) * cell, oy = Math.floor(n / columns) * cell;
  for (let y = 0; y < cell; y++) {
    for (let x = 0; x < cell; x++) {
      const src = (n * size * size + Math.floor(y / scale) * size + Math.floor(x / scale)) * 3;
      out.set(rgb.subarray(src, src + 3), ((oy + y) * width + ox + x) * 3);
    }
  }
});
writeFileSync(values.out, encode({ width, height, data: out, channels: 3, depth: 8 }));
