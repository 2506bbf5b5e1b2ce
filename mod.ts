/**
 * webtune: fine-tune Gemma 3 with GRPO on any WebGPU device.
 *
 * This module only re-exports the public API of the layers (see ARCHITECTURE.md):
 * `kernels/` (WebGPU runtime and WGSL kernels), `model/` (Gemma 3, tokenizer, LoRA),
 * `rl/` (rewards, GRPO, optimizer, training, evaluation, metrics) and `data/`.
 *
 * @example
 * ```ts
 * import { Gpu, Tensor, matmul } from "./mod.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1]), [2, 2]);
 * console.log(await matmul(x, w).read()); // Float32Array [1, 2, 3, 4]
 * gpu.destroy();
 * ```
 *
 * @module
 */

// kernels: runtime
export * from "./kernels/gpu.ts";
export * from "./kernels/tensor.ts";
export * from "./kernels/dtype.ts";
export * from "./kernels/errors.ts";
export * from "./kernels/buffer_pool.ts";
export * from "./kernels/pipeline_cache.ts";
// kernels: forward and backward
export * from "./kernels/matmul.ts";
export * from "./kernels/rms_norm.ts";
export * from "./kernels/rope.ts";
export * from "./kernels/attention.ts";
export * from "./kernels/geglu.ts";
export * from "./kernels/embedding.ts";
export * from "./kernels/elementwise.ts";
export * from "./kernels/logprobs.ts";
export * from "./kernels/sampling.ts";
export * from "./kernels/adamw.ts";
export * from "./kernels/attention_backward.ts";
export * from "./kernels/logprobs_backward.ts";

// model
export * from "./model/config.ts";
export * from "./model/config_hf.ts";
export * from "./model/config_fs.ts";
export * from "./model/safetensors.ts";
export * from "./model/safetensors_fs.ts";
export * from "./model/safetensors_dtype.ts";
export * from "./model/safetensors_writer.ts";
export * from "./model/weights.ts";
export * from "./model/gemma3_weights.ts";
export * from "./model/gemma3.ts";
export * from "./model/gemma3_fs.ts";
export * from "./model/lora.ts";
export * from "./model/batch.ts";
export * from "./model/tokenizer.ts";
export * from "./model/tokenizer_fs.ts";
export * from "./model/chat_template.ts";
export * from "./model/generate.ts";
export * from "./model/kv_cache.ts";
export * from "./model/peft.ts";
export * from "./model/peft_fs.ts";
export * from "./model/backward.ts";
export * from "./model/train_pass.ts";
export * from "./model/trainable.ts";
export * from "./model/vocab_map.ts";

// rl
export * from "./rl/rewards.ts";
export * from "./rl/scoring.ts";
export * from "./rl/grpo_config.ts";
export * from "./rl/grpo_math.ts";
export * from "./rl/grpo_loss.ts";
export * from "./rl/optimizer.ts";
export * from "./rl/adamw_config.ts";
export * from "./rl/schedule.ts";
export * from "./rl/metrics.ts";
export * from "./rl/metrics_fs.ts";
export * from "./rl/progress.ts";
export * from "./rl/report.ts";
export * from "./rl/sft.ts";
export * from "./rl/grpo.ts";
export * from "./rl/checkpoint.ts";
export * from "./rl/checkpoint_fs.ts";
export * from "./rl/evaluate.ts";
export * from "./rl/evaluate_fs.ts";
export * from "./rl/train_config.ts";
export * from "./rl/presets.ts";
export * from "./rl/pipeline.ts";
export * from "./rl/pipeline_fs.ts";
export * from "./rl/memory_estimate.ts";

// data
export * from "./data/prompt.ts";
export * from "./data/gsm8k.ts";
export * from "./data/gsm8k_fs.ts";
export * from "./data/open_thoughts.ts";
export * from "./data/open_thoughts_fs.ts";
export * from "./data/examples.ts";
export * from "./data/demo_set.ts";
export * from "./data/batching.ts";
export * from "./data/batch_sampler.ts";
export * from "./data/dataset_fs.ts";
