/** GPU setup shared by the CLI commands, and progress on stderr. */
import { GpuContext } from '../gpu/device.ts';

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
