/**
 * `bench`: prints the rows of the shared benchmark (src/pipeline/bench.ts), the same the bench page shows: our
 * kernels at FLUX shapes, the embedded demo model's blocks and steps, memory, and onnxruntime-web's WebGPU
 * peers on the same adapter.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  adapterName,
  benchTable,
  comparisonTable,
  DEFAULT_REPEATS,
  LINEAR_SHAPES,
  runBench,
  TARGET_QUANT_SHARE,
  TARGET_W4A4_SPEEDUP,
  TOKEN_COUNTS,
} from '../pipeline/bench.ts';
import { ortPeers, type OrtModule } from '../pipeline/bench-ort.ts';
import type { BenchGrid, LinearPeer } from '../pipeline/bench.ts';
import { FluxPipeline } from '../pipeline/flux-pipeline.ts';
import { UsageError, type Command } from './args.ts';
import { progressLine, withGpu } from './gpu.ts';

/** The embedded demo model of the web demo, measured by default. */
const DEMO_MODEL = fileURLToPath(new URL('../../public/models/flux-demo', import.meta.url));

/** Text cells as aligned columns: the first three left-aligned (names), numbers right-aligned. */
export function formatTable(cells: readonly (readonly string[])[], leftColumns = 3): string {
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells.map((row) => row.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/**
 * onnxruntime-web's WebGPU peers, on the same Dawn adapter as our kernels (the platform module makes Dawn
 * usable to it). ORT is a dev dependency: without it the peer rows are left out, with a line saying so.
 */
async function loadNodePeers(): Promise<{ peers: LinearPeer[]; note?: string }> {
  let ort: OrtModule;
  try {
    ort = await import('onnxruntime-web/webgpu');
  } catch (e) {
    return { peers: [], note: `onnxruntime-web peers: not run (${e instanceof Error ? e.message.split('\n')[0] : String(e)}; it is a dev dependency: npm install)` };
  }
  return { peers: ortPeers(ort) };
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'our f32 / W8A8 / W4A4 kernels at FLUX shapes vs onnxruntime-web, the demo model blocks and steps, memory',
  usage: 'bench [--quick | --shape MxKxN] [--repeats N] [--model <folder>|none] [--json out.json]',
  details: [
    `Full grid: M = ${TOKEN_COUNTS.join(', ')} tokens x (K x N) = ${LINEAR_SHAPES.map(([k, n]) => `${k}x${n}`).join(', ')}, attention at each M;`,
    `--quick runs only M = ${TOKEN_COUNTS[0]}, ${LINEAR_SHAPES[0].join('x')} (the full grid at M = 4096 takes hours without a GPU);`,
    '--shape MxKxN runs one shape of your own (attention at M tokens).',
    `Each item runs once to warm up, then the median of --repeats runs (default ${DEFAULT_REPEATS}, items taking turns) is reported.`,
    'Inputs and weights are on the GPU before timing and outputs stay there; "wall ms" is call to GPU idle, "GPU ms"',
    'the timestamp span. GOPS = 2·M·K·N per wall second. Speed-ups are wall-time ratios. The onnxruntime-web peers run',
    'only on the bench page (bench.html).',
    `--model measures a diffusers folder's blocks and steps at its defaults (default: the embedded demo model, ${DEMO_MODEL}).`,
    `Targets: W4A4 >= ${TARGET_W4A4_SPEEDUP}x f32, rotation + quantization <= ${100 * TARGET_QUANT_SHARE} % of the W4A4 layer.`,
  ].join('\n'),
  options: {
    quick: { type: 'boolean' },
    shape: { type: 'string' },
    repeats: { type: 'string' },
    model: { type: 'string' },
    json: { type: 'string' },
  },
  positionals: { min: 0, max: 0 },
  async run({ values }) {
    const repeats = values.repeats === undefined ? DEFAULT_REPEATS : Number(values.repeats);
    if (!Number.isInteger(repeats) || repeats < 1) throw new UsageError(`--repeats must be a positive integer (got "${String(values.repeats)}")`);
    const modelPath = values.model === 'none' ? undefined : typeof values.model === 'string' ? values.model : existsSync(DEMO_MODEL) ? DEMO_MODEL : undefined;
    if (values.shape !== undefined && (values.quick === true || !/^\d+x\d+x\d+$/.test(String(values.shape)))) {
      throw new UsageError(`--shape must look like 256x3072x3072 (M x K x N), without --quick (got "${String(values.shape)}")`);
    }
    const grid: BenchGrid = values.shape !== undefined ? (values.shape as BenchGrid) : values.quick === true ? 'quick' : 'full';
    const { peers, note: peerNote } = await loadNodePeers();
    const report = await withGpu(async (ctx) => {
      const model = modelPath === undefined ? undefined : await FluxPipeline.load(modelPath, { gpu: ctx, precision: 'mixed' });
      try {
        return await runBench(ctx, {
          grid,
          repeats,
          model,
          peers,
          platform: `Node ${process.version} (Dawn, webgpu package)`,
          onProgress: (p) => progressLine(`${p.done}/${p.total} ${p.label}`),
        });
      } finally {
        model?.destroy();
      }
    });
    progressLine('', true);
    const lines = [
      `device: ${adapterName(report.adapter)}; integer GEMM: ${report.dot4 ? 'dot4 built-ins' : 'plain integer math'}; timing: ${report.timing}, median of ${repeats}`,
      formatTable(benchTable(report)),
      '',
      formatTable(comparisonTable(report), 1),
      ...(peerNote ? [peerNote] : []),
      `targets: W4A4 >= ${TARGET_W4A4_SPEEDUP}x f32, rotation + quantization <= ${100 * TARGET_QUANT_SHARE} % of the W4A4 layer`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (typeof values.json === 'string') await writeFile(values.json, JSON.stringify(report, null, 2) + '\n');
  },
};
