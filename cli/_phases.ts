/**
 * Where the real phase implementations meet the pipeline (`rl/pipeline.ts`): builds the
 * shared inputs every phase needs from the config (tokenizer — compact for the demo model —
 * and the SFT, GRPO and evaluation examples) and returns one {@linkcode Phase} per pipeline
 * phase.
 *
 * Contract of a phase (see
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
import type { PhaseSet } from "../rl/pipeline.ts";
import { createSession, evalPhase, grpoPhase, sftPhase } from "./_session.ts";
import { loadVocabMap, saveVocabMap } from "../rl/pipeline_fs.ts";
import { demoVocabMap } from "../rl/presets.ts";
import { DEMO_SOURCE, evalDataSource, type TrainConfig } from "../rl/train_config.ts";

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

/**
 * The phase implementations of `deno task train`: evaluation (`rl/evaluate.ts`), SFT
 * (`rl/sft.ts`) and GRPO (`rl/grpo.ts`) around one model kept in memory for the whole run
 * (`cli/_session.ts`).
 *
 * @param config The run's config.
 * @param runDir The run folder.
 * @returns One phase per pipeline phase.
 */
export function createPhases(config: TrainConfig, runDir: string): Promise<PhaseSet> {
  const inputs = trainInputs(config, runDir);
  const session = createSession(inputs);
  return Promise.resolve({
    "base-eval": evalPhase(session),
    sft: sftPhase(session),
    "sft-eval": evalPhase(session),
    grpo: grpoPhase(session),
    "grpo-eval": evalPhase(session),
  });
}
