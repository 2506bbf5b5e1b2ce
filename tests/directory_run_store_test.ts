/**
 * `DirectoryRunStore` (a run in a browser directory) on an in-memory fake of the
 * origin-private file system (`_fake_directory_handle.ts`, checked against the OPFS behaviours
 * Chromium shows): the `RunStore` contract that `MemoryRunStore` and `FsRunStore` pass too, the
 * same files byte for byte as the Deno run folder, runs moved between disk and directory, and
 * the demo `train()` into it — equal to a `MemoryRunStore` run, resumed after an abort (also by
 * the Deno `train()` from a copy on disk), with `renderRunReport()` giving `report.html`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FieldError } from "../base/field_error.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { CheckpointError } from "../rl/checkpoint.ts";
import { CheckpointFolder } from "../rl/checkpoint_folder.ts";
import { loadCheckpoint } from "../rl/checkpoint_fs.ts";
import type { WritableDirectoryHandle } from "../rl/directory_files.ts";
import { DirectoryRunStore } from "../rl/directory_run_store.ts";
import type { MetricsRecord } from "../rl/metrics.ts";
import { FsRunStore, loadRunConfig, RUN_FILES } from "../rl/pipeline_fs.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { renderRunReport } from "../rl/run_report.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { train, type TrainResult } from "../rl/train.ts";
import { train as trainInFolder } from "../rl/train_fs.ts";
import { createFakeDirectory } from "./_fake_directory_handle.ts";
import {
  contractExportFiles,
  directorySemanticsChecks,
  hostTensor,
  runStoreContract,
} from "./_run_store_contract.ts";
import { trainUntil } from "./_train_worker.ts";
import { testGpu } from "./_helpers.ts";

/** Path → bytes of every file under a directory handle. */
async function handleTree(
  dir: WritableDirectoryHandle,
  prefix = "",
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const child of dir.values()) {
    const path = prefix + child.name;
    if (child.kind === "directory") {
      for (const [p, b] of await handleTree(await dir.getDirectoryHandle(child.name), `${path}/`)) {
        out.set(p, b);
      }
    } else {
      const file = await (await dir.getFileHandle(child.name)).getFile();
      out.set(path, new Uint8Array(await file.arrayBuffer()));
    }
  }
  return out;
}

/** Path → bytes of every file under a folder on disk. */
async function diskTree(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      for (const [p, b] of await diskTree(`${dir}/${e.name}`, `${prefix}${e.name}/`)) out.set(p, b);
    } else {
      out.set(prefix + e.name, await Deno.readFile(`${dir}/${e.name}`));
    }
  }
  return out;
}

/** Sorted `path: text` lines of a tree; `state.json`'s write time blanked. */
function treeText(tree: ReadonlyMap<string, Uint8Array>): string[] {
  return [...tree].sort(([a], [b]) => a < b ? -1 : 1).map(([path, bytes]) => {
    const text = new TextDecoder().decode(bytes);
    return `${path}: ${text.replace(/"savedAt": "[^"]*"/, '"savedAt": ""')}`;
  });
}

async function copyTreeToDisk(tree: ReadonlyMap<string, Uint8Array>, dir: string): Promise<void> {
  for (const [path, bytes] of tree) {
    const file = `${dir}/${path}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(file, bytes);
  }
}

async function copyTreeToHandle(
  tree: ReadonlyMap<string, Uint8Array>,
  root: WritableDirectoryHandle,
): Promise<void> {
  for (const [path, bytes] of tree) {
    const parts = path.split("/");
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      dir = await dir.getDirectoryHandle(part, { create: true });
    }
    const writable = await (await dir.getFileHandle(parts.at(-1)!, { create: true }))
      .createWritable();
    await writable.write(bytes as Uint8Array<ArrayBuffer>);
    await writable.close();
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_dirstore_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function openFake(label = "run-a") {
  const root = createFakeDirectory();
  const dir = await root.getDirectoryHandle(label, { create: true });
  return { root, dir, store: await DirectoryRunStore.open(dir) };
}

Deno.test("the fake directory handle behaves as Chromium's origin-private file system", async () => {
  const root = createFakeDirectory();
  const passed = await directorySemanticsChecks(
    await root.getDirectoryHandle("t", { create: true }),
  );
  assert.equal(passed.length, 5);
});

Deno.test("RunStore contract: MemoryRunStore, FsRunStore and DirectoryRunStore", async (t) => {
  await t.step("MemoryRunStore", async () => {
    const store = new MemoryRunStore("mem");
    assert.equal(
      (await runStoreContract({ store, reopen: () => Promise.resolve(store) })).length,
      6,
    );
  });
  await t.step("FsRunStore", async () => {
    await withTempDir(async (dir) => {
      const opened: FsRunStore[] = [await FsRunStore.open(dir)];
      try {
        const passed = await runStoreContract({
          store: opened[0],
          reopen: async () => opened[opened.push(await FsRunStore.open(dir)) - 1],
          appendRaw: (name, text) => Deno.writeTextFile(`${dir}/${name}`, text, { append: true }),
        });
        assert.equal(passed.length, 6);
      } finally {
        for (const s of opened) s.close();
      }
    });
  });
  await t.step("DirectoryRunStore", async () => {
    const { dir, store } = await openFake();
    const passed = await runStoreContract({
      store,
      reopen: () => DirectoryRunStore.open(dir),
      appendRaw: async (name, text) => {
        const file = await dir.getFileHandle(name);
        const size = (await file.getFile()).size;
        const writable = await file.createWritable({ keepExistingData: true });
        await writable.seek(size);
        await writable.write(text);
        await writable.close();
      },
    });
    assert.equal(passed.length, 6);
    assert.equal(store.runDir, "run-a");
  });
});

Deno.test("DirectoryRunStore writes the Deno run folder's files byte for byte; each reads the other's", async () => {
  await withTempDir(async (tmp) => {
    // The same operations on disk and in a directory.
    const diskDir = `${tmp}/disk`;
    await Deno.mkdir(diskDir);
    const fs = await FsRunStore.open(diskDir);
    const reopened: FsRunStore[] = [];
    await runStoreContract({
      store: fs,
      reopen: async () => reopened[reopened.push(await FsRunStore.open(diskDir)) - 1],
      appendRaw: (name, text) => Deno.writeTextFile(`${diskDir}/${name}`, text, { append: true }),
    });
    fs.close();
    for (const s of reopened) s.close();
    const { dir, store } = await openFake();
    await runStoreContract({ store, reopen: () => DirectoryRunStore.open(dir) });
    const disk = await diskTree(diskDir);
    const handle = await handleTree(dir);
    assert.deepEqual(treeText(handle), treeText(disk));
    assert.ok(disk.has("checkpoints/sft/step-3/params.safetensors"), [...disk.keys()].join());
    assert.ok(disk.has("export/sft/merged/model.bin"));

    // The directory's run, copied to disk, read by the Deno tools.
    const copy = `${tmp}/copy`;
    await copyTreeToDisk(handle, copy);
    const copied = await FsRunStore.open(copy);
    try {
      assert.deepEqual(await copied.readState(), await store.readState());
      assert.deepEqual(await copied.readMetrics(), await store.readMetrics());
      assert.deepEqual(await copied.readSamples(), await store.readSamples());
      assert.deepEqual(
        (await copied.loadVocabMap())?.toJSON(),
        (await store.loadVocabMap())?.toJSON(),
      );
    } finally {
      copied.close();
    }
    const fromDisk = await loadCheckpoint(`${copy}/checkpoints/sft/step-3`);
    const fromHandle = await store.loadCheckpoint("run-a/checkpoints/sft/step-3");
    assert.deepEqual({ ...fromDisk, path: "" }, { ...fromHandle, path: "" });

    // The disk run, copied into a directory, read by DirectoryRunStore.
    const other = createFakeDirectory();
    await copyTreeToHandle(disk, other);
    const back = await DirectoryRunStore.open(other, { label: "back" });
    assert.deepEqual(await back.readMetrics(), await store.readMetrics());
    const step1 = await back.loadCheckpoint("back/checkpoints/sft/step-1");
    assert.deepEqual({ ...step1, path: "" }, {
      ...await store.loadCheckpoint("run-a/checkpoints/sft/step-1"),
      path: "",
    });
  });
});

Deno.test("DirectoryRunStore: a checkpoint being written, or rewritten, is never listed", async () => {
  const { store } = await openFake();
  const folder = new CheckpointFolder(store.files, "run-a/checkpoints/sft");
  await store.saveCheckpoint("sft", {
    step: 1,
    params: new Map([["w", hostTensor(new Float32Array([1]), [1])]]),
  });
  for (const step of [2, 1]) {
    // A parameter whose read-back waits until the listing below is done.
    let release = () => {}, reading = () => {};
    const gate = new Promise<void>((resolve) => release = resolve);
    const started = new Promise<void>((resolve) => reading = resolve);
    const slow = {
      ...hostTensor(new Float32Array([3]), [1]),
      read: async () => {
        reading();
        await gate;
        return new Float32Array([3]);
      },
    } as never;
    const saving = store.saveCheckpoint("sft", { step, params: new Map([["w", slow]]) });
    await started;
    const during = (await folder.list()).map((c) => c.step);
    release();
    await saving;
    assert.deepEqual(during, step === 2 ? [1] : [2], `while step ${step} is written`);
    assert.deepEqual((await folder.list()).map((c) => c.step), [1, 2]);
    const saved = await store.loadCheckpoint(`run-a/checkpoints/sft/step-${step}`);
    assert.deepEqual([...saved.params.get("w")!.data], [3]);
  }
});

Deno.test("DirectoryRunStore: files whose first write never committed (a closed tab) read as missing", async () => {
  const { dir, store } = await openFake();
  const params = new Map([["w", hostTensor(new Float32Array([1]), [1])]]);
  const one = await store.saveCheckpoint("sft", { step: 1, params });
  // What a page killed while creating files leaves: the files exist, empty.
  await dir.getFileHandle(RUN_FILES.pipeline, { create: true });
  await dir.getFileHandle(RUN_FILES.vocabMap, { create: true });
  const sft = await (await dir.getDirectoryHandle("checkpoints")).getDirectoryHandle("sft");
  const two = await sft.getDirectoryHandle("step-2", { create: true });
  await (await two.getFileHandle("params.safetensors", { create: true }).then((f) =>
    f.createWritable()
  )).close();
  await two.getFileHandle("state.json", { create: true });
  assert.equal(await store.readState(), null);
  assert.equal(await store.loadVocabMap(), null);
  const folder = new CheckpointFolder(store.files, "run-a/checkpoints/sft");
  assert.deepEqual(await folder.list(), [{ step: 1, path: one }]);
  await assert.rejects(
    () => store.loadCheckpoint("run-a/checkpoints/sft/step-2"),
    (e: unknown) => e instanceof CheckpointError && e.code === "missing",
  );
});

Deno.test("DirectoryRunStore: failed writes leave no partial folder; labels and references are checked", async () => {
  const { dir, store } = await openFake();
  const params = new Map([["w", hostTensor(new Float32Array([1, 2]), [2])]]);
  const one = await store.saveCheckpoint("sft", { step: 1, params });
  const broken = new Map(params).set("gone", {
    ...hostTensor(new Float32Array([0]), [1]),
    read: () => Promise.reject(new Error("tensor was disposed")),
  } as never);
  await assert.rejects(
    () => store.saveCheckpoint("sft", { step: 2, params: broken }),
    (e: unknown) =>
      e instanceof CheckpointError && e.code === "io" && /tensor was disposed/.test(e.message),
  );
  const sft = await (await dir.getDirectoryHandle("checkpoints")).getDirectoryHandle("sft");
  const names = async (d: WritableDirectoryHandle) => {
    const out: string[] = [];
    for await (const c of d.values()) out.push(c.name);
    return out.sort();
  };
  assert.deepEqual(await names(sft), ["step-1"]);
  assert.equal((await store.loadCheckpoint(one)).step, 1);

  await store.writeExport("grpo", contractExportFiles());
  const failing = {
    name: "merged/model.bin",
    async *chunks(): AsyncIterable<Uint8Array> {
      yield new Uint8Array(8);
      throw new Error("out of quota");
    },
  };
  await assert.rejects(() => store.writeExport("grpo", [failing]), /out of quota/);
  // No half-written export and no swap file left open (the export folder is removed whole).
  assert.deepEqual(await names(await dir.getDirectoryHandle("export")), []);

  await assert.rejects(
    () => store.loadCheckpoint("elsewhere/checkpoints/sft/step-1"),
    (e: unknown) =>
      e instanceof CheckpointError && /not inside the run folder run-a\//.test(e.message),
  );
  await assert.rejects(() => DirectoryRunStore.open(dir, { label: "" }), FieldError);
  await assert.rejects(() => DirectoryRunStore.open(dir, { label: "runs/" }), FieldError);
  const root = await DirectoryRunStore.open(createFakeDirectory());
  assert.equal(root.runDir, "opfs"); // the OPFS root's name is empty
  store.close();
  await assert.rejects(() =>
    store.appendSample({ phase: "sft", step: 1, prompt: "", completion: "" })
  );
});

// ---------------------------------------------------------------------------------------------
// The demo run

const CONFIG = resolveTrainConfig({
  preset: "demo",
  sets: [
    "sft.steps=2",
    "grpo.numBatches=1",
    "eval.numQuestions=2",
    "eval.maxNewTokens=4",
    "grpo.maxNewTokens=4",
    "grpo.batchSize=1",
    "grpo.numGenerations=2",
    "run.sampleEvery=1",
    "run.samplesPerPoint=1",
  ],
});

/** Step rows without what measures time or device memory. */
const stepMetrics = (records: readonly MetricsRecord[]) =>
  records.filter((r) => r.phase === "sft" || r.phase === "grpo").map((r) =>
    Object.fromEntries(
      Object.entries(r).filter(([k]) =>
        !/^(time|step_seconds|tokens_per_second|rollout_seconds|train_seconds|gpu_bytes_.*)$/
          .test(k)
      ),
    )
  );

let tokenizer: Promise<Tokenizer> | null = null;
let whole: Promise<{ store: MemoryRunStore; result: TrainResult }> | null = null;

/** The demo run in a `MemoryRunStore`, once per test process. */
function memoryRun() {
  tokenizer ??= loadDefaultTokenizer();
  whole ??= (async () => {
    const store = new MemoryRunStore();
    const result = await train(CONFIG, {
      store,
      tokenizer: await tokenizer!,
      gpu: await testGpu(),
    });
    return { store, result };
  })();
  return whole;
}

Deno.test({
  name:
    "train() into a DirectoryRunStore gives MemoryRunStore's eval.json, metrics, samples and export; renderRunReport() is report.html",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const expected = await memoryRun();
    assert.equal(
      await renderRunReport(expected.store, { config: CONFIG }),
      expected.store.report,
      "MemoryRunStore: the final report",
    );
    const { dir, store } = await openFake("run-1");
    await store.writeConfig(CONFIG);
    const result = await train(CONFIG, {
      store,
      tokenizer: await tokenizer!,
      gpu: await testGpu(),
    });
    store.close();
    assert.equal(result.status, "completed");
    assert.equal(result.runDir, "run-1");
    assert.deepEqual(result.eval, expected.result.eval);
    const files = await handleTree(dir);
    const read = (name: string) => new TextDecoder().decode(files.get(name));
    assert.deepEqual(JSON.parse(read(RUN_FILES.evals)), expected.store.evals);
    assert.deepEqual(
      stepMetrics(await store.readMetrics()),
      stepMetrics(await expected.store.readMetrics()),
    );
    assert.ok(stepMetrics(await store.readMetrics()).length >= 3);
    assert.deepEqual(await store.readSamples(), expected.store.samples);
    assert.deepEqual((await store.loadVocabMap())?.toJSON(), expected.store.vocabMap?.toJSON());
    assert.deepEqual(
      [...files.keys()].filter((p) => p.startsWith("checkpoints/")).map((p) =>
        p.replace(/\/[^/]+$/, "")
      ).filter((p, i, a) => a.indexOf(p) === i).sort(),
      [...expected.store.checkpoints.keys()].map((k) => k.replace("memory/", "")).sort(),
    );
    const exported = expected.store.exports.get("grpo")!;
    assert.ok(exported.size >= 3, [...exported.keys()].join());
    for (const [name, bytes] of exported) {
      assert.deepEqual(files.get(`export/grpo/${name}`), bytes, name);
    }
    assert.equal(await renderRunReport(store, { config: CONFIG }), read(RUN_FILES.report));
    assert.deepEqual(await store.readConfig(), CONFIG);
  },
});

Deno.test({
  name:
    "train() stopped by its signal resumes from a DirectoryRunStore, and from its copy on disk with the Deno train(), to the same result",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const expected = await memoryRun();
    const { dir, store } = await openFake("run-2");
    await store.writeConfig(CONFIG);
    const gpu = await testGpu();
    const first = await trainUntil(CONFIG, { store, tokenizer: await tokenizer!, gpu }, "sft", 1);
    store.close();
    assert.equal(first.status, "interrupted");
    assert.deepEqual(first.state.current, {
      phase: "sft",
      step: 1,
      checkpoint: "run-2/checkpoints/sft/step-1",
    });
    const interrupted = await handleTree(dir);

    const again = await DirectoryRunStore.open(dir);
    const second = await train(CONFIG, { store: again, tokenizer: await tokenizer!, gpu });
    again.close();
    assert.equal(second.status, "completed");
    assert.deepEqual(second.eval, expected.result.eval);
    assert.deepEqual(
      stepMetrics(await again.readMetrics()),
      stepMetrics(await expected.store.readMetrics()),
    );

    // The interrupted run copied to disk as ./run-2 (its references name it) resumes in Deno.
    await withTempDir(async (tmp) => {
      await copyTreeToDisk(interrupted, `${tmp}/run-2`);
      const cwd = Deno.cwd();
      Deno.chdir(tmp);
      try {
        const config = await loadRunConfig("run-2");
        const resumed = await trainInFolder(config, {
          runDir: "run-2",
          tokenizer: await tokenizer!,
          gpu,
        });
        assert.equal(resumed.status, "completed");
        assert.deepEqual(resumed.eval, expected.result.eval);
        const disk = await FsRunStore.open("run-2");
        try {
          assert.deepEqual(
            stepMetrics(await disk.readMetrics()),
            stepMetrics(await expected.store.readMetrics()),
          );
        } finally {
          disk.close();
        }
      } finally {
        Deno.chdir(cwd);
      }
    });
  },
});
