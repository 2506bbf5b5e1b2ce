/**
 * An in-memory origin-private file system for tests: {@linkcode createFakeDirectory} returns a
 * root `FileSystemDirectoryHandle` look-alike that behaves as Chromium's OPFS was observed to
 * (`_run_store_contract.ts`'s `directorySemanticsChecks` pass on both):
 *
 * - handles name a path, not an object: a handle to a removed entry rejects with
 *   `NotFoundError`, and works again once something of that kind is created there;
 * - `getFileHandle`/`getDirectoryHandle` reject with `NotFoundError` (missing, no `create`) or
 *   `TypeMismatchError` (the other kind is there); names `""`, `.`, `..` or holding `/` or `\`
 *   throw `TypeError`;
 * - `createWritable()` writes into a swap file `<name>.crswap` that the folder lists while the
 *   writable is open; the file's contents change only on `close()` (`abort()` discards);
 *   `keepExistingData` starts from the current contents; writes after `close()` reject with
 *   `TypeError`;
 * - `removeEntry` rejects with `NotFoundError` (missing), `InvalidModificationError` (a folder
 *   that is not empty, without `recursive`) or `NoModificationAllowedError` (the entry, or
 *   something in it, has an open writable);
 * - `getFile()` is a snapshot: reading it after the file changed rejects with `NotReadableError`.
 *
 * No Deno API: the same module runs in a browser.
 *
 * @module
 */

interface FileNode {
  readonly kind: "file";
  bytes: Uint8Array<ArrayBuffer>;
  /** Bumped on every commit (stale snapshots). */
  version: number;
  /** Open writables. */
  writers: number;
}

interface DirNode {
  readonly kind: "directory";
  readonly children: Map<string, Node>;
}

type Node = FileNode | DirNode;

const domError = (name: string, message: string) => new DOMException(message, name);
const notFound = () =>
  domError(
    "NotFoundError",
    "A requested file or directory could not be found at the time an operation was processed.",
  );
const typeMismatch = () =>
  domError(
    "TypeMismatchError",
    "The path supplied exists, but was not an entry of requested type.",
  );

function checkName(name: string): void {
  if (name === "" || name === "." || name === ".." || /[/\\]/.test(name)) {
    throw new TypeError("Name is not allowed.");
  }
}

function locked(node: Node): boolean {
  if (node.kind === "file") return node.writers > 0;
  for (const child of node.children.values()) if (locked(child)) return true;
  return false;
}

/** The node at `path` under `root`, or null. */
function nodeAt(root: DirNode, path: readonly string[]): Node | null {
  let node: Node = root;
  for (const name of path) {
    if (node.kind !== "directory") return null;
    const next: Node | undefined = node.children.get(name);
    if (next === undefined) return null;
    node = next;
  }
  return node;
}

function dirAt(root: DirNode, path: readonly string[]): DirNode {
  const node = nodeAt(root, path);
  if (node === null) throw notFound();
  if (node.kind !== "directory") throw typeMismatch();
  return node;
}

function fileAt(root: DirNode, path: readonly string[]): FileNode {
  const node = nodeAt(root, path);
  if (node === null) throw notFound();
  if (node.kind !== "file") throw typeMismatch();
  return node;
}

async function toBytes(data: unknown): Promise<Uint8Array> {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new TypeError("write() takes a string, BufferSource, Blob or WriteParams");
}

/** A `getFile()` snapshot that refuses reads once the file changed (like Chromium's). */
function snapshot(root: DirNode, path: readonly string[], node: FileNode): File {
  const version = node.version;
  const empty = node.bytes.length === 0;
  const check = () => {
    if (empty) return; // subtle: Chromium reads an empty snapshot without looking at the file
    if (nodeAt(root, path) !== node || node.version !== version) {
      throw domError(
        "NotReadableError",
        "The requested file could not be read, typically due to permission problems that " +
          "have occurred after a reference to a file was acquired.",
      );
    }
  };
  class SnapshotBlob extends Blob {
    override slice(start?: number, end?: number, type?: string): Blob {
      return new SnapshotBlob([super.slice(start, end, type)]);
    }
    override arrayBuffer(): Promise<ArrayBuffer> {
      return Promise.resolve().then(check).then(() => super.arrayBuffer());
    }
    override text(): Promise<string> {
      return Promise.resolve().then(check).then(() => super.text());
    }
    override bytes(): Promise<Uint8Array<ArrayBuffer>> {
      return Promise.resolve().then(check).then(() => super.bytes());
    }
    override stream(): ReadableStream<Uint8Array<ArrayBuffer>> {
      check();
      return super.stream();
    }
  }
  const blob = new SnapshotBlob([node.bytes.slice()]);
  return Object.assign(blob, { name: path.at(-1) ?? "", lastModified: version }) as File;
}

/** A writable of a fake file: contents go to a swap file until `close()`. */
export class FakeWritableFileStream {
  readonly #root: DirNode;
  readonly #path: readonly string[];
  readonly #swapName: string;
  readonly #swap: FileNode;
  #position = 0;
  #done = false;

  /** @internal Use `FakeFileHandle.createWritable()`. */
  constructor(root: DirNode, path: readonly string[], keep: boolean) {
    this.#root = root;
    this.#path = path;
    const file = fileAt(root, path);
    const parent = dirAt(root, path.slice(0, -1));
    const name = path.at(-1)!;
    let swapName = `${name}.crswap`;
    for (let i = 1; parent.children.has(swapName); i++) swapName = `${name}.${i}.crswap`;
    this.#swapName = swapName;
    this.#swap = {
      kind: "file",
      bytes: keep ? file.bytes.slice() : new Uint8Array(0),
      version: 0,
      writers: 0,
    };
    parent.children.set(swapName, this.#swap);
    file.writers++;
  }

  #checkOpen(): void {
    if (this.#done) throw new TypeError("Cannot write to a CLOSED writable stream");
  }

  /** @param data Text, bytes, a Blob, or `{ type: "write" | "seek" | "truncate", … }`. */
  async write(data: unknown): Promise<void> {
    this.#checkOpen();
    const params = typeof data === "object" && data !== null && "type" in data
      ? data as { type: string; position?: number; size?: number; data?: unknown }
      : null;
    if (params?.type === "seek") return await this.seek(params.position ?? 0);
    if (params?.type === "truncate") return await this.truncate(params.size ?? 0);
    if (params !== null && params.position !== undefined) this.#position = params.position;
    const bytes = await toBytes(params === null ? data : params.data);
    this.#checkOpen();
    const end = this.#position + bytes.length;
    if (end > this.#swap.bytes.length) {
      const grown = new Uint8Array(end);
      grown.set(this.#swap.bytes);
      this.#swap.bytes = grown;
    }
    this.#swap.bytes.set(bytes, this.#position);
    this.#position = end;
  }

  /** @param position Moves the cursor (past the end: a later write pads with zeros). */
  seek(position: number): Promise<void> {
    this.#checkOpen();
    this.#position = position;
    return Promise.resolve();
  }

  /** @param size New length of the written contents. */
  truncate(size: number): Promise<void> {
    this.#checkOpen();
    const out = new Uint8Array(size);
    out.set(this.#swap.bytes.subarray(0, size));
    this.#swap.bytes = out;
    this.#position = Math.min(this.#position, size);
    return Promise.resolve();
  }

  #finish(): void {
    this.#done = true;
    const parent = nodeAt(this.#root, this.#path.slice(0, -1));
    if (parent?.kind === "directory" && parent.children.get(this.#swapName) === this.#swap) {
      parent.children.delete(this.#swapName);
    }
    const file = nodeAt(this.#root, this.#path);
    if (file?.kind === "file" && file.writers > 0) file.writers--;
  }

  /** Replaces the file's contents with what was written. */
  close(): Promise<void> {
    if (this.#done) return Promise.reject(new TypeError("Cannot close a CLOSED writable stream"));
    const file = fileAt(this.#root, this.#path);
    file.bytes = this.#swap.bytes.slice();
    file.version++;
    this.#finish();
    return Promise.resolve();
  }

  /** Discards what was written. */
  abort(_reason?: unknown): Promise<void> {
    if (!this.#done) this.#finish();
    return Promise.resolve();
  }
}

/** A fake `FileSystemFileHandle`. */
export class FakeFileHandle {
  /** `"file"`. */
  readonly kind = "file" as const;
  /** Its name. */
  readonly name: string;
  readonly #root: DirNode;
  readonly #path: readonly string[];

  /** @internal Use `FakeDirectoryHandle.getFileHandle()`. */
  constructor(root: DirNode, path: readonly string[]) {
    this.#root = root;
    this.#path = path;
    this.name = path.at(-1) ?? "";
  }

  /** @returns A snapshot of the committed contents. */
  getFile(): Promise<File> {
    return Promise.resolve().then(() =>
      snapshot(this.#root, this.#path, fileAt(this.#root, this.#path))
    );
  }

  /**
   * @param options `keepExistingData` (default false).
   * @returns The writable.
   */
  createWritable(options: { keepExistingData?: boolean } = {}): Promise<FakeWritableFileStream> {
    return Promise.resolve().then(() =>
      new FakeWritableFileStream(this.#root, this.#path, options.keepExistingData ?? false)
    );
  }
}

/** A fake `FileSystemDirectoryHandle`. */
export class FakeDirectoryHandle {
  /** `"directory"`. */
  readonly kind = "directory" as const;
  /** Its name (`""` for the root, like OPFS's). */
  readonly name: string;
  readonly #root: DirNode;
  readonly #path: readonly string[];

  /** @internal Use {@linkcode createFakeDirectory}. */
  constructor(root: DirNode, path: readonly string[], name: string) {
    this.#root = root;
    this.#path = path;
    this.name = name;
  }

  async #child(name: string, kind: Node["kind"], create: boolean): Promise<readonly string[]> {
    await Promise.resolve();
    checkName(name);
    const dir = dirAt(this.#root, this.#path);
    const child = dir.children.get(name);
    if (child === undefined) {
      if (!create) throw notFound();
      dir.children.set(
        name,
        kind === "file"
          ? { kind, bytes: new Uint8Array(0), version: 0, writers: 0 }
          : { kind, children: new Map() },
      );
    } else if (child.kind !== kind) {
      throw typeMismatch();
    }
    return [...this.#path, name];
  }

  /**
   * @param name A child folder.
   * @param options `create`.
   * @returns Its handle.
   */
  async getDirectoryHandle(
    name: string,
    options: { create?: boolean } = {},
  ): Promise<FakeDirectoryHandle> {
    const path = await this.#child(name, "directory", options.create ?? false);
    return new FakeDirectoryHandle(this.#root, path, name);
  }

  /**
   * @param name A file.
   * @param options `create`.
   * @returns Its handle.
   */
  async getFileHandle(name: string, options: { create?: boolean } = {}): Promise<FakeFileHandle> {
    return new FakeFileHandle(this.#root, await this.#child(name, "file", options.create ?? false));
  }

  /**
   * @param name A child.
   * @param options `recursive`.
   */
  async removeEntry(name: string, options: { recursive?: boolean } = {}): Promise<void> {
    await Promise.resolve();
    checkName(name);
    const dir = dirAt(this.#root, this.#path);
    const child = dir.children.get(name);
    if (child === undefined) throw notFound();
    if (child.kind === "directory" && child.children.size > 0 && !options.recursive) {
      throw domError("InvalidModificationError", "The object can not be modified in this way.");
    }
    if (locked(child)) {
      throw domError(
        "NoModificationAllowedError",
        "An attempt was made to modify an object where modifications are not allowed.",
      );
    }
    dir.children.delete(name);
  }

  /** @returns `[name, handle]` of each child. */
  async *entries(): AsyncGenerator<[string, FakeDirectoryHandle | FakeFileHandle]> {
    const dir = dirAt(this.#root, this.#path);
    for (const [name, node] of [...dir.children]) {
      if (nodeAt(this.#root, [...this.#path, name]) !== node) continue; // removed meanwhile
      yield [
        name,
        node.kind === "file"
          ? new FakeFileHandle(this.#root, [...this.#path, name])
          : new FakeDirectoryHandle(this.#root, [...this.#path, name], name),
      ];
    }
  }

  /** @returns The children's names. */
  async *keys(): AsyncGenerator<string> {
    for await (const [name] of this.entries()) yield name;
  }

  /** @returns The children's handles. */
  async *values(): AsyncGenerator<FakeDirectoryHandle | FakeFileHandle> {
    for await (const [, handle] of this.entries()) yield handle;
  }

  /** @returns {@linkcode FakeDirectoryHandle.entries}. */
  [Symbol.asyncIterator](): AsyncGenerator<[string, FakeDirectoryHandle | FakeFileHandle]> {
    return this.entries();
  }
}

/**
 * A new, empty fake origin-private file system.
 *
 * @param name The root's name (OPFS's is `""`).
 * @returns Its root folder.
 */
export function createFakeDirectory(name = ""): FakeDirectoryHandle {
  return new FakeDirectoryHandle({ kind: "directory", children: new Map() }, [], name);
}
