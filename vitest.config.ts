import { defineConfig } from 'vitest/config';

// SwiftShader runs WebGPU on the CPU: kernels on real shapes take seconds, not milliseconds, and compiling a
// pipeline takes seconds too, so the suite is arranged around compiles (docs/testing.md).
const SLOW_TEST = 120_000;

export default defineConfig({
  test: {
    testTimeout: SLOW_TEST,
    hookTimeout: SLOW_TEST,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['tests/**/*.test.ts'],
          // Two workers keep both cores busy. Files share their worker's modules, so the one GPU context of
          // tests/helpers/gpu.ts and its pipeline cache serve every file the worker runs: each kernel variant
          // compiles once per worker instead of once per file.
          maxWorkers: 2,
          isolate: false,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['e2e/**/*.test.ts'],
          // After the Node tests, one file at a time: Chromium's GPU process and SwiftShader's threads get the
          // whole machine, so a page's timings and timeouts do not depend on what else is running.
          fileParallelism: false,
          // Once, beside other heavy GPU work, a page waited idle until its timeout with no error (Chromium's
          // GPU process on SwiftShader); a failing test runs once more, so only a repeatable failure fails.
          retry: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
