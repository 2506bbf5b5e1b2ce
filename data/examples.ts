/**
 * Converting loaded records into the recipe's training examples: GRPO prompts with a gold answer,
 * and SFT prompt/target pairs. The template text lives only in `prompt.ts`.
 *
 * @module
 */

import { buildPrompt, formatTarget, SYSTEM_PROMPT } from "./prompt.ts";

/** A GRPO training or evaluation example: the model sees `prompt`, rewards compare `answer`. */
export interface GrpoExample {
  /** The full prompt text (system prompt + question in Gemma's turn format). */
  readonly prompt: string;
  /** The bare question. */
  readonly question: string;
  /** The gold answer string (e.g. GSM8K's text after `####`). */
  readonly answer: string;
}

/** An SFT example: loss is taken on `target` only. */
export interface SftExample {
  /** The full prompt text. */
  readonly prompt: string;
  /** `<reasoning>…</reasoning>\n<answer>…</answer>`. */
  readonly target: string;
  /** The bare question. */
  readonly question: string;
  /** The answer placed in the target. */
  readonly answer: string;
}

/**
 * Builds a GRPO example from any record with a question and a gold answer.
 *
 * @param record A GSM8K or demo record (or anything with `question` and `answer`).
 * @param systemPrompt Defaults to the recipe's {@linkcode SYSTEM_PROMPT}.
 * @returns `{ prompt, question, answer }`.
 * @example
 * ```ts
 * import { toGrpoExample } from "./examples.ts";
 * const ex = toGrpoExample({ question: "What is 2 + 3?", answer: "5" });
 * if (!ex.prompt.includes("What is 2 + 3?")) throw new Error("question missing");
 * ```
 */
export function toGrpoExample(
  record: { readonly question: string; readonly answer: string },
  systemPrompt: string = SYSTEM_PROMPT,
): GrpoExample {
  return Object.freeze({
    prompt: buildPrompt(record.question, systemPrompt),
    question: record.question,
    answer: record.answer,
  });
}

/**
 * Builds an SFT example: prompt = the question in the recipe's prompt, target = reasoning and
 * answer in the recipe's tags.
 *
 * @param record An OpenThoughts or demo record (anything with question, reasoning, answer).
 * @param systemPrompt Defaults to the recipe's {@linkcode SYSTEM_PROMPT}.
 * @returns `{ prompt, target, question, answer }`.
 * @example
 * ```ts
 * import { toSftExample } from "./examples.ts";
 * const ex = toSftExample({ question: "2 + 3?", reasoning: "2 + 3 = 5", answer: "5" });
 * if (ex.target !== "<reasoning>2 + 3 = 5</reasoning>\n<answer>5</answer>") throw new Error();
 * ```
 */
export function toSftExample(
  record: { readonly question: string; readonly reasoning: string; readonly answer: string },
  systemPrompt: string = SYSTEM_PROMPT,
): SftExample {
  return Object.freeze({
    prompt: buildPrompt(record.question, systemPrompt),
    target: formatTarget(record.reasoning, record.answer),
    question: record.question,
    answer: record.answer,
  });
}
