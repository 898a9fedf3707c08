/**
 * Serves the project with Vite on localhost (a secure context, so WebGPU is exposed) and drives Debian's
 * Chromium through Playwright. Playwright's own browser download does not work here.
 */
import { chromium, type Browser } from 'playwright';
import { createServer, type ViteDevServer } from 'vite';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
];

export interface BrowserSession {
  readonly baseUrl: string;
  readonly browser: Browser;
  close(): Promise<void>;
}

/**
 * `appType: 'mpa'` makes the dev server answer 404 for missing files instead of the demo page (its SPA
 * fallback), as a static host does: loaders probe optional files (a folder's tokenizer.json) that way.
 */
export async function startBrowserSession(options: { readonly appType?: 'spa' | 'mpa' } = {}): Promise<BrowserSession> {
  const server: ViteDevServer = await createServer({
    configFile: new URL('../vite.config.ts', import.meta.url).pathname,
    appType: options.appType,
    server: { port: 0, strictPort: false, host: 'localhost' },
    logLevel: 'warn',
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('vite did not start');
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS, headless: true });
  return {
    baseUrl: `http://localhost:${address.port}`,
    browser,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
