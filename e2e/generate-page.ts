/**
 * Generates an image in the browser from the tiny diffusers folder named by `?model=<path under the server
 * root>`, draws it on a canvas and publishes the pixels on `window.generateResult` for e2e/generate.test.ts.
 */
import { FluxPipeline } from '../src/pipeline/flux-pipeline.ts';
import { E2E_GENERATION } from './generate-settings.ts';

declare global {
  interface Window {
    generateResult?: { rgba: number[]; latent: number[]; width: number; height: number; canvasPixels: number[] };
    generateError?: string;
  }
}

async function run(): Promise<void> {
  const status = document.querySelector('#status')!;
  try {
    const folder = new URL(`${new URLSearchParams(location.search).get('model')}/`, location.origin).href;
    const at = (path: string) => new URL(path, folder).href;
    // URLs must name files (folders cannot be listed over HTTP).
    const pipe = await FluxPipeline.load(
      {
        transformer: at('transformer/diffusion_pytorch_model.safetensors'),
        transformerConfig: at('transformer/config.json'),
        vae: at('vae/diffusion_pytorch_model.safetensors'),
        vaeConfig: at('vae/config.json'),
        text: { clip: at('text_encoder/model.safetensors'), clipTokenizer: at('tokenizer/'), t5: at('text_encoder_2/model.safetensors'), t5Tokenizer: at('tokenizer_2/') },
      },
      { precision: 'float' },
    );
    const result = await pipe.generate(E2E_GENERATION);
    pipe.destroy();
    const canvas = document.querySelector<HTMLCanvasElement>('#image')!;
    canvas.width = result.width;
    canvas.height = result.height;
    const context = canvas.getContext('2d')!;
    context.putImageData(new ImageData(result.rgba, result.width, result.height), 0, 0);
    const drawn = context.getImageData(0, 0, result.width, result.height).data;
    window.generateResult = { rgba: Array.from(result.rgba), latent: Array.from(result.latent), width: result.width, height: result.height, canvasPixels: Array.from(drawn) };
    status.textContent = 'done';
  } catch (e) {
    window.generateError = e instanceof Error ? `${e.message}\n${e.stack}` : String(e);
    status.textContent = 'failed';
  }
}

void run();
