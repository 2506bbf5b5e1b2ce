/**
 * Crash-safe writes (Deno): a temporary file in the same folder, fsynced, renamed over the
 * destination, then the folder fsynced. The one atomic write of
 * the project: checkpoints, safetensors files, run files and exports all go through it.
 *
 * @module
 */

/**
 * Joins a folder and a name with `/`.
 *
 * @param dir Folder.
 * @param name Entry name.
 * @returns The path.
 */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

/**
 * The folder part of a path.
 *
 * @param path A path.
 * @returns Everything before the last separator (`.` when there is none).
 */
export function dirName(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  const i = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return i < 0 ? "." : i === 0 ? trimmed.slice(0, 1) : trimmed.slice(0, i);
}

/**
 * `Deno.stat`, or null when the path (or a folder on the way) does not exist.
 *
 * @param path A path.
 * @returns Its info, or null; other errors (permissions) are thrown.
 * @example
 * ```ts
 * import { statOrNull } from "./atomic_fs.ts";
 * console.log((await statOrNull(Deno.cwd()))?.isDirectory); // true
 * console.log(await statOrNull(`${Deno.cwd()}/no-such-file`)); // null
 * ```
 */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/**
 * Whether a file or folder exists.
 *
 * @param path A path.
 * @returns False when nothing is there; other errors (permissions) are thrown.
 * @example
 * ```ts
 * import { pathExists } from "./atomic_fs.ts";
 * console.log(await pathExists(Deno.cwd())); // true
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  return (await statOrNull(path)) !== null;
}

/**
 * Fsyncs a folder so a rename inside it is durable. Ignored where folders cannot be opened
 * (Windows): the rename still stands, only its durability across power loss is weaker.
 *
 * @param dir The folder.
 */
export async function syncDir(dir: string): Promise<void> {
  let d: Deno.FsFile;
  try {
    d = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await d.sync();
  } catch {
    // subtle: some file systems refuse fsync on a folder handle; nothing more can be done.
  } finally {
    d.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

function tempName(path: string): string {
  const base = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  return joinPath(dirName(path), `.${base}.${crypto.randomUUID()}.tmp`);
}

/**
 * Writes chunks to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
 * the folder. Readers see the old file or the new one, never a partial one.
 *
 * @param path Destination file.
 * @param chunks Produces the bytes in order (called once).
 * @throws The producer's error, or a write error; the temporary file is removed.
 */
export async function writeFileAtomic(
  path: string,
  chunks: (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const tmp = tempName(path);
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    const f = file;
    await chunks((bytes) => writeAll(f, bytes));
    await file.sync();
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirName(path));
}

/**
 * Writes a text file atomically (see {@linkcode writeFileAtomic}).
 *
 * @param path Destination.
 * @param text Contents (UTF-8).
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await writeFileAtomic(path, (write) => write(bytes));
}
