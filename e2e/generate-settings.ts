/** The generation both sides of the browser-vs-Node comparison run. */
export const E2E_GENERATION = { prompt: 'a red fox in the snow', width: 32, height: 48, steps: 2, seed: 7 } as const;
