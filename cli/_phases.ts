/**
 * Where the real phase implementations meet the pipeline (`rl/pipeline.ts`): builds the
 * shared inputs every phase needs from the config (tokenizer — compact for the demo model —
 * and the SFT, GRPO and evaluation examples) and returns one {@linkcode Phase} per pipeline
 * phase.
 *
 * TODO(lead): the SFT, GRPO and evaluation loops are not wired yet; each phase below throws a
 * {@linkcode PhaseNotImplementedError} naming what to plug in. Contract of a phase (see
 * `PhaseContext` in `rl/pipeline.ts`): start from `ctx.weightsFrom` (or `ctx.resumeFrom`),
 * log every step with `ctx.logger.log(phase, step, {...})`, show `ctx.createProgress(total)`,
 * save checkpoints under `ctx.checkpointDir` every `config.checkpoint.everySteps` steps (keep
 * `config.checkpoint.keep`) and report each with `ctx.recordCheckpoint(step, dir)`, keep
 * samples every `config.run.sampleEvery` steps with `ctx.addSample`, and when `ctx.signal` is
 * aborted save a checkpoint and return `{ status: "interrupted", step, checkpoint }`.
 * Evaluation phases return `{ status: "completed", step: n, checkpoint: null, eval }` with
 * `eval` from `summarizeEval` (`rl/scoring.ts`).
 *
 * @module
 */

import { generateDemoSet } from "../data/demo_set.ts";
import {
  type GrpoExample,
  type SftExample,
  toGrpoExample,
  toSftExample,
} from "../data/examples.ts";
import { loadGsm8k } from "../data/gsm8k_fs.ts";
import { loadOpenThoughts } from "../data/open_thoughts_fs.ts";
import { Tokenizer } from "../model/tokenizer.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import { compactCodec, type IdCodec, type VocabMap } from "../model/vocab_map.ts";
import type { Phase, PhaseContext, PhaseResult, PhaseSet } from "../rl/pipeline.ts";
import { loadVocabMap, saveVocabMap } from "../rl/pipeline_fs.ts";
import type { PhaseName } from "../rl/pipeline_state.ts";
import { demoVocabMap } from "../rl/presets.ts";
import { DEMO_SOURCE, evalDataSource, type TrainConfig } from "../rl/train_config.ts";

/** Thrown by a phase whose implementation is not wired in yet. */
export class PhaseNotImplementedError extends Error {
  /** The phase. */
  readonly phase: PhaseName;
  /**
   * @param phase The phase.
   * @param todo What is missing.
   */
  constructor(phase: PhaseName, todo: string) {
    super(`the ${phase} phase is not implemented yet (${todo}; see cli/_phases.ts)`);
    this.name = "PhaseNotImplementedError";
    this.phase = phase;
  }
}

/** Inputs shared by the phases, loaded once, on first use. */
export interface TrainInputs {
  /** The run's config. */
  readonly config: TrainConfig;
  /** The run folder. */
  readonly runDir: string;
  /** The real tokenizer (the model folder's `tokenizer.json`, else Gemma 3's built-in one). */
  tokenizer(): Promise<Tokenizer>;
  /** The demo model's reduced vocabulary (built and saved, or read back on resume); null for a
   * real checkpoint. */
  vocabMap(): Promise<VocabMap | null>;
  /** What the model reads and writes: compact ids for the demo model, real ids otherwise. */
  codec(): Promise<IdCodec>;
  /** SFT examples (demo train set or OpenThoughts), at most `sft.maxExamples`. */
  sftExamples(): Promise<readonly SftExample[]>;
  /** GRPO prompts (demo train set or GSM8K train). */
  grpoExamples(): Promise<readonly GrpoExample[]>;
  /** Evaluation questions (demo test set or GSM8K test), `eval.numQuestions` of them. */
  evalExamples(): Promise<readonly GrpoExample[]>;
}

function once<T>(load: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => value ??= load();
}

/**
 * Builds the lazily loaded {@linkcode TrainInputs} of a run.
 *
 * @param config The run's config (`model.path` resolved to a folder or `"demo"`).
 * @param runDir The run folder.
 * @returns The inputs.
 */
export function trainInputs(config: TrainConfig, runDir: string): TrainInputs {
  const demoSet = once(() =>
    Promise.resolve(generateDemoSet({
      seed: config.demoData.seed,
      trainSize: config.demoData.trainSize,
      testSize: config.demoData.testSize,
      difficulty: config.demoData.difficulty,
    }))
  );
  const tokenizer = once(async () => {
    const path = config.model.path;
    if (path !== null && path !== DEMO_SOURCE) {
      try {
        return await Tokenizer.fromFile(`${path}/tokenizer.json`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    return await loadDefaultTokenizer();
  });
  const vocabMap = once(async () => {
    if (config.model.path !== DEMO_SOURCE) return null;
    const saved = await loadVocabMap(runDir);
    if (saved !== null) return saved;
    const map = demoVocabMap(config.demoData, await tokenizer());
    await saveVocabMap(runDir, map);
    return map;
  });
  const codec = once(async (): Promise<IdCodec> => {
    const map = await vocabMap();
    return map === null ? await tokenizer() : compactCodec(await tokenizer(), map);
  });
  const sftExamples = once(async (): Promise<readonly SftExample[]> => {
    const source = config.sft.data;
    const limit = config.sft.maxExamples ?? undefined;
    if (source === DEMO_SOURCE) {
      return (await demoSet()).train.slice(0, limit).map((r) => toSftExample(r));
    }
    if (source === null) throw new Error("sft.data is not set");
    const tok = await tokenizer();
    const records = await loadOpenThoughts(source, {
      maxTokens: config.sft.maxLength,
      countTokens: (text) => tok.encode(text).length,
      limit,
    });
    return records.map((r) => toSftExample(r));
  });
  const grpoExamples = once(async (): Promise<readonly GrpoExample[]> => {
    const source = config.grpo.data;
    if (source === DEMO_SOURCE) return (await demoSet()).train.map((r) => toGrpoExample(r));
    if (source === null) throw new Error("grpo.data is not set");
    return (await loadGsm8k(source, { split: "train" })).map((r) => toGrpoExample(r));
  });
  const evalExamples = once(async (): Promise<readonly GrpoExample[]> => {
    const source = evalDataSource(config);
    const n = config.eval.numQuestions;
    if (source === DEMO_SOURCE) {
      return (await demoSet()).test.slice(0, n).map((r) => toGrpoExample(r));
    }
    if (source === null) throw new Error("eval.data is not set");
    return (await loadGsm8k(source, { split: "test", limit: n })).map((r) => toGrpoExample(r));
  });
  return {
    config,
    runDir,
    tokenizer,
    vocabMap,
    codec,
    sftExamples,
    grpoExamples,
    evalExamples,
  };
}

function todoPhase(phase: PhaseName, todo: string, inputs: TrainInputs): Phase {
  return {
    async run(_ctx: PhaseContext): Promise<PhaseResult> {
      // Loading the inputs first surfaces data and tokenizer errors before the TODO.
      await inputs.codec();
      throw new PhaseNotImplementedError(phase, todo);
    },
  };
}

/**
 * The phase implementations of `deno task train`.
 *
 * @param config The run's config.
 * @param runDir The run folder.
 * @returns One phase per pipeline phase.
 */
export function createPhases(config: TrainConfig, runDir: string): Promise<PhaseSet> {
  const inputs = trainInputs(config, runDir);
  // TODO(lead): one evaluation phase over `inputs.evalExamples()` with `model/generate.ts`
  // (greedy when eval.temperature is 0, eval.maxNewTokens, decoded with `inputs.codec()`),
  // scored by `scoreQuestion` / `summarizeEval` from `rl/scoring.ts`; keep
  // `config.run.samplesPerPoint` completions with `ctx.addSample({ step: 0, ... })`.
  const evalPhase = (phase: PhaseName): Phase =>
    todoPhase(
      phase,
      "TODO: evaluation loop: model/generate.ts + rl/scoring.ts summarizeEval",
      inputs,
    );
  return Promise.resolve({
    "base-eval": evalPhase("base-eval"),
    // TODO(lead): SFT loop: batches from `inputs.sftExamples()` tokenized with
    // `inputs.codec()` (data/batching.ts), `SftTrainer` (rl/sft.ts) over `trainableParameters`
    // (model/trainable.ts: "lora" when config.lora, else "full"), AdamW from
    // `phaseAdamW(config.sft.optimizer, sftTotalSteps(...))`, checkpoints via rl/checkpoint_fs.ts.
    sft: todoPhase("sft", "TODO: SFT loop around rl/sft.ts SftTrainer", inputs),
    "sft-eval": evalPhase("sft-eval"),
    // TODO(lead): GRPO loop: rollouts of `inputs.grpoExamples()` (G = config.grpo
    // .numGenerations), rewards (rl/rewards.ts), advantages and loss (rl/grpo_math.ts,
    // rl/grpo_loss.ts), AdamW from `phaseAdamW(config.grpo.optimizer, grpoTotalSteps(...))`.
    grpo: todoPhase("grpo", "TODO: GRPO trainer", inputs),
    "grpo-eval": evalPhase("grpo-eval"),
  });
}
