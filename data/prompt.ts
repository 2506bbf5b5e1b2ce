/**
 * The seed recipe's prompt format (Google Tunix `examples/grpo_gemma.ipynb`): one system prompt
 * asking for `<reasoning>…</reasoning>` then a single number in `<answer>…</answer>`, placed in
 * Gemma's turn format. This is the only place the template text lives.
 *
 * @module
 */

/** Opening tag of the reasoning section. */
export const REASONING_START = "<reasoning>";
/** Closing tag of the reasoning section. */
export const REASONING_END = "</reasoning>";
/** Opening tag of the answer section. */
export const ANSWER_START = "<answer>";
/** Closing tag of the answer section. */
export const ANSWER_END = "</answer>";

/** The seed recipe's system prompt. */
export const SYSTEM_PROMPT: string = "You are given a problem. Think about the problem and " +
  `provide your reasoning. Place it between ${REASONING_START} and ${REASONING_END}. ` +
  "Then, provide the final answer (i.e., just one numerical value) between " +
  `${ANSWER_START} and ${ANSWER_END}.`;

/**
 * Builds the recipe's prompt: system prompt and question in one user turn, then the opening of
 * the model turn. The text carries no `<bos>`; the tokenizer adds it.
 *
 * @param question The problem text.
 * @param systemPrompt Defaults to {@linkcode SYSTEM_PROMPT}.
 * @returns The prompt text.
 * @example
 * ```ts
 * import { buildPrompt } from "./prompt.ts";
 * const p = buildPrompt("What is 2 + 3?");
 * if (!p.endsWith("<start_of_turn>model\n")) throw new Error("bad template");
 * ```
 */
export function buildPrompt(question: string, systemPrompt: string = SYSTEM_PROMPT): string {
  return `<start_of_turn>user\n${systemPrompt}\n\n${question}<end_of_turn>\n<start_of_turn>model\n`;
}

/**
 * Formats a training target in the recipe's format.
 *
 * @param reasoning The worked reasoning.
 * @param answer The final answer.
 * @returns `<reasoning>{reasoning}</reasoning>\n<answer>{answer}</answer>`.
 */
export function formatTarget(reasoning: string, answer: string): string {
  return `${REASONING_START}${reasoning}${REASONING_END}\n${ANSWER_START}${answer}${ANSWER_END}`;
}
