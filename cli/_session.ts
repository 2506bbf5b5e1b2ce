/**
 * The model of a `deno task train` run, kept in memory across phases, and the three phase
 * loops that drive it: evaluation, SFT and GRPO. Each loop logs every step, shows progress,
 * saves atomic checkpoints (and one when Ctrl-C aborts), and resumes from a checkpoint.
 *
 * @module
 */

import { BatchIterator, tokenizeSftExamples } from "../data/batching.ts";
import type { BatchSamplerState } from "../data/batch_sampler.ts";
import { GpuOutOfMemoryError } from "../kernels/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { initGemma3Weights } from "../model/gemma3_weights.ts";
import { copyOf } from "../model/layer.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { type Trainable, trainableParameters } from "../model/trainable.ts";
import type { IdCodec } from "../model/vocab_map.ts";
import { restoreParams } from "../rl/checkpoint.ts";
import { loadCheckpoint, saveCheckpoint } from "../rl/checkpoint_fs.ts";
import { evalPhaseEntry, evaluate } from "../rl/evaluate.ts";
import { GrpoTrainer } from "../rl/grpo.ts";
import { AdamW } from "../rl/optimizer.ts";
import type { Phase, PhaseContext, PhaseResult } from "../rl/pipeline.ts";
import { demoModelConfig } from "../rl/presets.ts";
import { SftTrainer } from "../rl/sft.ts";
import { type StepShape, trainMemoryError } from "../rl/memory_estimate.ts";
import { DEMO_SOURCE, grpoTotalSteps, phaseAdamW, sftTotalSteps } from "../rl/train_config.ts";
import type { TrainInputs } from "./_phases.ts";

/** The run's model and what every phase shares. */
export interface Session {
  /** Lazily loaded inputs (tokenizer, codec, examples). */
  readonly inputs: TrainInputs;
  /** Creates (once) the GPU, the model and, for LoRA runs, the adapter. */
  model(): Promise<Gemma3>;
  /** Id of the end-of-turn token in model space. */
  endOfTurn(): Promise<number>;
  /** True once a phase of this process changed the weights. */
  trained: boolean;
}

/**
 * Builds the run's session.
 *
 * @param inputs The run's inputs.
 * @returns The session.
 */
export function createSession(inputs: TrainInputs): Session {
  const config = inputs.config;
  let model: Promise<Gemma3> | null = null;
  const session: Session = {
    inputs,
    trained: false,
    model() {
      model ??= (async () => {
        const gpu = await Gpu.create();
        let m: Gemma3;
        if (config.model.path === DEMO_SOURCE) {
          const vocab = (await inputs.vocabMap())!;
          const cfg = demoModelConfig(config.model.demo!, vocab);
          m = new Gemma3(gpu, cfg, initGemma3Weights(gpu, cfg, { seed: config.run.seed }));
        } else {
          m = await loadGemma3(config.model.path!, { gpu });
        }
        if (config.lora) {
          m.lora = LoraAdapter.init(gpu, m.config, loraConfig(config.lora), config.run.seed);
        }
        return m;
      })();
      return model;
    },
    async endOfTurn() {
      const ids = (await inputs.codec()).encode("<end_of_turn>", { addSpecialTokens: false });
      return ids[0];
    },
  };
  return session;
}

function trainable(model: Gemma3): Trainable {
  return trainableParameters(model, model.lora ? "lora" : "full");
}

/** Brings the weights of a fresh process up to the previous phase's final checkpoint. */
async function loadStartWeights(session: Session, ctx: PhaseContext, params: Trainable) {
  if (ctx.weightsFrom && !session.trained) {
    restoreParams(params.params, await loadCheckpoint(ctx.weightsFrom));
    session.trained = true;
  }
}

/** When continuing an interrupted phase, loads its checkpoint (weights, optimizer, data). */
async function loadResumePoint(session: Session, ctx: PhaseContext, params: Trainable) {
  if (!ctx.resumeFrom?.checkpoint) return null;
  const loaded = await loadCheckpoint(ctx.resumeFrom.checkpoint);
  restoreParams(params.params, loaded);
  session.trained = true;
  return loaded;
}

/** The weights a phase starts from, then (when resuming) those it was interrupted at. */
async function loadPhaseStart(session: Session, ctx: PhaseContext, params: Trainable) {
  await loadStartWeights(session, ctx, params);
  return await loadResumePoint(session, ctx, params);
}

/**
 * The evaluation phase: the recipe's greedy evaluation of the eval questions.
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function evalPhase(session: Session): Phase {
  return {
    async run(ctx) {
      const config = ctx.config;
      const model = await session.model();
      const params = trainable(model);
      await loadPhaseStart(session, ctx, params);
      params.dispose();
      const codec = await session.inputs.codec();
      const questions = await session.inputs.evalExamples();
      const e = config.eval;
      const batches = Math.ceil(questions.length / e.batchSize) * e.passes;
      const progress = ctx.createProgress(batches);
      const result = await evaluate(model, questions, {
        tokenizer: codec,
        maxNewTokens: e.maxNewTokens,
        batchSize: e.batchSize,
        passes: e.passes,
        temperature: e.temperature,
        topK: e.topK,
        topP: e.topP,
        seed: config.run.seed,
        eosIds: [...model.config.eosTokenIds],
        progress,
        signal: ctx.signal,
      });
      progress.finish();
      for (const r of result.records.slice(0, config.run.samplesPerPoint)) {
        await ctx.addSample({
          step: 0,
          prompt: r.question,
          completion: r.completions[0],
          answer: r.answer,
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

async function checkpoint(
  ctx: PhaseContext,
  step: number,
  params: Trainable,
  optimizer: AdamW,
  extras: { dataPosition?: BatchSamplerState | null; metrics?: Record<string, number> },
): Promise<string> {
  const dir = await saveCheckpoint(ctx.checkpointDir, {
    step,
    params: params.params,
    optimizerState: await optimizer.state(),
    dataPosition: extras.dataPosition ? { ...extras.dataPosition } : null,
    metrics: extras.metrics ?? null,
    rng: { seed: ctx.config.run.seed, step },
  }, { keep: ctx.config.checkpoint.keep });
  await ctx.recordCheckpoint(step, dir);
  return dir;
}

/** Greedy completions of a few eval prompts, kept as report samples. */
async function addSamples(session: Session, ctx: PhaseContext, model: Gemma3, step: number) {
  const n = ctx.config.run.samplesPerPoint;
  if (n <= 0) return;
  const codec = await session.inputs.codec();
  const questions = (await session.inputs.evalExamples()).slice(0, n);
  const prompts = questions.map((q) => codec.encode(q.prompt, { addSpecialTokens: true }));
  const out = await model.generate(prompts, {
    maxNewTokens: ctx.config.eval.maxNewTokens,
    temperature: 0,
    eosIds: [...model.config.eosTokenIds],
  });
  for (let i = 0; i < questions.length; i++) {
    await ctx.addSample({
      step,
      prompt: questions[i].question,
      completion: codec.decode(out[i], { skipSpecialTokens: true }),
      answer: questions[i].answer,
    });
  }
}

/**
 * The SFT phase: completion-only loss on the SFT examples (full fine-tuning for the demo
 * model, LoRA otherwise).
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function sftPhase(session: Session): Phase {
  return {
    async run(ctx): Promise<PhaseResult> {
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
      const params = trainable(model);
      const optimizer = new AdamW(model.gpu, params.params, phaseAdamW(sft.optimizer, total));
      const loaded = await loadPhaseStart(session, ctx, params);
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
      const start = ctx.resumeFrom?.step ?? 0;
      const progress = ctx.createProgress(total, start);
      let step = start, last: Record<string, number> = {};
      let lastCheckpoint: string | null = ctx.resumeFrom?.checkpoint ?? null;
      try {
        while (step < total) {
          if (ctx.signal.aborted) {
            lastCheckpoint = await checkpoint(ctx, step, params, optimizer, {
              dataPosition: iterator.state(),
            });
            return { status: "interrupted", step, checkpoint: lastCheckpoint };
          }
          const t0 = performance.now();
          const micro = Array.from({ length: sft.gradientAccumulation }, () => iterator.next());
          const r = await trainer.step(micro);
          session.trained = true;
          step++;
          const seconds = (performance.now() - t0) / 1000;
          last = {
            loss: r.loss,
            grad_norm: r.gradNorm,
            lr: r.learningRate,
            applied: r.applied ? 1 : 0,
            tokens: r.tokens,
            tokens_per_second: r.tokens / seconds,
            step_seconds: seconds,
          };
          await ctx.logger.log("sft", step, last);
          progress.update(step, { tokens: r.tokens, loss: r.loss });
          if (config.run.sampleEvery > 0 && step % config.run.sampleEvery === 0) {
            await addSamples(session, ctx, model, step);
          }
          if (step % config.checkpoint.everySteps === 0 && step < total) {
            lastCheckpoint = await checkpoint(ctx, step, params, optimizer, {
              dataPosition: iterator.state(),
              metrics: last,
            });
          }
        }
        progress.finish();
        lastCheckpoint = await checkpoint(ctx, step, params, optimizer, {
          dataPosition: iterator.state(),
          metrics: last,
        });
        return { status: "completed", step, checkpoint: lastCheckpoint };
      } catch (e) {
        throw explainMemory(e, model, {
          mode: params.mode,
          loraRank: config.lora?.rank,
          weightBytes: model.weights.layers[0].q_proj.dtype === "bf16" ? 2 : 4,
          rows: sft.microBatchSize,
          seqLen: sft.maxLength,
        }, "sft");
      } finally {
        optimizer.dispose();
        params.dispose();
      }
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
 * The GRPO phase: rollouts on the GRPO prompts, the seed's rewards, Tunix's loss.
 *
 * @param session The run's session.
 * @returns The phase.
 */
export function grpoPhase(session: Session): Phase {
  return {
    async run(ctx): Promise<PhaseResult> {
      const config = ctx.config, g = config.grpo;
      const model = await session.model();
      const codec = await session.inputs.codec();
      const examples = await session.inputs.grpoExamples();
      const total = grpoTotalSteps(g);
      const params = trainable(model);
      const optimizer = new AdamW(model.gpu, params.params, phaseAdamW(g.optimizer, total));
      await loadStartWeights(session, ctx, params);
      // subtle: the KL reference is the phase's starting point, also when resuming mid-phase
      const reference = params.mode === "full" && g.beta > 0 ? frozenCopy(model) : null;
      const loaded = await loadResumePoint(session, ctx, params);
      if (loaded?.optimizerState) optimizer.loadState(loaded.optimizerState);
      const trainer = new GrpoTrainer(model, params, optimizer, g, {
        decode: (ids) => codec.decode(ids, { skipSpecialTokens: true }),
      }, {
        eosIds: [...model.config.eosTokenIds],
        padId: model.config.padTokenId ?? 0,
        seed: config.run.seed,
        reference,
        microBatchRows: g.microBatchSize,
      });
      const start = Math.floor((ctx.resumeFrom?.step ?? 0) / g.numIterations);
      const progress = ctx.createProgress(g.numBatches, start);
      let lastCheckpoint: string | null = ctx.resumeFrom?.checkpoint ?? null;
      let batch = start;
      const order = shuffled(examples.length, config.run.seed);
      try {
        while (batch < g.numBatches) {
          if (ctx.signal.aborted) {
            lastCheckpoint = await checkpoint(ctx, batch * g.numIterations, params, optimizer, {});
            return {
              status: "interrupted",
              step: batch * g.numIterations,
              checkpoint: lastCheckpoint,
            };
          }
          const prompts = [];
          for (let i = 0; i < g.batchSize; i++) {
            const ex = examples[order[(batch * g.batchSize + i) % order.length]];
            prompts.push({
              ids: codec.encode(ex.prompt, { addSpecialTokens: true }),
              answer: ex.answer,
            });
          }
          const r = await trainer.step(prompts, batch);
          session.trained = true;
          batch++;
          const step = batch * g.numIterations;
          await ctx.logger.log("grpo", step, r.metrics);
          progress.update(batch, {
            tokensPerSecond: r.metrics.tokens_per_second,
            loss: r.loss,
            rewardMean: r.metrics.reward_mean,
            kl: r.metrics.kl_mean,
          });
          if (config.run.sampleEvery > 0 && batch % config.run.sampleEvery === 0) {
            await ctx.addSample({
              step,
              prompt: examples[order[((batch - 1) * g.batchSize) % order.length]].question,
              completion: r.completions[0],
              answer: prompts[0].answer,
              reward: r.rewards[0],
            });
          }
          if (step % config.checkpoint.everySteps === 0 && batch < g.numBatches) {
            lastCheckpoint = await checkpoint(ctx, step, params, optimizer, { metrics: r.metrics });
          }
        }
        progress.finish();
        lastCheckpoint = await checkpoint(ctx, batch * g.numIterations, params, optimizer, {});
        return { status: "completed", step: batch * g.numIterations, checkpoint: lastCheckpoint };
      } catch (e) {
        throw explainMemory(e, model, {
          mode: params.mode,
          loraRank: config.lora?.rank,
          weightBytes: model.weights.layers[0].q_proj.dtype === "bf16" ? 2 : 4,
          rows: g.batchSize * g.numGenerations,
          seqLen: g.maxPromptLength,
          newTokens: g.maxNewTokens,
        }, "grpo");
      } finally {
        optimizer.dispose();
        params.dispose();
        if (reference) {
          for (const t of [reference.weights.embed, reference.weights.finalNorm]) t.dispose();
          for (const layer of reference.weights.layers) {
            for (const t of Object.values(layer)) t.dispose();
          }
        }
      }
    },
  };
}

/** A seeded permutation of `0..n-1` (mulberry32 + Fisher–Yates). */
function shuffled(n: number, seed: number): number[] {
  let s = (seed ^ 0x9e3779b9) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Turns a GPU out-of-memory error into one that says which settings fit. */
function explainMemory(
  e: unknown,
  model: Gemma3,
  shape: StepShape,
  phase: "sft" | "grpo",
): unknown {
  if (!(e instanceof GpuOutOfMemoryError)) return e;
  return trainMemoryError(model.config, shape, e.allocatedBytes + e.requestedBytes, phase);
}
