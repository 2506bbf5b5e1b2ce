/**
 * The phases of a training run around one model kept in memory (`run_session.ts`): the
 * recipe's greedy evaluation (`evaluate.ts`), SFT (`sft.ts`) and GRPO (`grpo.ts`), the two
 * training phases driven by the one loop of `train_loop.ts`.
 *
 * Contract of a phase (see `PhaseContext` in `pipeline.ts`): start from `ctx.weightsFrom` (or
 * `ctx.resumeFrom`), log every step with `ctx.logger`, count progress with
 * `ctx.createProgress`, save checkpoints with `ctx.saveCheckpoint` every
 * `config.checkpoint.everySteps` steps, keep samples every `config.run.sampleEvery` steps, and
 * when `ctx.signal` is aborted save a checkpoint and return `{ status: "interrupted" }`. A
 * training phase that completes writes its export (`export/<phase>/`, see `export.ts`).
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import { BatchIterator, tokenizeSftExamples } from "../data/batching.ts";
import type { BatchSamplerState } from "../data/batch_sampler.ts";
import type { GrpoExample } from "../data/examples.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import { copyOf } from "../model/layer.ts";
import type { IdCodec } from "../model/vocab_map.ts";
import type { JsonValue } from "./checkpoint.ts";
import {
  evalPhaseEntry,
  type EvalResult,
  evalStepCount,
  evaluate,
  type EvaluateOptions,
} from "./evaluate.ts";
import { writePhaseExport } from "./export.ts";
import { GrpoTrainer } from "./grpo.ts";
import { AdamW } from "./optimizer.ts";
import type { Phase, PhaseContext, PhaseSample, PhaseSet } from "./pipeline.ts";
import { loadResumePoint, loadStartWeights, type RunSession, runTrainable } from "./run_session.ts";
import { scoreResponse } from "./scoring.ts";
import { SftTrainer } from "./sft.ts";
import { runTrainingLoop } from "./train_loop.ts";
import { evalDecoding, grpoTotalSteps, phaseAdamW, sftTotalSteps } from "./train_config.ts";

/** Where an evaluation's batches are counted (`evaluate()`'s progress sink). */
type EvalProgress = NonNullable<EvaluateOptions["progress"]>;

/**
 * The recipe's evaluation of the run's eval questions with the `eval` settings, on the model's
 * current weights (a phase evaluation and the periodic one of `eval.everySteps` alike). Nothing
 * here draws from a training random stream: greedy decoding, or the GPU sampler's own seeds.
 */
async function evaluateRun(
  session: RunSession,
  ctx: PhaseContext,
  options: {
    readonly model: Gemma3;
    readonly progress: EvalProgress;
    readonly signal: AbortSignal;
  },
): Promise<EvalResult> {
  const { model, progress, signal } = options;
  const config = ctx.config;
  return await evaluate(model, await session.inputs.evalExamples(), {
    tokenizer: await session.inputs.codec(),
    ...evalDecoding(config),
    eosIds: [...model.config.eosTokenIds],
    progress,
    signal,
  });
}

/**
 * The periodic evaluation of a training phase (`eval.everySteps`), as metrics of the step:
 * `eval_accuracy`, `eval_partial_accuracy`, `eval_format_accuracy` on all the eval questions.
 * It re-renders the live report between batches but moves no progress count.
 */
function periodicEvaluation(
  session: RunSession,
  ctx: PhaseContext,
  model: Gemma3,
): (signal: AbortSignal) => Promise<Record<string, number>> {
  return async (signal) => {
    const { summary } = await evaluateRun(session, ctx, {
      model,
      progress: { update: () => ctx.refreshReport() },
      signal,
    });
    return {
      eval_accuracy: summary.accuracy,
      eval_partial_accuracy: summary.partialAccuracy,
      eval_format_accuracy: summary.formatAccuracy,
    };
  };
}

/**
 * The evaluation phase: the recipe's greedy evaluation of the eval questions.
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function evalPhase(session: RunSession): Phase {
  return {
    async run(ctx) {
      const config = ctx.config;
      const model = await session.model();
      const params = runTrainable(model);
      await loadStartWeights(session, ctx, params);
      await loadResumePoint(session, ctx, params);
      params.dispose();
      const questions = await session.inputs.evalExamples();
      const progress = ctx.createProgress(evalStepCount(questions.length, config.eval));
      const result = await evaluateRun(session, ctx, { model, progress, signal: ctx.signal });
      progress.finish();
      for (const r of result.records.slice(0, config.run.samplesPerPoint)) {
        await ctx.addSample({
          step: 0,
          prompt: r.question,
          completion: r.completions[0],
          answer: r.answer,
          correct: r.correct,
        });
      }
      return {
        status: "completed",
        step: result.summary.n,
        checkpoint: null,
        eval: evalPhaseEntry(result.summary),
      };
    },
  };
}

/** Greedy completions of the first `run.samplesPerPoint` eval prompts, as report samples. */
async function evalPromptSamples(
  session: RunSession,
  ctx: PhaseContext,
  model: Gemma3,
  step: number,
): Promise<PhaseSample[]> {
  const n = ctx.config.run.samplesPerPoint;
  if (n <= 0) return [];
  const codec = await session.inputs.codec();
  const questions = (await session.inputs.evalExamples()).slice(0, n);
  const prompts = questions.map((q) => codec.encode(q.prompt, { addSpecialTokens: true }));
  const out = await model.generate(prompts, {
    maxNewTokens: ctx.config.eval.maxNewTokens,
    temperature: 0,
    eosIds: [...model.config.eosTokenIds],
  });
  return questions.map((q, i) => {
    const completion = codec.decode(out[i], { skipSpecialTokens: true });
    const correct = scoreResponse(completion, q.answer).correct;
    return { step, prompt: q.question, completion, answer: q.answer, correct };
  });
}

/**
 * The SFT phase: completion-only loss on the SFT examples (full fine-tuning for the demo
 * model, LoRA otherwise).
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function sftPhase(session: RunSession): Phase {
  return {
    async run(ctx) {
      const config = ctx.config, sft = config.sft;
      const model = await session.model();
      const codec = await session.inputs.codec();
      const examples = await session.inputs.sftExamples();
      const { sequences } = tokenizeSftExamples(examples, codec as IdCodec, {
        eosId: await session.endOfTurn(),
        maxLength: sft.maxLength,
      });
      if (sequences.length === 0) throw new Error("no SFT example fits sft.maxLength");
      const total = sftTotalSteps(sft, sequences.length);
      const params = runTrainable(model);
      const optimizer = new AdamW(model.gpu, params.params, phaseAdamW(sft.optimizer, total));
      await loadStartWeights(session, ctx, params);
      const loaded = await loadResumePoint(session, ctx, params);
      if (loaded?.optimizerState) optimizer.loadState(loaded.optimizerState);
      const iteratorOptions = {
        batchSize: sft.microBatchSize,
        seed: config.run.seed,
        shuffle: true,
        padId: model.config.padTokenId ?? 0,
      };
      const iterator = loaded?.dataPosition
        ? BatchIterator.restore(
          sequences,
          iteratorOptions,
          loaded.dataPosition as unknown as BatchSamplerState,
        )
        : new BatchIterator(sequences, iteratorOptions);
      const trainer = new SftTrainer(model, params, optimizer);
      const result = await runTrainingLoop(ctx, {
        model,
        params,
        optimizer,
        total,
        start: ctx.resumeFrom?.step ?? 0,
        stepOf: (units) => units,
        dataPosition: () => ({ ...iterator.state() }),
        shape: { rows: sft.microBatchSize, seqLen: sft.maxLength },
        onStep: () => session.trained = true,
        evaluate: periodicEvaluation(session, ctx, model),
        async run() {
          const t0 = performance.now();
          const micro = Array.from({ length: sft.gradientAccumulation }, () => iterator.next());
          const r = await trainer.step(micro);
          const seconds = (performance.now() - t0) / 1000;
          return {
            metrics: {
              loss: r.loss,
              grad_norm: r.gradNorm,
              lr: r.learningRate,
              applied: r.applied ? 1 : 0,
              tokens: r.tokens,
              tokens_per_second: r.tokens / seconds,
              step_seconds: seconds,
            },
            progress: { tokens: r.tokens, loss: r.loss },
            samples: (step) => evalPromptSamples(session, ctx, model, step),
          };
        },
      });
      if (result.status === "completed") await writePhaseExport(session, ctx);
      return result;
    },
  };
}

/** A frozen copy of the model's base weights (the GRPO reference for full fine-tuning). */
function frozenCopy(model: Gemma3): Gemma3 {
  const w = model.weights;
  return new Gemma3(model.gpu, model.config, {
    embed: copyOf(w.embed),
    finalNorm: copyOf(w.finalNorm),
    layers: w.layers.map((layer) =>
      Object.fromEntries(Object.entries(layer).map(([k, t]) => [k, copyOf(t)])) as typeof layer
    ),
  });
}

/**
 * The order GRPO visits its prompts in: a seeded permutation of `0..n-1` (Fisher–Yates over
 * textbook mulberry32 started at `seed ^ 0x9e3779b9`).
 *
 * @param n Number of prompts.
 * @param seed The run's seed.
 * @returns The permutation.
 */
function promptOrder(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  return SeededRandom.fromState(seed ^ 0x9e3779b9).shuffle(order);
}

/** The prompts drawn so far, from a GRPO checkpoint's data position (null: none saved). */
function promptsDrawn(position: JsonValue | undefined): number | null {
  if (position === null || typeof position !== "object" || Array.isArray(position)) return null;
  const n = (position as Record<string, JsonValue>).promptsDrawn;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * The GRPO phase: rollouts on the GRPO prompts, the seed's rewards, Tunix's loss (or the GRPO
 * family's variant the config picks); with `grpo.dynamicSampling`, the prompts drawn so far are
 * the checkpoint's data position, so a resumed run draws the same prompts.
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function grpoPhase(session: RunSession): Phase {
  return {
    async run(ctx) {
      const config = ctx.config, g = config.grpo;
      const model = await session.model();
      const codec = await session.inputs.codec();
      const examples = await session.inputs.grpoExamples();
      const total = grpoTotalSteps(g);
      const params = runTrainable(model);
      const optimizer = new AdamW(model.gpu, params.params, phaseAdamW(g.optimizer, total));
      await loadStartWeights(session, ctx, params);
      // subtle: the KL reference is the phase's starting point, also when resuming mid-phase
      const reference = params.mode === "full" && g.beta > 0 ? frozenCopy(model) : null;
      const loaded = await loadResumePoint(session, ctx, params);
      if (loaded?.optimizerState) optimizer.loadState(loaded.optimizerState);
      const trainer = new GrpoTrainer(model, {
        trainable: params,
        optimizer,
        config: g,
        decoder: { decode: (ids) => codec.decode(ids, { skipSpecialTokens: true }) },
        eosIds: [...model.config.eosTokenIds],
        padId: model.config.padTokenId ?? 0,
        seed: config.run.seed,
        reference,
        microBatchRows: g.microBatchSize,
        rollout: session.rollout ?? undefined,
      });
      const order = promptOrder(examples.length, config.run.seed);
      const start = Math.floor((ctx.resumeFrom?.step ?? 0) / g.numIterations);
      // The prompt stream: batch b takes the next batchSize prompts, dynamic sampling the ones
      // after them; the count drawn is the checkpoint's data position (older checkpoints, and
      // runs without dynamic sampling, have drawn exactly batchSize per batch).
      let drawn = promptsDrawn(loaded?.dataPosition) ?? start * g.batchSize;
      const draw = (count: number) =>
        Array.from({ length: count }, () => examples[order[drawn++ % order.length]]);
      const encode = (picked: readonly GrpoExample[]) =>
        picked.map((ex) => ({
          ids: codec.encode(ex.prompt, { addSpecialTokens: true }),
          answer: ex.answer,
          question: ex.question,
        }));
      const result = await runTrainingLoop(ctx, {
        model,
        params,
        optimizer,
        total: g.numBatches,
        start,
        stepOf: (batches) => batches * g.numIterations,
        dataPosition: () => g.dynamicSampling ? { promptsDrawn: drawn } : null,
        shape: {
          rows: g.batchSize * g.numGenerations,
          seqLen: g.maxPromptLength,
          newTokens: g.maxNewTokens,
        },
        onStep: () => session.trained = true,
        evaluate: periodicEvaluation(session, ctx, model),
        dispose: () => reference && disposeGemma3Weights(reference.weights),
        async run(batch) {
          if (!g.dynamicSampling) drawn = batch * g.batchSize;
          const prompts = encode(draw(g.batchSize));
          // maxStaleness k > 0 (no dynamic sampling): the next k batches' prompts, for workers.
          const batchPrompts = (b: number) =>
            encode(Array.from(
              { length: g.batchSize },
              (_, i) => examples[order[(b * g.batchSize + i) % order.length]],
            ));
          const later = Math.min(g.maxStaleness, g.numBatches - 1 - batch);
          const r = await trainer.step(prompts, batch, {
            drawPrompts: (count) => encode(draw(count)),
            upcoming: Array.from(
              { length: Math.max(0, later) },
              (_, j) => batchPrompts(batch + 1 + j),
            ),
          });
          // subtle: the trainer hands back the very objects `encode` made (with their question)
          const first = r.prompts[0] as typeof prompts[number];
          return {
            metrics: r.metrics,
            progress: {
              tokensPerSecond: r.metrics.tokens_per_second,
              loss: r.loss,
              rewardMean: r.metrics.reward_mean,
              kl: r.metrics.kl_mean,
            },
            samples: (step) =>
              Promise.resolve([{
                step,
                prompt: first.question,
                completion: r.completions[0],
                answer: first.answer,
                reward: r.rewards[0],
                rewards: Object.fromEntries(
                  Object.entries(r.rewardsPerFunction).map(([name, v]) => [name, v[0]]),
                ),
                correct: scoreResponse(r.completions[0], first.answer).correct,
              }]),
          };
        },
      });
      if (result.status === "completed") await writePhaseExport(session, ctx);
      return result;
    },
  };
}

/**
 * The phases of a run: evaluation, SFT and GRPO around the session's one model.
 *
 * @param session The run's session.
 * @returns One phase per pipeline phase.
 * @example
 * ```ts
 * import { createPhases } from "./phases.ts";
 * import { createRunSession } from "./run_session.ts";
 * import { createRunInputs, staticInputSources } from "./run_inputs.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * import { presetConfig } from "./presets.ts";
 * const inputs = createRunInputs(presetConfig("demo"), {
 *   sources: staticInputSources({}),
 *   store: new MemoryRunStore(),
 * });
 * const phases = createPhases(createRunSession(inputs));
 * if (Object.keys(phases).length !== 5) throw new Error();
 * ```
 */
export function createPhases(session: RunSession): PhaseSet {
  return {
    "base-eval": evalPhase(session),
    sft: sftPhase(session),
    "sft-eval": evalPhase(session),
    grpo: grpoPhase(session),
    "grpo-eval": evalPhase(session),
  };
}
