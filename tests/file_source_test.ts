/**
 * Loading Gemma 3 from file sources (`model/file_source*.ts`, `model/gemma3_load.ts`): over HTTP
 * range requests from a small static server, from Blob/File maps, in-memory bytes and a
 * directory handle — each must give exactly the logits `loadGemma3(dir)` gives — plus the
 * errors a page sees (404, a server that ignores `Range`, a failing range read).
 */

import assert from "node:assert/strict";
import { ConfigError } from "../model/config.ts";
import {
  type DirectoryHandleLike,
  directoryHandleSource,
  fileListSource,
  FileSourceError,
  memorySource,
  subSource,
} from "../model/file_source.ts";
import { type FetchLike, urlSource } from "../model/file_source_http.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { loadGemma3From, loadGemma3FromUrl } from "../model/gemma3_load.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import {
  loadChatTemplateFromUrl,
  loadModelCodecFrom,
  loadTokenizerFromUrl,
  ModelDirError,
} from "../model/model_dir.ts";
import { loadModelCodec } from "../model/model_dir_fs.ts";
import { SafetensorsError } from "../model/safetensors.ts";
import { openCheckpoint, writeSafetensors } from "../model/safetensors_fs.ts";
import type { TensorToWrite } from "../model/safetensors_writer.ts";
import {
  defaultTokenizerFileUrl,
  loadDefaultChatTemplate,
  loadDefaultTokenizer,
} from "../model/tokenizer_fs.ts";
import { VocabMap } from "../model/vocab_map.ts";
import { FIXTURE, testGpu } from "./_helpers.ts";

const MODEL_FILES = ["config.json", "model.safetensors"];
const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];

interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | null;
  readonly status: number;
  readonly bytes: number;
}

interface TestServer {
  readonly url: string;
  readonly log: LoggedRequest[];
  close(): Promise<void>;
}

/**
 * A static server over folders mounted at `/<mount>/`: HEAD, GET, and single byte ranges
 * (`bytes=a-b`, `bytes=a-`) answered 206 — or, with `ignoreRange`, always the whole file (200).
 */
function serveFolders(
  mounts: Readonly<Record<string, string>>,
  options: { readonly ignoreRange?: boolean } = {},
): TestServer {
  const log: LoggedRequest[] = [];
  const handler = async (request: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    const range = request.headers.get("range");
    const answer = (
      status: number,
      body: Uint8Array<ArrayBuffer> | null,
      headers: HeadersInit = {},
    ) => {
      log.push({ method: request.method, path, range, status, bytes: body?.length ?? 0 });
      return new Response(request.method === "HEAD" ? null : body, { status, headers });
    };
    const [, mount, ...rest] = path.split("/");
    if (!(mount in mounts) || rest.includes("..")) return answer(404, null);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await Deno.readFile(`${mounts[mount]}/${rest.join("/")}`);
    } catch {
      return answer(404, null);
    }
    const size = bytes.length;
    const m = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
    if (request.method === "HEAD" || m === null || options.ignoreRange) {
      return answer(200, bytes, { "content-length": String(size), "accept-ranges": "bytes" });
    }
    const start = Number(m[1]);
    const end = Math.min(m[2] === "" ? size - 1 : Number(m[2]), size - 1);
    if (start >= size) return answer(416, null, { "content-range": `bytes */${size}` });
    return answer(206, bytes.subarray(start, end + 1), {
      "content-range": `bytes ${start}-${end}/${size}`,
    });
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    log,
    close: () => server.shutdown(),
  };
}

async function withServer(
  mounts: Readonly<Record<string, string>>,
  fn: (server: TestServer) => Promise<void>,
  options: { readonly ignoreRange?: boolean } = {},
): Promise<void> {
  const server = serveFolders(mounts, options);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_source_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The fixture's token sequences (forward.json), the inputs every comparison runs. */
const SEQUENCES: readonly number[][] = JSON.parse(
  await Deno.readTextFile(`${FIXTURE}/forward.json`),
).sequences.map((s: { input_ids: number[] }) => s.input_ids);

let reference: Promise<Gemma3> | null = null;
let referenceWithAdapter: Promise<Gemma3> | null = null;

function referenceModel(adapter: boolean): Promise<Gemma3> {
  if (adapter) {
    return referenceWithAdapter ??= testGpu().then((gpu) =>
      loadGemma3(FIXTURE, { gpu, adapter: FIXTURE })
    );
  }
  return reference ??= testGpu().then((gpu) => loadGemma3(FIXTURE, { gpu }));
}

/** Asserts exactly equal logits on every fixture sequence, then frees `model`'s weights. */
async function assertSameModel(model: Gemma3, adapter: boolean, what: string): Promise<void> {
  const want = await referenceModel(adapter);
  try {
    assert.equal(model.lora === null, !adapter, `${what}: adapter attached`);
    for (const [i, ids] of SEQUENCES.entries()) {
      assert.deepStrictEqual(await model.logits(ids), await want.logits(ids), `${what}: seq ${i}`);
    }
  } finally {
    model.lora?.dispose();
    disposeGemma3Weights(model.weights);
  }
}

async function readFiles(
  names: readonly string[],
  prefix = "",
): Promise<Map<string, Uint8Array<ArrayBuffer>>> {
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const name of names) files.set(prefix + name, await Deno.readFile(`${FIXTURE}/${name}`));
  return files;
}

Deno.test("loadGemma3FromUrl() gives logits and greedy ids identical to loadGemma3(), reading weights by ranges", async () => {
  const gpu = await testGpu();
  await withServer({ m: FIXTURE }, async (server) => {
    const model = await loadGemma3FromUrl(`${server.url}/m`, { gpu });
    const want = await referenceModel(false);
    const prompts = SEQUENCES.map((ids) => ids.slice(0, 4));
    const options = { maxNewTokens: 6, temperature: 0 };
    assert.deepStrictEqual(
      await model.generate(prompts, options),
      await want.generate(prompts, options),
    );
    await assertSameModel(model, false, "over HTTP");
    // Every read of the weights file is a ranged GET answered 206; together the ranges read
    // the file once (header length, header, each tensor) plus the one-byte size probe.
    const size = (await Deno.stat(`${FIXTURE}/model.safetensors`)).size;
    const weights = server.log.filter((r) =>
      r.path === "/m/model.safetensors" && r.method === "GET"
    );
    assert.ok(weights.length >= 3, `ranged reads: ${weights.length}`);
    for (const r of weights) {
      assert.match(r.range ?? "", /^bytes=\d+-\d+$/, JSON.stringify(r));
      assert.equal(r.status, 206, JSON.stringify(r));
    }
    assert.equal(weights.reduce((sum, r) => sum + r.bytes, 0), size + 1);
    // Small JSON files are plain GETs.
    assert.ok(server.log.some((r) => r.path === "/m/config.json" && r.range === null));
  });
});

Deno.test("loadGemma3FromUrl({ adapter }) applies a PEFT adapter like loadGemma3({ adapter })", async () => {
  const gpu = await testGpu();
  await withServer({ m: FIXTURE }, async (server) => {
    // The fixture keeps its adapter in the model folder itself: "" is that folder's URL.
    await assertSameModel(
      await loadGemma3FromUrl(`${server.url}/m/`, { gpu, adapter: "" }),
      true,
      "HTTP adapter",
    );
    await assertSameModel(
      await loadGemma3FromUrl(`${server.url}/m/`, { gpu, adapter: `${server.url}/m/` }),
      true,
      "HTTP adapter (absolute URL)",
    );
    const adapterReads = server.log.filter((r) =>
      r.path === "/m/adapter_model.safetensors" && r.method === "GET"
    );
    assert.ok(adapterReads.length > 0 && adapterReads.every((r) => r.status === 206));
  });
});

Deno.test("loadGemma3FromUrl() loads a sharded checkpoint (index + shards) with identical logits", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const single = await openCheckpoint(FIXTURE);
    const names = [...single.tensors.keys()];
    const half = Math.floor(names.length / 2);
    const parts = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    try {
      for (const [s, part] of parts.entries()) {
        const file = `model-0000${s + 1}-of-00002.safetensors`;
        const tensors: TensorToWrite[] = [];
        for (const name of part) {
          const t = single.info(name);
          tensors.push({ name, dtype: t.dtype, shape: t.shape, data: await single.read(name) });
          weightMap[name] = file;
        }
        await writeSafetensors(`${dir}/${file}`, tensors, { format: "pt" });
      }
    } finally {
      single.close();
    }
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    await Deno.copyFile(`${FIXTURE}/config.json`, `${dir}/config.json`);
    await withServer({ s: dir }, async (server) => {
      await assertSameModel(await loadGemma3FromUrl(`${server.url}/s`, { gpu }), false, "shards");
      for (const shard of new Set(Object.values(weightMap))) {
        const reads = server.log.filter((r) => r.path === `/s/${shard}` && r.method === "GET");
        assert.ok(reads.length > 1 && reads.every((r) => r.status === 206), shard);
      }
    });
    // The same folder from disk goes through the same code.
    await assertSameModel(await loadGemma3(dir, { gpu }), false, "shards on disk");
  });
});

Deno.test("loadGemma3From() over in-memory bytes, Blobs, a picked FileList and a directory handle gives identical logits", async () => {
  const gpu = await testGpu();
  const bytes = await readFiles([...MODEL_FILES, ...ADAPTER_FILES]);
  await assertSameModel(await loadGemma3From(memorySource(bytes), { gpu }), false, "bytes");
  const buffers = new Map([...bytes].map(([n, b]) => [n, b.slice().buffer]));
  await assertSameModel(
    await loadGemma3From(memorySource(buffers), { gpu, adapter: "" }),
    true,
    "ArrayBuffers + adapter",
  );
  const blobs = Object.fromEntries([...bytes].map(([n, b]) => [n, new Blob([b])]));
  await assertSameModel(await loadGemma3From(memorySource(blobs), { gpu }), false, "Blobs");

  // <input type=file webkitdirectory>: paths under the picked folder, adapter in a sub-folder.
  const picked = [
    ...await readFiles(MODEL_FILES, "gemma/"),
    ...await readFiles(ADAPTER_FILES, "gemma/adapter/"),
  ].map(([path, b]) => {
    const file = new File([b], path.slice(path.lastIndexOf("/") + 1));
    Object.defineProperty(file, "webkitRelativePath", { value: path });
    return file;
  });
  const list = fileListSource(picked);
  assert.equal(list.label, "gemma");
  assert.ok(await list.exists("adapter/adapter_config.json"));
  await assertSameModel(
    await loadGemma3From(list, { gpu, adapter: "adapter" }),
    true,
    "FileList + adapter sub-folder",
  );

  // A FileSystemDirectoryHandle (OPFS or a picked folder), faked over a Map.
  const handle = (name: string, prefix: string): DirectoryHandleLike => {
    const missing = (what: string) => new DOMException(`${what} not found`, "NotFoundError");
    const files = new Map([...bytes].map(([n, b]) => [`gemma/adapter/${n}`, b]));
    for (const n of MODEL_FILES) files.set(`gemma/${n}`, bytes.get(n)!);
    return {
      name,
      getDirectoryHandle(sub: string) {
        const dir = `${prefix}${sub}/`;
        return [...files.keys()].some((k) => k.startsWith(dir))
          ? Promise.resolve(handle(sub, dir))
          : Promise.reject(missing(dir));
      },
      getFileHandle(file: string) {
        const data = files.get(`${prefix}${file}`);
        return data === undefined
          ? Promise.reject(missing(file))
          : Promise.resolve({ getFile: () => Promise.resolve(new File([data], file)) });
      },
    };
  };
  const root = directoryHandleSource(handle("root", ""));
  await assert.rejects(
    () => loadGemma3From(root, { gpu }),
    (e) => e instanceof ConfigError && e.message.includes("root/config.json"),
  );
  await assertSameModel(
    await loadGemma3From(subSource(root, "gemma"), { gpu, adapter: "adapter" }),
    true,
    "directory handle",
  );
});

Deno.test("urlSource() errors name the URL and the HTTP status (404, no weights)", async () => {
  const gpu = await testGpu();
  await withTempDir(async (empty) => {
    await Deno.copyFile(`${FIXTURE}/config.json`, `${empty}/config.json`);
    await withServer({ m: FIXTURE, e: empty }, async (server) => {
      const missing = urlSource(`${server.url}/m`);
      await assert.rejects(() => missing.readText("nope.json"), (e) => {
        assert.ok(e instanceof FileSourceError, String(e));
        assert.equal(e.code, "not_found");
        assert.equal(e.status, 404);
        assert.equal(e.file, `${server.url}/m/nope.json`);
        assert.match(e.message, new RegExp(`^${server.url}/m/nope\\.json: GET: HTTP 404`));
        return true;
      });
      assert.equal(await missing.exists("nope.json"), false);
      assert.equal(await missing.exists("config.json"), true);
      await assert.rejects(() => missing.openReader("nope.safetensors"), /nope\.safetensors.*404/);
      await assert.rejects(
        () => loadGemma3FromUrl(`${server.url}/none/`, { gpu }),
        (e) => e instanceof ConfigError && e.message.includes(`${server.url}/none/config.json`),
      );
      await assert.rejects(() => loadGemma3FromUrl(`${server.url}/e`, { gpu }), (e) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.equal(e.code, "missing_file");
        assert.equal(e.file, `${server.url}/e/`);
        assert.match(e.message, /no model\.safetensors or model\.safetensors\.index\.json/);
        return true;
      });
    });
  });
});

Deno.test("urlSource() refuses a server that ignores Range for a file above wholeFileLimit, and reads a smaller one whole", async () => {
  const gpu = await testGpu();
  const size = (await Deno.stat(`${FIXTURE}/model.safetensors`)).size;
  await withServer({ m: FIXTURE }, async (server) => {
    const url = `${server.url}/m/model.safetensors`;
    await assert.rejects(
      () => loadGemma3FromUrl(`${server.url}/m`, { gpu, wholeFileLimit: size - 1 }),
      (e) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.equal(e.code, "io");
        assert.equal(e.file, url);
        assert.match(e.message, /ignored the Range header .*206 Partial Content/);
        assert.ok(e.cause instanceof FileSourceError && e.cause.code === "range_unsupported");
        return true;
      },
    );
    server.log.length = 0;
    const model = await loadGemma3FromUrl(`${server.url}/m`, { gpu, wholeFileLimit: size });
    await assertSameModel(model, false, "whole file without ranges");
    const reads = server.log.filter((r) => r.path === "/m/model.safetensors" && r.method === "GET");
    assert.deepEqual(reads.map((r) => [r.status, r.bytes]), [[200, size]]);
  }, { ignoreRange: true });
});

Deno.test("urlSource() reports a failing range read with its URL, range and status", async () => {
  const gpu = await testGpu();
  await withServer({ m: FIXTURE }, async (server) => {
    let reads = 0;
    // The size probe and the header reads succeed; the first tensor read gets a 503.
    const flaky: FetchLike = (input, init) => {
      const range = new Headers(init?.headers).get("range");
      if (range !== null && String(input).endsWith(".safetensors") && ++reads > 3) {
        return Promise.resolve(new Response("busy", { status: 503 }));
      }
      return fetch(input, init);
    };
    await assert.rejects(
      () => loadGemma3FromUrl(`${server.url}/m`, { gpu, fetch: flaky }),
      (e) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.equal(e.code, "io");
        assert.match(e.message, /model\.safetensors: tensor ".+": GET bytes=\d+-\d+: HTTP 503/);
        assert.ok(e.cause instanceof FileSourceError && e.cause.status === 503);
        return true;
      },
    );
  });
});

Deno.test("fileListSource() and subSource() name files relative to the picked folder", async () => {
  const file = (path: string) => {
    const f = new File([path], path.slice(path.lastIndexOf("/") + 1));
    Object.defineProperty(f, "webkitRelativePath", { value: path });
    return f;
  };
  const picked = fileListSource([file("top/a.json"), file("top/sub/b.json")]);
  assert.equal(picked.label, "top");
  assert.equal(await picked.readText("sub/b.json"), "top/sub/b.json");
  assert.equal(picked.path("sub/b.json"), "top/sub/b.json");
  const sub = subSource(picked, "sub/");
  assert.equal(await sub.readText("b.json"), "top/sub/b.json");
  assert.equal(sub.label, "top/sub");
  await assert.rejects(() => sub.readText("a.json"), (e) => {
    assert.ok(e instanceof FileSourceError && e.code === "not_found", String(e));
    assert.equal(e.file, "top/sub/a.json");
    return true;
  });
  assert.throws(() => subSource(picked, "../elsewhere"), FileSourceError);
  // Plain multi-file pickers give no folder: names are the file names.
  const loose = fileListSource([new File(["x"], "config.json")]);
  assert.equal(loose.label, "selected files");
  assert.equal(await loose.readText("config.json"), "x");
});

Deno.test("loadTokenizerFromUrl(), loadChatTemplateFromUrl() and loadModelCodecFrom() match the Deno loaders", async () => {
  const packageDir = new URL(".", defaultTokenizerFileUrl()).pathname;
  const texts = ["Hello", "  2 + 3 = 5\n<start_of_turn>user", "Grüße, 世界! 🙂"];
  const local = await loadDefaultTokenizer();
  await withServer({ tok: packageDir }, async (server) => {
    const tokenizer = await loadTokenizerFromUrl(`${server.url}/tok/tokenizer.json`);
    for (const text of texts) assert.deepEqual(tokenizer.encode(text), local.encode(text), text);
    const chat = await loadChatTemplateFromUrl(`${server.url}/tok/tokenizer_config.json`, {
      tokenizer,
    });
    const messages = [{ role: "user" as const, content: texts[1] }];
    const want = await loadDefaultChatTemplate(local);
    assert.deepEqual(
      chat.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }),
      want.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }),
    );
    await assert.rejects(
      () => loadTokenizerFromUrl(`${server.url}/tok/missing.json`),
      (e) => e instanceof FileSourceError && e.status === 404 && e.file.endsWith("/missing.json"),
    );

    // A demo export: vocab_map.json, no tokenizer.json; the page supplies the default tokenizer.
    const vocabJson = JSON.stringify(VocabMap.fromTexts(texts.slice(0, 2), local).toJSON());
    const source = memorySource({ "vocab_map.json": vocabJson }, { label: "export" });
    const { codec, vocabMap } = await loadModelCodecFrom(source, {
      defaultTokenizer: () => Promise.resolve(tokenizer),
    });
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/vocab_map.json`, vocabJson);
      const fromDisk = await loadModelCodec(dir);
      assert.equal(vocabMap?.size, fromDisk.vocabMap?.size);
      const ids = codec.encode(texts[1]);
      assert.ok(ids.every((id) => id < vocabMap!.size));
      assert.deepEqual(ids, fromDisk.codec.encode(texts[1]));
      assert.equal(codec.decode(ids), fromDisk.codec.decode(ids));
    });
    assert.throws(() => codec.encode(texts[2]), (e) => {
      assert.ok(e instanceof ModelDirError, String(e));
      assert.match(e.message, /not in export\/vocab_map\.json/);
      return true;
    });
    await assert.rejects(() => loadModelCodecFrom(source), /export has no tokenizer\.json/);
  });
});
