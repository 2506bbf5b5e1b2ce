/**
 * The model of a training run, kept in memory across its phases, and how a phase brings it to
 * its starting weights: the previous phase's final checkpoint in a fresh process, then (when
 * continuing an interrupted phase) the checkpoint it was stopped at.
 *
 * @module
 */

import { Gpu, type GpuOptions } from "../kernels/gpu.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { disposeGemma3Weights, initGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { type Trainable, trainableParameters } from "../model/trainable.ts";
import { type LoadedCheckpoint, restoreParams } from "./checkpoint.ts";
import type { PhaseContext } from "./pipeline.ts";
import { demoModelConfig } from "./presets.ts";
import type { RunInputs } from "./run_inputs.ts";
import type { RolloutExecutor } from "./rollout_tasks.ts";
import { DEMO_SOURCE } from "./train_config.ts";

/** The run's model and what every phase shares. */
export interface RunSession {
  /** Lazily loaded inputs (tokenizer, codec, examples). */
  readonly inputs: RunInputs;
  /** Creates (once) the GPU, the model and, for LoRA runs, the adapter. */
  model(): Promise<Gemma3>;
  /** Id of the end-of-turn token in model space. */
  endOfTurn(): Promise<number>;
  /** True once a phase of this process changed the weights. */
  trained: boolean;
  /** Runs GRPO's rollout tasks elsewhere (rollout workers), or null: the learner samples. */
  readonly rollout: RolloutExecutor | null;
  /** Frees the model and adapter, and the GPU when the session created it. */
  dispose(): Promise<void>;
}

/**
 * Builds a run's session; nothing is created before the first `model()` call.
 *
 * @param inputs The run's inputs.
 * @param options `gpu`: the device to use (default: a new one, made with `gpuOptions` — e.g.
 *   kernel tuning — and destroyed by `dispose`); `rollout`: where GRPO's rollout tasks run
 *   (default: the learner).
 * @returns The session.
 * @example
 * ```ts
 * import { createRunSession } from "./run_session.ts";
 * import { createRunInputs, staticInputSources } from "./run_inputs.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * import { presetConfig } from "./presets.ts";
 * const inputs = createRunInputs(presetConfig("demo"), {
 *   sources: staticInputSources({}),
 *   store: new MemoryRunStore(),
 * });
 * const session = createRunSession(inputs);
 * await session.dispose(); // nothing was created
 * ```
 */
export function createRunSession(
  inputs: RunInputs,
  options: {
    readonly gpu?: Gpu;
    readonly gpuOptions?: GpuOptions;
    readonly rollout?: RolloutExecutor;
  } = {},
): RunSession {
  const config = inputs.config;
  let model: Promise<Gemma3> | null = null;
  let ownGpu: Gpu | null = null;
  return {
    inputs,
    trained: false,
    rollout: options.rollout ?? null,
    model() {
      model ??= (async () => {
        const gpu = options.gpu ?? (ownGpu = await Gpu.create(options.gpuOptions));
        let m: Gemma3;
        if (config.model.path === DEMO_SOURCE) {
          const vocab = (await inputs.vocabMap())!;
          const cfg = demoModelConfig(config.model.demo!, vocab);
          m = new Gemma3(gpu, cfg, initGemma3Weights(gpu, cfg, { seed: config.run.seed }));
        } else {
          m = await inputs.sources.loadModel(config.model.path!, gpu);
        }
        if (config.lora) {
          m = m.withLora(
            LoraAdapter.init(gpu, m.config, loraConfig(config.lora), config.run.seed),
          );
        }
        return m;
      })();
      return model;
    },
    async endOfTurn() {
      const ids = (await inputs.codec()).encode("<end_of_turn>", { addSpecialTokens: false });
      return ids[0];
    },
    async dispose() {
      const m = await model?.catch(() => null);
      if (m) {
        m.lora?.dispose();
        disposeGemma3Weights(m.weights);
      }
      ownGpu?.destroy();
    },
  };
}

/**
 * The parameters a run trains: the adapter's for a LoRA model, all weights otherwise.
 *
 * @param model The run's model.
 * @returns Parameters and gradient accumulators (dispose when the phase ends).
 */
export function runTrainable(model: Gemma3): Trainable {
  return trainableParameters(model, model.lora ? "lora" : "full");
}

/**
 * Brings the weights of a fresh process up to the previous phase's final checkpoint.
 *
 * @param session The run's session.
 * @param ctx The phase's context (`weightsFrom`).
 * @param params The trained parameters.
 */
export async function loadStartWeights(
  session: RunSession,
  ctx: PhaseContext,
  params: Trainable,
): Promise<void> {
  if (ctx.weightsFrom && !session.trained) {
    restoreParams(params.params, await ctx.loadCheckpoint(ctx.weightsFrom));
    session.trained = true;
  }
}

/**
 * When continuing an interrupted phase, loads its checkpoint (weights, optimizer, data).
 *
 * @param session The run's session.
 * @param ctx The phase's context (`resumeFrom`).
 * @param params The trained parameters.
 * @returns The checkpoint (for its optimizer state and data position), or null.
 */
export async function loadResumePoint(
  session: RunSession,
  ctx: PhaseContext,
  params: Trainable,
): Promise<LoadedCheckpoint | null> {
  if (!ctx.resumeFrom?.checkpoint) return null;
  const loaded = await ctx.loadCheckpoint(ctx.resumeFrom.checkpoint);
  restoreParams(params.params, loaded);
  session.trained = true;
  return loaded;
}
