/// <reference lib="dom" />
/**
 * The demo page's second panel: generate text with a model folder — picked with the File
 * System Access API or `<input type=file webkitdirectory>`, served over HTTP (`?model=URL`), or
 * the model the demo just trained (its export, held in memory) — read in place by byte range.
 *
 * @module
 */

import {
  type DirectoryHandleLike,
  directoryHandleSource,
  fileListSource,
  type FileSource,
  generateFromFiles,
  type Gpu,
  type Tokenizer,
  type TokenizerConfig,
  urlSource,
} from "../web.ts";

/** What the panel needs from the page. */
export interface ModelPanelOptions {
  /** The page's device. */
  readonly gpu: Gpu;
  /** Gemma 3's tokenizer, for folders without `tokenizer.json`. */
  readonly tokenizer: Tokenizer;
  /** Gemma 3's `tokenizer_config.json` (chat template), for folders without one. */
  readonly tokenizerConfig: TokenizerConfig;
  /** A model folder URL to load at once (`?model=`), or null. */
  readonly modelUrl: string | null;
}

/** The panel's controls, for the page to hand it a model (the demo's export). */
export interface ModelPanel {
  /** Makes `source` the model to generate with. */
  use(source: FileSource): void;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
};

/**
 * Wires the panel's controls.
 *
 * @param options Device, tokenizer, and a folder URL to start with.
 * @returns The panel.
 */
export function setupModelPanel(options: ModelPanelOptions): ModelPanel {
  let source: FileSource | null = null;
  const status = $("model-status"), button = $<HTMLButtonElement>("generate");
  const use = (s: FileSource) => {
    source = s;
    status.textContent = `model: ${s.label}`;
    button.disabled = false;
  };
  const picker = (globalThis as {
    showDirectoryPicker?: () => Promise<DirectoryHandleLike>;
  }).showDirectoryPicker;
  const pick = $<HTMLButtonElement>("pick");
  if (picker) {
    pick.addEventListener("click", async () => {
      try {
        use(directoryHandleSource(await picker()));
      } catch (e) {
        if ((e as Error).name !== "AbortError") status.textContent = String(e);
      }
    });
  } else {
    pick.hidden = true; // no File System Access API: the file input remains
  }
  $<HTMLInputElement>("files").addEventListener("change", (e) => {
    const files = (e.target as HTMLInputElement).files;
    if (files && files.length > 0) use(fileListSource(files));
  });
  if (options.modelUrl) use(urlSource(options.modelUrl));

  button.addEventListener("click", async () => {
    if (!source) return;
    const output = $("output");
    output.textContent = "";
    button.disabled = true;
    document.body.dataset.generate = "running";
    try {
      const result = await generateFromFiles(source, $<HTMLTextAreaElement>("prompt").value, {
        gpu: options.gpu,
        recipe: $<HTMLInputElement>("recipe").checked,
        maxNewTokens: Number($<HTMLInputElement>("max-new").value) || 64,
        temperature: Number($<HTMLInputElement>("temperature").value) || 0,
        defaultTokenizer: () => Promise.resolve(options.tokenizer),
        defaultTokenizerConfig: () => Promise.resolve(options.tokenizerConfig),
        onText: (t) => output.textContent += t,
      });
      status.textContent = `model: ${result.label} · ${result.tokens.length} tokens in ` +
        `${result.seconds.toFixed(2)} s`;
      document.body.dataset.generate = "done";
    } catch (e) {
      output.textContent = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      document.body.dataset.generate = "failed";
    } finally {
      button.disabled = false;
    }
  });
  return { use };
}
