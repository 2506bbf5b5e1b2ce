/**
 * webtune for browsers (and any runtime with WebGPU): everything that runs without Deno APIs —
 * the WebGPU runtime and kernels, Gemma 3 (forward, backward, generation, LoRA/PEFT from byte
 * ranges), the tokenizer and chat template, datasets from text, rewards, SFT, GRPO, evaluation,
 * and the run loop `train(config, { store })` with an in-memory {@linkcode MemoryRunStore}.
 * Nothing here reads or writes files; Deno scripts import `mod.ts`, which adds the disk loaders
 * (`loadGemma3(dir)`, `loadGsm8k(path)`, …) and a `train` that keeps the run in a folder.
 *
 * @example
 * ```ts
 * import { Gpu, matmul, Tensor } from "./web.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1]), [2, 2]);
 * console.log(await matmul(x, w).read()); // Float32Array [1, 2, 3, 4]
 * gpu.destroy();
 * ```
 *
 * @module
 */

// base: shared basics (seeded PRNG, field errors)
export * from "./base/field_error.ts";
export * from "./base/random.ts";
export * from "./base/version.ts";

// kernels: WebGPU runtime and WGSL kernels
export * from "./kernels/gpu.ts";
export * from "./kernels/tensor.ts";
export * from "./kernels/dtype.ts";
export * from "./kernels/errors.ts";
export * from "./kernels/buffer_pool.ts";
export * from "./kernels/pipeline_cache.ts";
export * from "./kernels/adamw.ts";
export * from "./kernels/attention.ts";
export * from "./kernels/attention_backward.ts";
export * from "./kernels/elementwise.ts";
export * from "./kernels/embedding.ts";
export * from "./kernels/embedding_backward.ts";
export * from "./kernels/geglu.ts";
export * from "./kernels/geglu_backward.ts";
export * from "./kernels/kernel_variants.ts";
export * from "./kernels/logprobs.ts";
export * from "./kernels/logprobs_backward.ts";
export * from "./kernels/lora.ts";
export * from "./kernels/matmul.ts";
export * from "./kernels/rms_norm.ts";
export * from "./kernels/rms_norm_backward.ts";
export * from "./kernels/rope.ts";
export * from "./kernels/rope_backward.ts";
export * from "./kernels/sampling.ts";
export * from "./kernels/tuning.ts";

// data: datasets, prompts, batches
export * from "./data/batch_sampler.ts";
export * from "./data/batching.ts";
export * from "./data/demo_set.ts";
export * from "./data/demo_templates.ts";
export * from "./data/errors.ts";
export * from "./data/examples.ts";
export * from "./data/gsm8k.ts";
export * from "./data/jsonl.ts";
export * from "./data/open_thoughts.ts";
export * from "./data/parquet.ts";
export * from "./data/prompt.ts";

// model: Gemma 3, tokenizer, LoRA/PEFT, generation
export * from "./model/backward.ts";
export * from "./model/batch.ts";
export * from "./model/byte_readers.ts";
export * from "./model/chat_template.ts";
export * from "./model/config.ts";
export * from "./model/config_hf.ts";
export * from "./model/file_source.ts";
export * from "./model/file_source_http.ts";
export * from "./model/fingerprint.ts";
export * from "./model/gemma3.ts";
export * from "./model/gemma3_load.ts";
export * from "./model/gemma3_weights.ts";
export * from "./model/generate.ts";
export * from "./model/kv_cache.ts";
export * from "./model/layer.ts";
export * from "./model/layer_fusion.ts";
export * from "./model/lora.ts";
export * from "./model/lora_merge.ts";
export * from "./model/model_dir.ts";
export * from "./model/peft.ts";
export * from "./model/peft_load.ts";
export * from "./model/safetensors.ts";
export * from "./model/safetensors_dtype.ts";
export * from "./model/safetensors_index.ts";
export * from "./model/safetensors_writer.ts";
export * from "./model/text_stream.ts";
export * from "./model/tokenizer.ts";
export * from "./model/tokenizer_pipeline.ts";
export * from "./model/train_pass.ts";
export * from "./model/trainable.ts";
export * from "./model/vocab_map.ts";
export * from "./model/weights.ts";

// rl: rewards, GRPO, optimizer, training runs, evaluation, metrics
export * from "./rl/adamw_config.ts";
export * from "./rl/checkpoint.ts";
export * from "./rl/checkpoint_folder.ts";
export * from "./rl/directory_files.ts";
export * from "./rl/directory_run_store.ts";
export * from "./rl/eval_config.ts";
export * from "./rl/evaluate.ts";
export * from "./rl/export.ts";
export * from "./rl/export_files.ts";
export * from "./rl/generate_text.ts";
export * from "./rl/grpo.ts";
export * from "./rl/grpo_config.ts";
export * from "./rl/grpo_gradients.ts";
export * from "./rl/grpo_loss.ts";
export * from "./rl/grpo_loss_options.ts";
export * from "./rl/grpo_loss_terms.ts";
export * from "./rl/grpo_math.ts";
export * from "./rl/grpo_rollout.ts";
export * from "./rl/memory_estimate.ts";
export * from "./rl/metrics.ts";
export * from "./rl/optimizer.ts";
export * from "./rl/overlong_penalty.ts";
export * from "./rl/phases.ts";
export * from "./rl/pipeline.ts";
export * from "./rl/pipeline_state.ts";
export * from "./rl/presets.ts";
export * from "./rl/progress.ts";
export * from "./rl/report.ts";
export * from "./rl/rewards.ts";
export * from "./rl/rollout_base.ts";
export * from "./rl/rollout_broker.ts";
export * from "./rl/rollout_connect.ts";
export * from "./rl/rollout_protocol.ts";
export * from "./rl/rollout_tasks.ts";
export * from "./rl/rollout_weights.ts";
export * from "./rl/rollout_worker.ts";
export * from "./rl/run_files.ts";
export * from "./rl/run_folder.ts";
export * from "./rl/run_inputs.ts";
export * from "./rl/run_report.ts";
export * from "./rl/run_session.ts";
export * from "./rl/run_store.ts";
export * from "./rl/run_validation.ts";
export * from "./rl/schedule.ts";
export * from "./rl/scoring.ts";
export * from "./rl/sft.ts";
export * from "./rl/svg_plot.ts";
export * from "./rl/train.ts";
export * from "./rl/train_config.ts";
export * from "./rl/train_events.ts";
export * from "./rl/train_loop.ts";
