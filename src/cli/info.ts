/** `info`: what a checkpoint holds, read from its header(s) only. */
import { openCheckpoint, type TensorInfo } from '../weights/safetensors.ts';
import type { Command } from './args.ts';

const MIB = 1024 * 1024;
const COLUMN_GAP = '  ';

function formatTable(rows: readonly string[][], rightAligned: ReadonlySet<number>): string[] {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows.map((row) =>
    row
      .map((cell, col) => (rightAligned.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join(COLUMN_GAP)
      .trimEnd(),
  );
}

function tensorRow(t: TensorInfo): string[] {
  return [t.name, t.dtype, `[${t.shape.join(', ')}]`, String(t.byteLength)];
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'list the metadata and tensors (name, dtype, shape, bytes) of a safetensors checkpoint',
  usage: 'info <file.safetensors | *.safetensors.index.json | folder>',
  details: 'A folder is searched for diffusion_pytorch_model.safetensors[.index.json] or model.safetensors[.index.json].',
  options: {},
  positionals: { min: 1, max: 1 },
  async run({ positionals }) {
    const reader = await openCheckpoint(positionals[0]!);
    try {
      const tensors = reader.names().map((name) => reader.info(name));
      const lines = [`checkpoint: ${reader.name}`];
      const metadata = Object.entries(reader.metadata);
      if (metadata.length === 0) lines.push('metadata: none');
      else {
        lines.push('metadata:');
        // Metadata values may hold whole JSON documents; keep each entry on one line.
        for (const [key, value] of metadata) lines.push(`  ${key}: ${value.replace(/\r?\n/g, '\\n')}`);
      }
      lines.push(...formatTable([['name', 'dtype', 'shape', 'bytes'], ...tensors.map(tensorRow)], new Set([3])));
      const totalBytes = tensors.reduce((sum, t) => sum + t.byteLength, 0);
      lines.push(`total: ${tensors.length} tensors, ${totalBytes} bytes (${(totalBytes / MIB).toFixed(1)} MiB)`);
      process.stdout.write(lines.join('\n') + '\n');
    } finally {
      await reader.close();
    }
  },
};
