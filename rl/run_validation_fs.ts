/**
 * The checks of a run before it starts, with files (Deno): the input paths exist and hold the
 * data files of the splits they are read for (`checkInputPaths`), then everything
 * {@linkcode validateRun} checks, reading the model folder's `config.json`, its tokenizer and
 * the GSM8K splits from disk.
 *
 * @module
 */

import type { Tokenizer } from "../model/tokenizer.ts";
import type { InputSources } from "./run_inputs.ts";
import { fsInputSources } from "./run_inputs_fs.ts";
import { type ValidatedRun, validateRun } from "./run_validation.ts";
import type { TrainConfig } from "./train_config.ts";
import { checkInputPaths } from "./train_config_fs.ts";

/** Options of {@linkcode validateRunFs}. */
export interface ValidateRunFsOptions {
  /** Where inputs come from (default: files, `fsInputSources`). */
  readonly sources?: InputSources;
  /** The tokenizer to use instead of the model folder's (with the default sources). */
  readonly tokenizer?: Tokenizer;
}

/**
 * Checks a run before it starts (paths, then {@linkcode validateRun}); nothing is written.
 *
 * @param config The run's config.
 * @param options `sources` or `tokenizer`.
 * @returns The config and the sources holding what was read (`train()`'s `validated`).
 * @throws {MissingInputError} Naming the field whose path is missing or holds no data files.
 * @throws {TrainConfigError} Naming a bad field or combination, and what was expected.
 * @throws {TokenizerMismatchError} Naming the tokenizer and the model's `config.json`.
 * @example
 * ```ts
 * import { validateRunFs } from "./run_validation_fs.ts";
 * import { presetConfig } from "./presets.ts";
 * const checked = await validateRunFs(presetConfig("demo")); // the demo reads no files
 * if (checked.config.preset !== "demo") throw new Error();
 * ```
 */
export async function validateRunFs(
  config: TrainConfig,
  options: ValidateRunFsOptions = {},
): Promise<ValidatedRun> {
  await checkInputPaths(config);
  const sources = options.sources ?? fsInputSources({ tokenizer: options.tokenizer });
  return await validateRun(config, { sources });
}
