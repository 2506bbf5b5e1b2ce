/**
 * Renders a Hugging Face `chat_template` (Jinja, from `tokenizer_config.json`) with
 * `npm:@huggingface/jinja`, like `transformers`' `apply_chat_template`. Gemma 3's template
 * starts with `{{ bos_token }}` and folds a system message into the first user turn; the
 * rendered text is tokenized without adding special tokens, so it holds exactly one `<bos>`.
 *
 * @module
 */

import { Template } from "@huggingface/jinja";

/** Role of a chat message. */
export type ChatRole = "system" | "user" | "assistant";

/** One chat message. */
export interface ChatMessage {
  /** Who speaks; Gemma renders `assistant` as `model`. */
  readonly role: ChatRole;
  /** The message text. */
  readonly content: string;
}

/** What the template needs from a tokenizer (structural, e.g. `Tokenizer`). */
export interface TextEncoderLike {
  /** Encodes text; called with `addSpecialTokens: false`. */
  encode(text: string, options?: { readonly addSpecialTokens?: boolean }): number[];
}

/** A special token in `tokenizer_config.json`: its text, or an added-token object. */
export type ConfigToken = string | { readonly content: string } | null;

/** The fields of `tokenizer_config.json` used here. */
export interface TokenizerConfig {
  /** The Jinja source, or a list of named templates (`default` is used). */
  readonly chat_template?: string | readonly { name: string; template: string }[];
  /** Beginning-of-sequence token (`<bos>`). */
  readonly bos_token?: ConfigToken;
  /** End-of-sequence token (`<end_of_turn>` in gemma-3-*-it). */
  readonly eos_token?: ConfigToken;
  /** Padding token. */
  readonly pad_token?: ConfigToken;
  /** Unknown token. */
  readonly unk_token?: ConfigToken;
}

/** Options of the {@linkcode ChatTemplate} constructor. */
export interface ChatTemplateOptions {
  /** Encodes rendered text for `tokenize: true`. */
  readonly tokenizer?: TextEncoderLike;
  /** Variables visible to the template, e.g. `{ bos_token: "<bos>" }`. */
  readonly specialTokens?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode ChatTemplate.applyChatTemplate}. */
export interface ApplyChatTemplateOptions {
  /** Append the opening of the model's turn (`<start_of_turn>model\n`). Default false. */
  readonly addGenerationPrompt?: boolean;
  /** Return token ids (no extra `<bos>`) instead of text. Default false. */
  readonly tokenize?: boolean;
}

/** Thrown for a missing or failing template, or malformed messages; names the field. */
export class ChatTemplateError extends Error {
  /**
   * @param message What was expected and what was found.
   */
  constructor(message: string) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

const ROLES: readonly string[] = ["system", "user", "assistant"];
const SPECIAL_FIELDS = ["bos_token", "eos_token", "pad_token", "unk_token"] as const;

/** A compiled chat template. */
export class ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  readonly #template: Template;
  readonly #tokenizer: TextEncoderLike | undefined;
  readonly #specialTokens: Readonly<Record<string, string>>;

  /**
   * @param source Jinja source of the chat template.
   * @param options The tokenizer for `tokenize: true` and the template's special-token variables.
   * @example
   * ```ts
   * import { ChatTemplate } from "./chat_template.ts";
   * const chat = new ChatTemplate("{{ bos_token }}{{ messages[0].content }}", {
   *   specialTokens: { bos_token: "<bos>" },
   * });
   * if (chat.render([{ role: "user", content: "Hi" }]) !== "<bos>Hi") throw new Error();
   * ```
   */
  constructor(source: string, options: ChatTemplateOptions = {}) {
    if (typeof source !== "string" || source.length === 0) {
      throw new ChatTemplateError("chat_template: expected a non-empty string");
    }
    this.source = source;
    try {
      this.#template = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`chat_template: does not parse: ${(err as Error).message}`);
    }
    this.#tokenizer = options.tokenizer;
    this.#specialTokens = Object.freeze({ ...options.specialTokens });
  }

  /**
   * Builds the template of a `tokenizer_config.json`, with its special tokens as variables.
   *
   * @param config The parsed `tokenizer_config.json`.
   * @param options The tokenizer for `tokenize: true`.
   * @returns The chat template.
   */
  static fromTokenizerConfig(
    config: TokenizerConfig,
    options: { readonly tokenizer?: TextEncoderLike } = {},
  ): ChatTemplate {
    let source = config.chat_template;
    if (Array.isArray(source)) {
      source = source.find((t) => t.name === "default")?.template;
    }
    if (typeof source !== "string") {
      throw new ChatTemplateError("chat_template: missing from tokenizer_config.json");
    }
    const specialTokens: Record<string, string> = {};
    for (const field of SPECIAL_FIELDS) {
      const value = config[field];
      if (typeof value === "string") specialTokens[field] = value;
      else if (value != null && typeof value.content === "string") {
        specialTokens[field] = value.content;
      }
    }
    return new ChatTemplate(source, { tokenizer: options.tokenizer, specialTokens });
  }

  /**
   * Renders messages to text.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt` appends the opening of the model's turn.
   * @returns The prompt text (Gemma: starts with `<bos>`).
   */
  render(
    messages: readonly ChatMessage[],
    options: { readonly addGenerationPrompt?: boolean } = {},
  ): string {
    messages.forEach((m, i) => {
      if (!ROLES.includes(m?.role)) {
        throw new ChatTemplateError(`messages[${i}].role: expected ${ROLES.join("|")}`);
      }
      if (typeof m.content !== "string") {
        throw new ChatTemplateError(`messages[${i}].content: expected a string`);
      }
    });
    try {
      return this.#template.render({
        ...this.#specialTokens,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (err) {
      throw new ChatTemplateError(`chat_template: ${(err as Error).message}`);
    }
  }

  /**
   * Renders messages and optionally tokenizes them, like `apply_chat_template`: the text is
   * encoded with `addSpecialTokens: false`, since the template already wrote `<bos>`.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt`; `tokenize: true` returns ids.
   * @returns The text, or its ids.
   * @example
   * ```ts ignore
   * const ids = chat.applyChatTemplate([{ role: "user", content: "Hi" }], {
   *   addGenerationPrompt: true,
   *   tokenize: true,
   * }); // [2, 105, 2364, 107, 10979, 106, 107, 105, 4368, 107]
   * ```
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: ApplyChatTemplateOptions & { readonly tokenize: true },
  ): number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options?: ApplyChatTemplateOptions & { readonly tokenize?: false },
  ): string;
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options?: ApplyChatTemplateOptions,
  ): string | number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: ApplyChatTemplateOptions = {},
  ): string | number[] {
    const text = this.render(messages, options);
    if (!options.tokenize) return text;
    if (this.#tokenizer === undefined) {
      throw new ChatTemplateError("tokenizer: needed for tokenize: true");
    }
    return this.#tokenizer.encode(text, { addSpecialTokens: false });
  }
}
