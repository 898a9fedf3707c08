/**
 * The contract every platform module (browser.ts, node.ts) fulfils. These are the only places where
 * the browser and Node differ; everything else imports `#platform` and sees this interface.
 */

/** Random-access bytes: a file, a Blob, an HTTP resource. Reads are lazy, so multi-GB sources never sit in memory. */
export interface ByteSource {
  /** Human-readable name for error messages (a path, URL or file name). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; rejects (FluxError 'io') if the source is shorter. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases OS handles; reading after close is an error. */
  close(): Promise<void>;
}

export interface Platform {
  readonly name: 'browser' | 'node';
  /** The WebGPU entry point (`navigator.gpu` or Dawn's), or undefined when WebGPU is not available. */
  getGpu(): GPU | undefined;
  /** WGSL text of `shaders/<name>.wgsl`. */
  shaderSource(name: string): string;
}
