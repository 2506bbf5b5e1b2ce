/**
 * `Deno.stat` that answers null for a missing path (private to `rl/`).
 *
 * @module
 */

/**
 * `Deno.stat`, or null when the path (or a folder on the way) does not exist.
 *
 * @param path A path.
 * @returns Its info, or null.
 */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}
