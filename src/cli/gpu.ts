/** GPU setup shared by the CLI commands, and progress on stderr. */
import { GpuContext } from '../gpu/device.ts';
import type { ByteProgress } from '../weights/progress.ts';

/**
 * Runs `fn` with a GPU context and destroys the device afterwards: Dawn keeps Node's event loop alive
 * while a device exists, so a command that forgot it would never exit.
 */
export async function withGpu<T>(fn: (ctx: GpuContext) => Promise<T>): Promise<T> {
  const ctx = await GpuContext.create();
  try {
    return await fn(ctx);
  } finally {
    ctx.destroy();
  }
}

/** A status line on stderr. On a terminal, transient lines overwrite each other; elsewhere only final ones are written. */
export function progressLine(text: string, final = false): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\u001b[2K${text}${final ? '\n' : ''}`);
  else if (final) process.stderr.write(`${text}\n`);
}

const MB = 1e6;

/** `1234/23803 MB (5 %), 120 MB/s, 3 min 10 s left, 58/1160 tensors` */
export function formatLoadProgress(p: ByteProgress): string {
  const percent = p.totalBytes > 0 ? Math.floor((100 * p.bytes) / p.totalBytes) : 100;
  const eta = p.etaMs === undefined ? '' : `, ${Math.floor(p.etaMs / 60_000)} min ${Math.round((p.etaMs % 60_000) / 1000)} s left`;
  return `${(p.bytes / MB).toFixed(0)}/${(p.totalBytes / MB).toFixed(0)} MB (${percent} %), ${(p.bytesPerSecond / MB).toFixed(1)} MB/s${eta}, ${p.tensors}/${p.totalTensors} tensors`;
}
