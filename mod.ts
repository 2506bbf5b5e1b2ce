/**
 * webtune: fine-tune Gemma 3 with GRPO on any WebGPU device — the entry for Deno scripts.
 *
 * This module only re-exports: the browser-safe API of `web.ts` (runtime, kernels, Gemma 3,
 * tokenizer, rewards, SFT, GRPO, evaluation, the run loop) plus the disk loaders and savers
 * (`*_fs.ts`: `loadGemma3(dir)`, `loadGsm8k(path)`, checkpoints, run folders) and the `train`
 * that keeps a run in a folder. See ARCHITECTURE.md for the layers.
 *
 * @example
 * ```ts
 * import { resolveTrainConfig, train } from "./mod.ts";
 * const config = resolveTrainConfig({
 *   preset: "demo", // a tiny Gemma 3 trained from scratch on generated arithmetic
 *   sets: ["sft.steps=8", "grpo.numBatches=2", "eval.numQuestions=8", "grpo.numGenerations=4"],
 * });
 * const runDir = await Deno.makeTempDir();
 * const controller = new AbortController(); // controller.abort() stops it with a checkpoint
 * const result = await train(config, {
 *   runDir, // a folder that already holds a run is resumed
 *   signal: controller.signal,
 *   onEvent: (e) => e.type === "phase-end" && console.log(`${e.phase}: ${e.status}`),
 * });
 * console.log(result.status, result.eval.grpo); // "completed" { accuracy, partialAccuracy, … }
 * await Deno.remove(runDir, { recursive: true });
 * ```
 *
 * @module
 */

// everything that runs without Deno APIs
export * from "./web.ts";

// base: disk access (Deno)

// kernels: setting up a WebGPU adapter on a fresh machine, the kernel tuning cache (Deno)
export * from "./kernels/tuning_fs.ts";
export * from "./kernels/webgpu_setup_fs.ts";

// model: disk access (Deno)
export * from "./model/config_fs.ts";
export * from "./model/file_source_fs.ts";
export * from "./model/gemma3_fs.ts";
export * from "./model/model_dir_fs.ts";
export * from "./model/peft_fs.ts";
export * from "./model/safetensors_fs.ts";
export * from "./model/tokenizer_fs.ts";

// rl: disk access (Deno)
export * from "./rl/checkpoint_fs.ts";
export * from "./rl/evaluate_fs.ts";
export * from "./rl/export_fs.ts";
export * from "./rl/export_source_fs.ts";
export * from "./rl/generate_fs.ts";
export * from "./rl/metrics_fs.ts";
export * from "./rl/pipeline_fs.ts";
export * from "./rl/run_files_fs.ts";
export * from "./rl/run_inputs_fs.ts";
export * from "./rl/run_validation_fs.ts";
export * from "./rl/train_config_fs.ts";

// data: disk access (Deno)
export * from "./data/dataset_fs.ts";
export * from "./data/gsm8k_fs.ts";
export * from "./data/open_thoughts_fs.ts";

// the run loop with a run folder (shadows web.ts's store-only `train`)
export { train } from "./rl/train_fs.ts";
