/**
 * The `model` section of a training config and the demo model's Gemma 3 config. Private to
 * `train_config.ts` and `presets.ts`.
 *
 * @module
 */

import { GEMMA3_SIZE_FIELDS, type Gemma3Config, gemma3Config } from "../model/config.ts";
import { int, nested, openSection, str, strOrNull, TrainConfigError } from "./_config_fields.ts";

/** The {@linkcode Gemma3Config} sizes a demo model sets: all but the vocabulary's. */
type DemoSize = Exclude<typeof GEMMA3_SIZE_FIELDS[number], "vocabSize">;
const DEMO_SIZES = GEMMA3_SIZE_FIELDS.filter((f): f is DemoSize => f !== "vocabSize");

/**
 * Sizes of the tiny Gemma 3-architecture model trained from scratch by the demo: the
 * {@linkcode Gemma3Config} fields of the same names (queries are scaled by `headDim ** -0.5`),
 * plus the layer pattern.
 */
export interface DemoModelSection extends Pick<Gemma3Config, DemoSize> {
  /** Layer i is global iff (i + 1) % pattern == 0 (Gemma 3: 6). */
  readonly slidingWindowPattern: number;
}

/** Which model to train. */
export interface ModelSection {
  /**
   * `"demo"`: the tiny model of `demo`, trained from scratch over a reduced vocabulary; a
   * folder: a Hugging Face Gemma 3 checkpoint (`config.json`, `*.safetensors`); null: look for
   * `hubRepoId` in the local Hugging Face hub cache.
   */
  readonly path: string | null;
  /** Hub repo of the checkpoint, for the cache lookup (e.g. `google/gemma-3-1b-it`). */
  readonly hubRepoId: string;
  /** Demo model sizes (required when `path` is `"demo"`). */
  readonly demo: DemoModelSection | null;
}

const DEMO_KEYS: readonly string[] = [...DEMO_SIZES, "slidingWindowPattern"];

/** Token ids of the reduced vocabulary the demo model needs. */
export interface DemoVocabIds {
  /** Compact vocabulary size. */
  readonly size: number;
  /** Compact `<bos>`. */
  readonly bosId: number;
  /** Compact `<pad>`. */
  readonly padId: number;
  /** Compact end ids (`<eos>`, `<end_of_turn>`). */
  readonly eosIds: readonly number[];
}

/**
 * Builds the demo model's Gemma 3 config: the section's sizes over a reduced vocabulary.
 *
 * @param demo Sizes.
 * @param vocab The reduced vocabulary's size and special ids.
 * @returns The validated config.
 * @throws {ConfigError} For an invalid combination.
 */
export function demoGemma3Config(demo: DemoModelSection, vocab: DemoVocabIds): Gemma3Config {
  return gemma3Config({
    vocabSize: vocab.size,
    hiddenSize: demo.hiddenSize,
    intermediateSize: demo.intermediateSize,
    numLayers: demo.numLayers,
    numHeads: demo.numHeads,
    numKvHeads: demo.numKvHeads,
    headDim: demo.headDim,
    queryPreAttnScalar: demo.headDim,
    slidingWindow: demo.slidingWindow,
    slidingWindowPattern: demo.slidingWindowPattern,
    maxPositionEmbeddings: demo.maxPositionEmbeddings,
    bosTokenId: vocab.bosId,
    padTokenId: vocab.padId,
    eosTokenIds: [...vocab.eosIds],
  });
}

function demoModel(v: unknown): DemoModelSection | null {
  if (v === null) return null;
  const o = openSection(v, "model.demo", DEMO_KEYS);
  const section: DemoModelSection = Object.freeze({
    hiddenSize: int("model.demo.hiddenSize", o.hiddenSize, 1),
    intermediateSize: int("model.demo.intermediateSize", o.intermediateSize, 1),
    numLayers: int("model.demo.numLayers", o.numLayers, 1),
    numHeads: int("model.demo.numHeads", o.numHeads, 1),
    numKvHeads: int("model.demo.numKvHeads", o.numKvHeads, 1),
    headDim: int("model.demo.headDim", o.headDim, 2),
    slidingWindow: int("model.demo.slidingWindow", o.slidingWindow, 1),
    slidingWindowPattern: int("model.demo.slidingWindowPattern", o.slidingWindowPattern, 1),
    maxPositionEmbeddings: int("model.demo.maxPositionEmbeddings", o.maxPositionEmbeddings, 2),
  });
  // The remaining Gemma rules (heads divide, even head_dim) with placeholder special ids.
  nested(
    "model.demo",
    () => demoGemma3Config(section, { size: 262144, bosId: 2, padId: 0, eosIds: [1, 106] }),
  );
  return section;
}

/**
 * Validates the `model` section.
 *
 * @param v The section.
 * @returns The frozen section.
 * @throws {TrainConfigError} Naming the field.
 */
export function validateModelSection(v: unknown): ModelSection {
  const o = openSection(v, "model", ["path", "hubRepoId", "demo"]);
  const section: ModelSection = Object.freeze({
    path: strOrNull("model.path", o.path),
    hubRepoId: str("model.hubRepoId", o.hubRepoId),
    demo: demoModel(o.demo),
  });
  if (section.path === "demo" && section.demo === null) {
    throw new TrainConfigError(
      "model.demo",
      `model.demo must hold the demo model's sizes when model.path is "demo", got null`,
    );
  }
  return section;
}
