/** Load progress in bytes and tensors, with the rate so far and an ETA, for the UI's bar and the CLI's line. */

export interface ByteProgress {
  /** Tensor bytes read from the source so far, and the total expected. */
  readonly bytes: number;
  readonly totalBytes: number;
  readonly tensors: number;
  readonly totalTensors: number;
  /** Average over the load so far. */
  readonly bytesPerSecond: number;
  /** Remaining bytes at that rate; undefined before any byte arrived. */
  readonly etaMs: number | undefined;
  readonly elapsedMs: number;
}

/** Counts tensor reads against totals known from the headers; `read` is what a TensorReader's onRead calls. */
export class LoadMeter {
  private bytes = 0;
  private tensors = 0;
  private readonly start: number;

  constructor(
    private readonly totalBytes: number,
    private readonly totalTensors: number,
    private readonly onProgress?: (p: ByteProgress) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.start = now();
  }

  readonly read = (byteLength: number): void => {
    this.bytes += byteLength;
    this.tensors++;
    this.onProgress?.(this.progress());
  };

  progress(): ByteProgress {
    const elapsedMs = this.now() - this.start;
    const bytesPerSecond = elapsedMs > 0 ? (this.bytes * 1000) / elapsedMs : 0;
    const remaining = Math.max(0, this.totalBytes - this.bytes);
    return {
      bytes: this.bytes,
      totalBytes: this.totalBytes,
      tensors: this.tensors,
      totalTensors: this.totalTensors,
      bytesPerSecond,
      etaMs: bytesPerSecond > 0 ? (remaining / bytesPerSecond) * 1000 : undefined,
      elapsedMs,
    };
  }
}
