/**
 * Registers tfjs-core's gradient functions, which training needs and inference does not.
 *
 * The package's CommonJS bundle (what `@tensorflow/tfjs-core` resolves to in Node) leaves them
 * out; they ship only as the ES module `dist/register_all_gradients.js`, whose relative imports
 * have no file extension (`./gradients/Abs_grad`), which Node's ES module resolver refuses. A
 * resolve hook adds `.js` for imports inside that folder. tfjs keeps its engine and its kernel
 * and gradient registries on `globalThis`, so the registrations made by this second copy of
 * the code are seen by the copy the models use.
 */
import { register } from 'node:module';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOOK = `
export async function resolve(specifier, context, next) {
  if (context.parentURL && context.parentURL.includes('/@tensorflow/tfjs-core/dist/') && specifier.startsWith('.') && !/\\.[cm]?js$/.test(specifier)) {
    try { return await next(specifier + '.js', context); } catch {}
  }
  return next(specifier, context);
}`;

let loaded: Promise<void> | null = null;

export function ensureGradients(): Promise<void> {
  loaded ??= (async () => {
    register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('@tensorflow/tfjs-core'));
    await import(pathToFileURL(`${dist}/register_all_gradients.js`).href);
  })();
  return loaded;
}
