/**
 * Tokenizing examples and packing them into padded batches with attention, completion and
 * loss masks, plus a resumable {@linkcode BatchIterator}. The tokenizer is structural
 * (`{ encode(text, { addSpecialTokens }) }`), so data/ depends on no model code.
 *
 * Masks, for SFT with next-token prediction (`[batch, seq]`, row-major):
 * - `attentionMask[b, t] = 1` on real tokens, 0 on padding;
 * - `completionMask[b, t] = 1` when `inputIds[b, t]` is a completion (target) token;
 * - `targetIds[b, t] = inputIds[b, t + 1]` and `lossMask[b, t] = completionMask[b, t + 1]`:
 *   the logits at `t` are scored against `targetIds[b, t]` where `lossMask` is 1.
 *
 * @module
 */

import { DataOptionsError } from "./errors.ts";
import { BatchSampler, type BatchSamplerOptions, type BatchSamplerState } from "./batch_sampler.ts";

/** The part of a tokenizer batching needs. */
export interface TokenEncoder {
  /**
   * Encodes text to token ids.
   *
   * @param text The text.
   * @param options `addSpecialTokens`: prepend `<bos>` (tokenizer's own rule).
   * @returns Token ids.
   */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
}

/** A tokenized example: prompt tokens then completion tokens. */
export interface TokenizedExample {
  /** All token ids (prompt, then completion). */
  readonly inputIds: readonly number[];
  /** How many leading ids are prompt; the rest is completion (loss) tokens. */
  readonly promptLength: number;
}

/** Options for {@linkcode tokenizeSftExample}. */
export interface TokenizeOptions {
  /** Id(s) appended to every completion, e.g. `<end_of_turn>` and/or `<eos>`. */
  readonly eosId: number | readonly number[];
  /** Prepend the tokenizer's special tokens (`<bos>`) to the prompt. Default true. */
  readonly addSpecialTokens?: boolean;
  /** Longest sequence allowed. */
  readonly maxLength?: number;
  /**
   * Over `maxLength`: `"drop"` the example (default) or `"truncate"` the completion's tail
   * (the prompt is never cut; an example whose prompt alone does not fit is dropped).
   */
  readonly overflow?: "drop" | "truncate";
}

function endIds(eosId: number | readonly number[]): readonly number[] {
  const ids = typeof eosId === "number" ? [eosId] : eosId;
  if (!Array.isArray(ids) || ids.some((id) => !Number.isInteger(id) || id < 0)) {
    throw new DataOptionsError("eosId", `must be a token id or a list of ids, got ${eosId}`);
  }
  return ids;
}

function checkTokenizeOptions(options: TokenizeOptions): void {
  endIds(options.eosId);
  const { maxLength, overflow } = options;
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength <= 0)) {
    throw new DataOptionsError("maxLength", `must be a positive integer, got ${maxLength}`);
  }
  if (overflow !== undefined && overflow !== "drop" && overflow !== "truncate") {
    throw new DataOptionsError("overflow", `must be "drop" or "truncate", got ${overflow}`);
  }
}

/**
 * Tokenizes one SFT example: prompt (with special tokens) and target (without), then the end
 * id(s). Prompt and target are encoded separately so the boundary is exact.
 *
 * @param example `{ prompt, target }` (see `toSftExample`).
 * @param tokenizer Anything with `encode`.
 * @param options End ids, special tokens, length limit.
 * @returns The tokenized example, or `null` when it is dropped for length.
 * @example
 * ```ts
 * import { tokenizeSftExample } from "./batching.ts";
 * const tok = { encode: (t: string) => [...t].map((c) => c.charCodeAt(0)) };
 * const ex = tokenizeSftExample({ prompt: "Q", target: "A" }, tok, { eosId: 1 });
 * if (ex?.promptLength !== 1 || ex.inputIds.join() !== "81,65,1") throw new Error();
 * ```
 */
export function tokenizeSftExample(
  example: { readonly prompt: string; readonly target: string },
  tokenizer: TokenEncoder,
  options: TokenizeOptions,
): TokenizedExample | null {
  checkTokenizeOptions(options);
  const prompt = tokenizer.encode(example.prompt, {
    addSpecialTokens: options.addSpecialTokens ?? true,
  });
  let completion = [
    ...tokenizer.encode(example.target, { addSpecialTokens: false }),
    ...endIds(
      options.eosId,
    ),
  ];
  const max = options.maxLength;
  if (max !== undefined && prompt.length + completion.length > max) {
    if ((options.overflow ?? "drop") === "drop" || prompt.length >= max) return null;
    completion = completion.slice(0, max - prompt.length);
  }
  return Object.freeze({ inputIds: [...prompt, ...completion], promptLength: prompt.length });
}

/**
 * Tokenizes many SFT examples, reporting how many were dropped for length.
 *
 * @param examples `{ prompt, target }` items.
 * @param tokenizer Anything with `encode`.
 * @param options As for {@linkcode tokenizeSftExample}.
 * @returns Kept sequences, the source index of each, and the dropped count.
 */
export function tokenizeSftExamples(
  examples: readonly { readonly prompt: string; readonly target: string }[],
  tokenizer: TokenEncoder,
  options: TokenizeOptions,
): { sequences: TokenizedExample[]; sourceIndices: number[]; dropped: number } {
  const sequences: TokenizedExample[] = [];
  const sourceIndices: number[] = [];
  examples.forEach((ex, i) => {
    const seq = tokenizeSftExample(ex, tokenizer, options);
    if (seq) {
      sequences.push(seq);
      sourceIndices.push(i);
    }
  });
  return { sequences, sourceIndices, dropped: examples.length - sequences.length };
}

/**
 * Tokenizes a prompt alone (for GRPO generation): no completion, `promptLength` = length.
 *
 * @param prompt The prompt text.
 * @param tokenizer Anything with `encode`.
 * @param addSpecialTokens Prepend `<bos>`. Default true.
 * @returns The tokenized prompt.
 */
export function tokenizePrompt(
  prompt: string,
  tokenizer: TokenEncoder,
  addSpecialTokens = true,
): TokenizedExample {
  const ids = tokenizer.encode(prompt, { addSpecialTokens });
  return Object.freeze({ inputIds: ids, promptLength: ids.length });
}

/** Options for {@linkcode collate}. */
export interface CollateOptions {
  /** Id written into padding positions. */
  readonly padId: number;
  /** `"right"` (default; training) or `"left"` (batched generation, all prompts end together). */
  readonly padding?: "left" | "right";
  /** Round the sequence length up to a multiple of this (e.g. 8, for kernel tiles). */
  readonly padToMultipleOf?: number;
}

/** A padded batch. All 2-D arrays are `[batchSize, seqLen]`, row-major. */
export interface Batch {
  /** Rows. */
  readonly batchSize: number;
  /** Columns (longest sequence, rounded up by `padToMultipleOf`). */
  readonly seqLen: number;
  /** Token ids; padding is `padId`. */
  readonly inputIds: Int32Array;
  /** 1 on real tokens. */
  readonly attentionMask: Uint8Array;
  /** 1 on completion tokens. */
  readonly completionMask: Uint8Array;
  /** `inputIds` shifted left by one (next-token targets); `padId` in the last column. */
  readonly targetIds: Int32Array;
  /** `completionMask` shifted left by one, as floats (multiply into per-token losses). */
  readonly lossMask: Float32Array;
  /** Position of each real token within its sequence (0 at its first token); 0 on padding. */
  readonly positionIds: Int32Array;
  /** Real length of each row. `[batchSize]` */
  readonly lengths: Int32Array;
  /** Prompt length of each row. `[batchSize]` */
  readonly promptLengths: Int32Array;
}

function checkCollateOptions(options: CollateOptions): void {
  if (!Number.isInteger(options.padId) || options.padId < 0) {
    throw new DataOptionsError("padId", `must be a non-negative integer, got ${options.padId}`);
  }
  const padding = options.padding ?? "right";
  if (padding !== "left" && padding !== "right") {
    throw new DataOptionsError("padding", `must be "left" or "right", got ${padding}`);
  }
  const m = options.padToMultipleOf;
  if (m !== undefined && (!Number.isInteger(m) || m <= 0)) {
    throw new DataOptionsError("padToMultipleOf", `must be a positive integer, got ${m}`);
  }
}

/**
 * Pads sequences into one batch with masks.
 *
 * @param sequences Tokenized examples (at least one).
 * @param options Pad id, side, multiple.
 * @returns The batch.
 * @example
 * ```ts
 * import { collate } from "./batching.ts";
 * const b = collate([{ inputIds: [5, 6, 7], promptLength: 2 }, { inputIds: [5], promptLength: 1 }],
 *   { padId: 0, padding: "left" });
 * if (b.inputIds.join() !== "5,6,7,0,0,5") throw new Error();
 * ```
 */
export function collate(sequences: readonly TokenizedExample[], options: CollateOptions): Batch {
  checkCollateOptions(options);
  if (sequences.length === 0) throw new DataOptionsError("sequences", "must not be empty");
  const left = options.padding === "left";
  const multiple = options.padToMultipleOf ?? 1;
  const longest = Math.max(...sequences.map((s) => s.inputIds.length));
  const seqLen = Math.max(1, Math.ceil(longest / multiple) * multiple);
  const batchSize = sequences.length;
  const inputIds = new Int32Array(batchSize * seqLen).fill(options.padId);
  const attentionMask = new Uint8Array(batchSize * seqLen);
  const completionMask = new Uint8Array(batchSize * seqLen);
  const positionIds = new Int32Array(batchSize * seqLen);
  const lengths = new Int32Array(batchSize);
  const promptLengths = new Int32Array(batchSize);
  sequences.forEach((seq, b) => {
    const n = seq.inputIds.length;
    const offset = b * seqLen + (left ? seqLen - n : 0);
    for (let t = 0; t < n; t++) {
      inputIds[offset + t] = seq.inputIds[t];
      attentionMask[offset + t] = 1;
      completionMask[offset + t] = t >= seq.promptLength ? 1 : 0;
      positionIds[offset + t] = t;
    }
    lengths[b] = n;
    promptLengths[b] = seq.promptLength;
  });
  const targetIds = new Int32Array(batchSize * seqLen).fill(options.padId);
  const lossMask = new Float32Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const row = b * seqLen;
    for (let t = 0; t + 1 < seqLen; t++) {
      targetIds[row + t] = inputIds[row + t + 1];
      lossMask[row + t] = completionMask[row + t + 1];
    }
  }
  return Object.freeze({
    batchSize,
    seqLen,
    inputIds,
    attentionMask,
    completionMask,
    targetIds,
    lossMask,
    positionIds,
    lengths,
    promptLengths,
  });
}

/** A batch with its place in the stream and its source rows. */
export interface IteratedBatch extends Batch {
  /** Epoch it belongs to. */
  readonly epoch: number;
  /** Index within the epoch. */
  readonly index: number;
  /** Indices into the iterator's `sequences` of its rows. */
  readonly indices: readonly number[];
}

/** Options for {@linkcode BatchIterator}: batch order plus padding. */
export interface BatchIteratorOptions
  extends Omit<BatchSamplerOptions, "lengths">, CollateOptions {}

/**
 * Endless, deterministic, resumable stream of padded batches over tokenized examples.
 * `state()` is a small JSON object for a checkpoint; `BatchIterator.restore` (or the `state`
 * option) continues with exactly the batch that would have come next.
 *
 * @example
 * ```ts
 * import { BatchIterator } from "./batching.ts";
 * const seqs = [[1, 2], [3], [4, 5, 6], [7]].map((ids) => ({ inputIds: ids, promptLength: 1 }));
 * const it = new BatchIterator(seqs, { batchSize: 2, seed: 3, padId: 0 });
 * it.next();
 * const saved = JSON.parse(JSON.stringify(it.state()));
 * const resumed = BatchIterator.restore(seqs, { batchSize: 2, padId: 0 }, saved);
 * if (it.next().inputIds.join() !== resumed.next().inputIds.join()) throw new Error();
 * ```
 */
export class BatchIterator implements Iterable<IteratedBatch> {
  /** The examples batched. */
  readonly sequences: readonly TokenizedExample[];
  /** The index order. */
  readonly sampler: BatchSampler;
  #collate: CollateOptions;

  /**
   * @param sequences Tokenized examples (at least one).
   * @param options Batch size, seed, shuffle, dropLast, bucketSize, padding, resume state.
   * @throws {DataOptionsError} Naming the invalid field.
   */
  constructor(sequences: readonly TokenizedExample[], options: BatchIteratorOptions) {
    checkCollateOptions(options);
    this.sequences = sequences;
    this.sampler = new BatchSampler(sequences.length, {
      ...options,
      lengths: options.bucketSize !== undefined
        ? sequences.map((s) => s.inputIds.length)
        : undefined,
    });
    this.#collate = Object.freeze({
      padId: options.padId,
      padding: options.padding ?? "right",
      padToMultipleOf: options.padToMultipleOf,
    });
  }

  /**
   * Resumes at a stored position.
   *
   * @param sequences The same examples, in the same order.
   * @param options The same options (a `seed`, if given, must match the state's).
   * @param state From {@linkcode BatchIterator.state}.
   * @returns An iterator whose next batch continues the stored stream.
   */
  static restore(
    sequences: readonly TokenizedExample[],
    options: BatchIteratorOptions,
    state: BatchSamplerState,
  ): BatchIterator {
    return new BatchIterator(sequences, { ...options, state });
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    return this.sampler.batchesPerEpoch;
  }

  /**
   * The position of the next batch.
   *
   * @returns `{ epoch, index, seed }`.
   */
  state(): BatchSamplerState {
    return this.sampler.state();
  }

  /**
   * The next batch (moving into the next epoch after the last one).
   *
   * @returns The padded batch with its position and row indices.
   */
  next(): IteratedBatch {
    const { epoch, index, indices } = this.sampler.next();
    const batch = collate(indices.map((i) => this.sequences[i]), this.#collate);
    return Object.freeze({ ...batch, epoch, index, indices });
  }

  /**
   * Iterates the rest of the current epoch.
   *
   * @returns An iterator over the remaining batches of this epoch.
   */
  *[Symbol.iterator](): Iterator<IteratedBatch> {
    const epoch = this.state().epoch;
    while (this.state().epoch === epoch) yield this.next();
  }
}
