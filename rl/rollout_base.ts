/**
 * The base model of a rollout run, in any runtime: what the learner writes into `run.json`'s
 * `base` (the demo's model section and vocabulary, the GRPO scoring settings), and how a worker
 * turns it — or a model folder of its own — into the `RolloutWorkerBase` it samples with: the
 * model with the run's LoRA adapter attached, the parameters the learner trains, the
 * fingerprint, and the run's scoring.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { demoModelFingerprint } from "../model/fingerprint.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { initGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter } from "../model/lora.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { compactCodec, type IdCodec, VocabMap, type VocabMapJson } from "../model/vocab_map.ts";
import type { GrpoConfig } from "./grpo_config.ts";
import { rolloutScorer } from "./grpo_rollout.ts";
import { demoModelConfig } from "./presets.ts";
import type { RolloutRunInfo } from "./rollout_protocol.ts";
import type { RolloutWorkerBase } from "./rollout_worker.ts";
import { runTrainable } from "./run_session.ts";
import type { TrainConfig } from "./train_config.ts";

/** `run.json`'s `base`: how a worker builds the learner's base model and scores completions. */
export interface RolloutBaseDescription {
  /** `demo`, or `folder` (a worker brings the same folder: its fingerprint is checked). */
  readonly model: "demo" | "folder";
  /** The demo's model section (demo only). */
  readonly demo: TrainConfig["model"]["demo"] | null;
  /** The demo's vocabulary (demo only). */
  readonly vocab: VocabMapJson | null;
  /** The GRPO section (its overlong penalty is part of the scoring). */
  readonly grpo: GrpoConfig;
  /** The run seed (initialises the LoRA adapter; its weights come with every version anyway). */
  readonly seed: number;
}

/**
 * The learner's description of its base model.
 *
 * @param config The run's config.
 * @param vocab The demo's vocabulary map (demo runs), else null.
 * @returns The description (JSON).
 * @example
 * ```ts
 * import { rolloutBaseDescription } from "./rollout_base.ts";
 * import { presetConfig } from "./presets.ts";
 * const d = rolloutBaseDescription(presetConfig("gemma3-1b-gsm8k"), null);
 * console.log(d.model); // "folder"
 * ```
 */
export function rolloutBaseDescription(
  config: TrainConfig,
  vocab: VocabMap | null,
): RolloutBaseDescription {
  const demo = vocab !== null;
  return {
    model: demo ? "demo" : "folder",
    demo: demo ? config.model.demo : null,
    vocab: demo ? vocab.toJSON() : null,
    grpo: config.grpo,
    seed: config.run.seed,
  };
}

/**
 * A worker's base from a model it loaded (its own folder, or the demo's) and that model's
 * codec: the run's LoRA adapter attached when the run trains LoRA, the trained parameters, and
 * the run's scoring (the learner's decoder and reward functions).
 *
 * @param info The run's `run.json`.
 * @param model The base model.
 * @param codec Its tokenizer (compact for the demo).
 * @param fingerprint The model's fingerprint.
 * @returns The base for `runRolloutWorker`.
 */
export function rolloutWorkerBase(
  info: RolloutRunInfo,
  model: Gemma3,
  codec: IdCodec,
  fingerprint: string,
): RolloutWorkerBase {
  const base = info.base as unknown as RolloutBaseDescription;
  const policy = info.lora
    ? model.withLora(LoraAdapter.init(model.gpu, model.config, info.lora, base.seed))
    : model;
  return {
    model: policy,
    trainable: runTrainable(policy),
    fingerprint,
    score: rolloutScorer({
      config: base.grpo,
      decoder: { decode: (ids) => codec.decode(ids, { skipSpecialTokens: true }) },
      eosIds: [...policy.config.eosTokenIds],
    }),
  };
}

/**
 * A worker's base for a demo run, entirely from `run.json` (the model's config and vocabulary;
 * the learner sends every weight with each version).
 *
 * @param info The run's `run.json`.
 * @param options The device and Gemma 3's tokenizer.
 * @returns The base for `runRolloutWorker`.
 * @throws {FieldError} When the run is not a demo run (field `base.model`).
 */
export async function demoRolloutBase(
  info: RolloutRunInfo,
  options: { readonly gpu: Gpu; readonly tokenizer: Tokenizer },
): Promise<RolloutWorkerBase> {
  const base = info.base as unknown as RolloutBaseDescription;
  if (base.model !== "demo" || base.demo === null || base.vocab === null) {
    throw new FieldError(
      "base.model",
      `run ${info.runId} trains a model folder, not the demo: this worker needs that base ` +
        "model folder",
    );
  }
  const vocab = VocabMap.fromJSON(base.vocab);
  const config = demoModelConfig(base.demo, vocab);
  const model = new Gemma3(
    options.gpu,
    config,
    initGemma3Weights(options.gpu, config, { seed: 0 }),
  );
  const fingerprint = await demoModelFingerprint(config, vocab.toJSON());
  return rolloutWorkerBase(info, model, compactCodec(options.tokenizer, vocab), fingerprint);
}
