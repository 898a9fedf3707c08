import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'e2e/**/*.test.ts'],
    // SwiftShader runs WebGPU on the CPU: kernels on real shapes take seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU device per worker; two workers keep both cores busy without oversubscribing SwiftShader.
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
});
