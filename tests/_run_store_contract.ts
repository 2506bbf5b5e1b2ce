/**
 * Runtime-neutral checks for run stores (no Deno API, no `node:assert`: a browser page can
 * bundle and run them on the real origin-private file system):
 *
 * - {@linkcode directorySemanticsChecks}: the OPFS behaviours that the test fake
 *   (`_fake_directory_handle.ts`) copies and `DirectoryRunStore` relies on, checked on any
 *   directory handle (the fake in Deno; `navigator.storage.getDirectory()` in Chromium);
 * - {@linkcode runStoreContract}: what every `RunStore` does (state, evaluations, report,
 *   samples, metrics, `retainRows`, checkpoints with keep-N, the vocabulary map, exports), on
 *   `MemoryRunStore`, `FsRunStore` and `DirectoryRunStore`.
 *
 * @module
 */

import type { Tensor } from "../kernels/tensor.ts";
import { VocabMap } from "../model/vocab_map.ts";
import { CheckpointError, type LoadedCheckpoint } from "../rl/checkpoint.ts";
import type { WritableDirectoryHandle } from "../rl/directory_files.ts";
import { ExportError, type ExportFile, textExportFile } from "../rl/export_files.ts";
import type { PipelineState } from "../rl/pipeline_state.ts";
import { checkpointRef, exportRef, type RunStore } from "../rl/run_store.ts";

/** Throws `message` unless `ok`. */
export function ensure(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(`check failed: ${message}`);
}

/** JSON text of a value (typed arrays as arrays, `-0` kept), for comparisons. */
function show(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => Object.is(v, -0) ? "-0" : ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v,
  );
}

/** Throws unless `got` and `want` have the same JSON form. */
export function ensureSame(got: unknown, want: unknown, message: string): void {
  const g = show(got), w = show(want);
  ensure(g === w, `${message}: got ${g.slice(0, 300)}, expected ${w.slice(0, 300)}`);
}

/** Resolves to the error `promise` rejects with; throws when it resolves. */
async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`check failed: ${what} was expected to fail`);
}

async function ensureRejects(
  promise: Promise<unknown>,
  errorName: string,
  what: string,
): Promise<void> {
  const e = await rejection(promise, what);
  ensure((e as Error)?.name === errorName, `${what}: expected ${errorName}, got ${e}`);
}

async function names(dir: WritableDirectoryHandle): Promise<string[]> {
  const out: string[] = [];
  for await (const child of dir.values()) out.push(`${child.name}:${child.kind}`);
  return out.sort();
}

async function text(dir: WritableDirectoryHandle, name: string): Promise<string> {
  return await (await (await dir.getFileHandle(name)).getFile()).text();
}

/**
 * The origin-private file system's behaviours that the run store relies on (and the fake
 * copies), each as Chromium showed them.
 *
 * @param root An empty folder to work in.
 * @returns The names of the checks that passed.
 */
export async function directorySemanticsChecks(root: WritableDirectoryHandle): Promise<string[]> {
  const passed: string[] = [];
  const dir = await root.getDirectoryHandle("d", { create: true });
  const file = await dir.getFileHandle("a.txt", { create: true });
  ensure((await file.getFile()).size === 0, "a created file is empty");

  const writable = await file.createWritable();
  await writable.write("hello");
  ensure(await text(dir, "a.txt") === "", "writes are invisible before close()");
  ensureSame(await names(dir), ["a.txt.crswap:file", "a.txt:file"], "swap file while open");
  await ensureRejects(dir.removeEntry("a.txt"), "NoModificationAllowedError", "remove while open");
  await ensureRejects(
    root.removeEntry("d", { recursive: true }),
    "NoModificationAllowedError",
    "remove the folder while a file in it is open",
  );
  await writable.close();
  ensure(await text(dir, "a.txt") === "hello", "close() commits");
  ensureSame(await names(dir), ["a.txt:file"], "no swap file after close()");
  await ensureRejects(writable.write("x"), "TypeError", "write after close()");
  passed.push("createWritable() commits on close()");

  const before = await file.getFile();
  const append = await file.createWritable({ keepExistingData: true });
  await append.seek(before.size);
  await append.write(new TextEncoder().encode(" world") as Uint8Array<ArrayBuffer>);
  await append.close();
  ensure(await text(dir, "a.txt") === "hello world", "keepExistingData + seek appends");
  await ensureRejects(before.text(), "NotReadableError", "reading a stale getFile() snapshot");
  await ensureRejects(
    before.slice(0, 2).arrayBuffer(),
    "NotReadableError",
    "reading a slice of a stale snapshot",
  );
  passed.push("keepExistingData appends; stale snapshots refuse reads");

  const aborted = await file.createWritable();
  await aborted.write("zzz");
  await aborted.abort();
  ensure(await text(dir, "a.txt") === "hello world", "abort() discards");
  passed.push("abort() discards");

  await ensureRejects(dir.getDirectoryHandle("a.txt"), "TypeMismatchError", "folder on a file");
  await ensureRejects(root.getFileHandle("d"), "TypeMismatchError", "file on a folder");
  await ensureRejects(dir.getFileHandle("nope"), "NotFoundError", "missing file");
  await ensureRejects(dir.removeEntry("nope"), "NotFoundError", "removing a missing entry");
  const sub = await dir.getDirectoryHandle("sub", { create: true });
  await sub.getFileHandle("x", { create: true });
  await ensureRejects(
    dir.removeEntry("sub"),
    "InvalidModificationError",
    "non-empty, no recursive",
  );
  for (const bad of ["a/b", "..", "", "a\\b", "."]) {
    await ensureRejects(dir.getFileHandle(bad, { create: true }), "TypeError", `name ${bad}`);
  }
  passed.push("errors: TypeMismatch, NotFound, InvalidModification, bad names");

  await dir.removeEntry("sub", { recursive: true });
  await ensureRejects(sub.getFileHandle("y", { create: true }), "NotFoundError", "removed folder");
  const z = await dir.getFileHandle("z", { create: true });
  await dir.removeEntry("z");
  await ensureRejects(z.getFile(), "NotFoundError", "removed file");
  await dir.getFileHandle("z", { create: true });
  ensure((await z.getFile()).size === 0, "a handle names a path: it works once recreated");
  passed.push("handles name paths");

  await root.removeEntry("d", { recursive: true });
  return passed;
}

/** A store under {@linkcode runStoreContract}. */
export interface ContractSubject {
  /** A store over a new, empty run. */
  readonly store: RunStore;
  /** A second store over the same run (folder stores); a memory store returns itself. */
  reopen(): Promise<RunStore>;
  /**
   * Appends raw text to a JSONL file of the run, as a crash can leave it (folder stores only).
   */
  readonly appendRaw?: (name: "metrics.jsonl" | "samples.jsonl", text: string) => Promise<void>;
}

/** A host f32 "tensor" holding `data` (what the stores read: dtype, shape, numel, read()). */
export function hostTensor(data: Float32Array, shape: readonly number[]): Tensor {
  const read = () => Promise.resolve(data.slice());
  return { dtype: "f32", shape, numel: data.length, read } as unknown as Tensor;
}

/** Values with awkward bits: −0, a subnormal, the largest f32, 1/3. */
function awkward(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(seed * 7.1 + i) * 3;
  out.set([-0, 1e-42, 3.4e38, 1 / 3].slice(0, n));
  return out;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function state(status: PipelineState["status"], step: number): PipelineState {
  return {
    format: "webtune.pipeline",
    version: 1,
    status,
    phases: ["sft", "grpo"],
    completed: [],
    current: { phase: "sft", step, checkpoint: null },
    outputs: {},
    evals: { base: { accuracy: 0.25, partialAccuracy: 0.5, formatAccuracy: 1, n: 4 } },
    error: null,
    startedAt: "2026-01-02T03:04:05.000Z",
    updatedAt: `2026-01-02T03:04:0${step}.000Z`,
  };
}

/** The export the contract writes (names as a LoRA export with `merged/` has them). */
export function contractExportFiles(): ExportFile[] {
  return [
    textExportFile("adapter_config.json", '{"r": 2}\n'),
    {
      name: "merged/model.bin",
      chunks: async function* () {
        yield new Uint8Array([1, 2, 3]);
        yield new Uint8Array([4]);
      },
    },
  ];
}

/**
 * Runs the `RunStore` contract on a new, empty store, leaving in it: a state, evaluations, a
 * report, metrics and samples (after a `retainRows`), checkpoints of `sft` (steps 1 and 3) and
 * `grpo` (step 2), a vocabulary map and an export of `sft`.
 *
 * @param subject The store and how to reopen it.
 * @returns The names of the checks that passed.
 */
export async function runStoreContract(subject: ContractSubject): Promise<string[]> {
  const passed: string[] = [];
  const { store } = subject;

  ensure(await store.readState() === null, "a new run has no state");
  await store.writeState(state("running", 1));
  await store.writeState(state("interrupted", 2));
  ensureSame(await store.readState(), state("interrupted", 2), "readState() after writeState()");
  ensureSame(await (await subject.reopen()).readState(), state("interrupted", 2), "reopened");
  await store.writeEvals(state("running", 1).evals);
  await store.writeReport("<!DOCTYPE html>\n<p>report ✓</p>\n");
  passed.push("state, evaluations, report");

  const samples = [
    { phase: "sft", step: 1, prompt: "1+1?", completion: "<answer>2</answer>" },
    { phase: "sft", step: 2, prompt: "2+2?", completion: "4 ✓", reward: 1, correct: true },
    { phase: "grpo", step: 1, prompt: "q", completion: "c", rewards: { format: 0.5 } },
  ];
  for (const s of samples) await store.appendSample(s);
  const lines = [
    '{"phase":"sft","step":1,"loss":2.5}',
    '{"phase":"sft","step":2,"loss":null}',
    '{"phase":"grpo","step":1,"reward_mean":0.5}',
  ];
  for (const line of lines) await store.metricsSink.append(line);
  ensureSame(await store.readSamples(), samples, "readSamples()");
  ensureSame(await store.readMetrics(), lines.map((l) => JSON.parse(l)), "readMetrics()");
  passed.push("samples and metrics append");

  if (subject.appendRaw) {
    await subject.appendRaw("metrics.jsonl", '{"phase":"grpo","st');
    ensureSame((await store.readMetrics()).length, 3, "a cut last line is skipped");
  }
  const dropped = await store.retainRows((row) => row.phase === "sft" && row.step === 1);
  ensureSame(dropped, { metrics: 2, samples: 2 }, "retainRows() counts");
  await store.metricsSink.append('{"phase":"sft","step":2,"loss":1.5}');
  await store.appendSample(samples[1]);
  const wantMetrics = [{ phase: "sft", step: 1, loss: 2.5 }, { phase: "sft", step: 2, loss: 1.5 }];
  ensureSame(await store.readMetrics(), wantMetrics, "metrics after retainRows() + append");
  ensureSame(await store.readSamples(), samples.slice(0, 2), "samples after retainRows()");
  const again = await subject.reopen();
  ensureSame(await again.readMetrics(), wantMetrics, "metrics of the reopened run");
  ensureSame(await store.retainRows(() => true), { metrics: 0, samples: 0 }, "keep all");
  passed.push("retainRows() drops rows (and a cut line), appends continue");

  const params = (seed: number) =>
    new Map([
      ["layers.0.lora_A", hostTensor(awkward(6, seed), [2, 3])],
      ["norm", hostTensor(awkward(4, seed + 1), [4])],
    ]);
  const optimizerState = {
    stepCount: 7,
    moments: new Map([["norm", { m: awkward(4, 9), v: awkward(4, 10).map(Math.abs) }]]),
  };
  const fields = {
    rng: { seed: 1, counter: 2 ** 40 },
    dataPosition: { epoch: 0, order: [2, 0, 1] },
    config: { note: "π" },
    metrics: { loss: 1.25 },
    trainerState: { skips: 0 },
  };
  const refs: string[] = [];
  for (const step of [1, 2, 3]) {
    refs.push(
      await store.saveCheckpoint("sft", {
        step,
        params: params(step),
        optimizerState,
        ...fields,
      }, { keep: 2 }),
    );
  }
  ensureSame(refs, [1, 2, 3].map((n) => checkpointRef(store.runDir, "sft", n)), "references");
  const loaded: LoadedCheckpoint = await store.loadCheckpoint(refs[2]);
  ensureSame(
    [loaded.path, loaded.step, loaded.optimizerStepCount],
    [refs[2], 3, 7],
    "loaded step",
  );
  ensureSame(
    [loaded.rng, loaded.dataPosition, loaded.config, loaded.metrics, loaded.trainerState],
    [fields.rng, fields.dataPosition, fields.config, fields.metrics, fields.trainerState],
    "loaded trainer fields",
  );
  for (const [name, t] of params(3)) {
    const got = loaded.params.get(name);
    ensure(got !== undefined, `parameter ${name} loaded`);
    ensureSame(got.shape, t.shape, `${name} shape`);
    ensureSame(bits(got.data), bits((await t.read()) as Float32Array), `${name} bits`);
  }
  const m = loaded.optimizerState?.moments.get("norm");
  ensure(m !== undefined, "moments loaded");
  ensureSame([bits(m.m), bits(m.v)], [
    bits(optimizerState.moments.get("norm")!.m),
    bits(
      optimizerState.moments.get("norm")!.v,
    ),
  ], "moment bits");
  const pruned = await rejection(store.loadCheckpoint(refs[0]), "loading a pruned checkpoint");
  ensure(
    pruned instanceof CheckpointError && pruned.code === "missing",
    `a pruned checkpoint is missing: ${pruned}`,
  );
  await store.saveCheckpoint("sft", { step: 3, params: params(3), metrics: { loss: 9 } }, {
    keep: 2,
  });
  const replaced = await store.loadCheckpoint(refs[2]);
  ensureSame([replaced.metrics, replaced.optimizerState], [{ loss: 9 }, null], "replaced step 3");
  // A run resumed from an older step: its new checkpoint is kept, the oldest other one goes.
  await store.saveCheckpoint("sft", { step: 1, params: params(1) }, { keep: 2 });
  ensure((await store.loadCheckpoint(refs[0])).step === 1, "the resumed step is kept");
  ensure(
    await store.loadCheckpoint(refs[1]).then(() => false, () => true),
    "step 2 pruned after saving step 1",
  );
  const grpo = await store.saveCheckpoint("grpo", { step: 2, params: params(5) }, { keep: 1 });
  ensure((await store.loadCheckpoint(refs[2])).step === 3, "phases prune separately");
  ensure((await store.loadCheckpoint(grpo)).step === 2, "grpo checkpoint");
  const bad = await rejection(
    store.saveCheckpoint("sft", { step: -1, params: params(1) }),
    "saving step -1",
  );
  ensure(bad instanceof CheckpointError && bad.code === "invalid_input", `step -1: ${bad}`);
  passed.push("checkpoints: bit-exact round trip, keep-N, same-step replacement, per phase");

  ensure(await store.loadVocabMap() === null, "no vocabulary yet");
  await store.saveVocabMap(VocabMap.fromIds([0, 1, 2, 106, 107, 262143], 262144));
  ensureSame(
    (await (await subject.reopen()).loadVocabMap())?.toJSON().ids,
    [0, 1, 2, 106, 107, 262143],
    "vocab",
  );
  passed.push("vocabulary map");

  ensure(
    await store.writeExport("sft", [textExportFile("old.txt", "1")]) ===
      exportRef(store.runDir, "sft"),
    "export reference",
  );
  await store.writeExport("sft", contractExportFiles());
  const badName = await rejection(
    store.writeExport("grpo", [{
      name: "../x",
      chunks: () => {
        throw new Error("a file with a bad name is never read");
      },
    }]),
    "an export file named ../x",
  );
  ensure(badName instanceof ExportError, `bad export name: ${badName}`);
  passed.push("exports");
  return passed;
}
