/**
 * Sentence templates and vocabulary of the demo set's word problems. Kept short on purpose:
 * the default demo run trains a tiny model from scratch.
 *
 * @module
 */

/** An arithmetic operation with an exact integer result. */
export type DemoOp = "+" | "-" | "*" | "/";

/** A person in a problem, with pronouns. */
export interface Person {
  /** Name. */
  readonly name: string;
  /** Subject pronoun: he / she. */
  readonly he: string;
  /** Object pronoun: him / her. */
  readonly him: string;
}

/** A countable thing. */
export interface Item {
  /** Singular. */
  readonly one: string;
  /** Plural. */
  readonly many: string;
}

/** Everything a template may mention. */
export interface TemplateContext {
  /** The main person. */
  readonly person: Person;
  /** Another person. */
  readonly friend: Person;
  /** The thing counted. */
  readonly item: Item;
  /** `count(n)` = "1 apple" / "3 apples". */
  readonly count: (n: number) => string;
}

/** A complete one-step problem: `a op b`. */
export interface OneStepTemplate {
  /** The operation it asks for. */
  readonly op: DemoOp;
  /** Question text for operands a, b. */
  readonly text: (c: TemplateContext, a: number, b: number) => string;
}

/** A sentence that changes the running amount by `op b`. */
export interface StepTemplate {
  /** The operation it performs on the running amount. */
  readonly op: DemoOp;
  /** Sentence for operand b. */
  readonly text: (c: TemplateContext, b: number) => string;
}

/**
 * Upper-cases the first letter.
 *
 * @param s A word or sentence.
 * @returns `s` with its first letter upper-cased.
 */
export function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** People. */
export const PEOPLE: readonly Person[] = Object.freeze(
  [
    ...["Tom", "Sam", "Ben", "Max", "Leo", "Omar", "Raj", "Ivan", "Ken", "Luis"].map((name) => ({
      name,
      he: "he",
      him: "him",
    })),
    ...["Ann", "Mia", "Zoe", "Eva", "Lily", "Nora", "Aisha", "Mei", "Rosa", "Kate"].map((name) => ({
      name,
      he: "she",
      him: "her",
    })),
  ],
);

/** Countable things. */
export const ITEMS: readonly Item[] = Object.freeze(
  [
    ["apple", "apples"],
    ["pear", "pears"],
    ["egg", "eggs"],
    ["cookie", "cookies"],
    ["pencil", "pencils"],
    ["book", "books"],
    ["marble", "marbles"],
    ["card", "cards"],
    ["ball", "balls"],
    ["sticker", "stickers"],
    ["shell", "shells"],
    ["coin", "coins"],
    ["toy car", "toy cars"],
    ["flower", "flowers"],
    ["cupcake", "cupcakes"],
    ["orange", "oranges"],
  ].map(([one, many]) => ({ one, many })),
);

/** Complete one-step problems (the easy level uses only these). */
export const ONE_STEP_TEMPLATES: readonly OneStepTemplate[] = Object.freeze([
  {
    op: "+",
    text: (c, a, b) =>
      `${c.person.name} has ${c.count(a)} and buys ${b} more. ` +
      `How many ${c.item.many} does ${c.person.he} have?`,
  },
  {
    op: "+",
    text: (c, a, b) =>
      `${c.person.name} has ${c.count(a)}. ${c.friend.name} gives ${c.person.him} ${b} more. ` +
      `How many ${c.item.many} does ${c.person.name} have now?`,
  },
  {
    op: "+",
    text: (c, a, b) =>
      `${c.person.name} finds ${c.count(a)} on Monday and ${b} on Tuesday. ` +
      `How many ${c.item.many} did ${c.person.he} find?`,
  },
  {
    op: "+",
    text: (c, a, b) =>
      `A box has ${c.count(a)}. ${c.person.name} puts in ${b} more. ` +
      `How many ${c.item.many} are in the box?`,
  },
  {
    op: "-",
    text: (c, a, b) =>
      `${c.person.name} has ${c.count(a)} and gives ${b} to ${c.friend.name}. ` +
      `How many ${c.item.many} does ${c.person.he} have left?`,
  },
  {
    op: "-",
    text: (c, a, b) =>
      `There are ${c.count(a)} on a table. ${c.person.name} takes ${b}. ` +
      `How many ${c.item.many} are left?`,
  },
  {
    op: "-",
    text: (c, a, b) =>
      `${c.person.name} had ${c.count(a)} and lost ${b}. ` +
      `How many ${c.item.many} does ${c.person.he} have now?`,
  },
  {
    op: "-",
    text: (c, a, b) =>
      `${c.person.name} has ${c.count(a)}. ${c.friend.name} has ${c.count(b)}. ` +
      `How many more ${c.item.many} does ${c.person.name} have?`,
  },
  {
    op: "*",
    text: (c, a, b) =>
      `${c.person.name} has ${a} bags with ${c.count(b)} in each. ` +
      `How many ${c.item.many} does ${c.person.he} have?`,
  },
  {
    op: "*",
    text: (c, a, b) =>
      `${c.person.name} buys ${a} boxes of ${c.count(b)}. ` +
      `How many ${c.item.many} does ${c.person.he} buy?`,
  },
  {
    op: "*",
    text: (c, a, b) =>
      `There are ${a} rows of ${c.item.many} with ${b} in each row. ` +
      `How many ${c.item.many} are there?`,
  },
  {
    op: "/",
    text: (c, a, b) =>
      `${c.person.name} shares ${c.count(a)} equally among ${b} friends. ` +
      `How many ${c.item.many} does each friend get?`,
  },
  {
    op: "/",
    text: (c, a, b) =>
      `${c.person.name} puts ${c.count(a)} into ${b} equal rows. ` +
      `How many ${c.item.many} are in each row?`,
  },
  {
    op: "/",
    text: (c, a, b) =>
      `${c.person.name} packs ${c.count(a)} into bags of ${b}. ` +
      `How many bags does ${c.person.he} fill?`,
  },
]);

/** Openings of multi-step problems: a starting amount. */
export const OPENINGS: readonly ((c: TemplateContext, a: number) => string)[] = Object.freeze([
  (c, a) => `${c.person.name} has ${c.count(a)}.`,
  (c, a) => `${c.person.name} starts with ${c.count(a)}.`,
  (c, a) => `${c.person.name} collects ${c.count(a)}.`,
]);

/** Opening that is itself a multiplication step: `a` packs of `b`. */
export const PRODUCT_OPENING = (c: TemplateContext, a: number, b: number): string =>
  `${c.person.name} buys ${a} packs of ${c.count(b)}.`;

/** Sentences changing the running amount. */
export const STEP_TEMPLATES: readonly StepTemplate[] = Object.freeze([
  { op: "+", text: (c, b) => `Then ${c.person.he} buys ${b} more.` },
  { op: "+", text: (c, b) => `${c.friend.name} gives ${c.person.him} ${b} more.` },
  { op: "+", text: (c, b) => `${cap(c.person.he)} finds ${b} more.` },
  { op: "-", text: (c, b) => `${cap(c.person.he)} gives ${b} to ${c.friend.name}.` },
  { op: "-", text: (c, b) => `${cap(c.person.he)} loses ${b}.` },
  { op: "-", text: (c, b) => `Then ${c.person.he} sells ${b}.` },
  { op: "*", text: (c, b) => `Then ${c.person.he} gets ${b} times as many.` },
  {
    op: "/",
    text: (c, b) => `${cap(c.person.he)} splits them into ${b} equal piles and keeps one pile.`,
  },
  {
    op: "/",
    text: (c, b) =>
      `${cap(c.person.he)} shares them equally with ${b - 1} ${b === 2 ? "friend" : "friends"} ` +
      `and ${c.person.him}self.`,
  },
]);

/** Closing questions of multi-step problems. */
export const QUESTIONS: readonly ((c: TemplateContext) => string)[] = Object.freeze([
  (c) => `How many ${c.item.many} does ${c.person.he} have now?`,
  (c) => `How many ${c.item.many} does ${c.person.name} have at the end?`,
]);
