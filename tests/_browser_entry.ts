/**
 * The browser tests' page bundle: the checks of `_browser_checks.ts`, the kernel variant
 * catalogue, and the run-store contract on the page's real origin-private file system, on
 * `globalThis.webtuneChecks`.
 *
 * @module
 */

import * as checks from "./_browser_checks.ts";
import { compileKernelVariants, kernelVariants } from "../kernels/kernel_variants.ts";
import type { WritableDirectoryHandle } from "../rl/directory_files.ts";
import { DirectoryRunStore } from "../rl/directory_run_store.ts";
import { directorySemanticsChecks, runStoreContract } from "./_run_store_contract.ts";

/**
 * The directory semantics the run files rely on, then the `RunStore` contract on a
 * `DirectoryRunStore`, both in fresh folders of the real OPFS.
 *
 * @returns The names of the checks that passed (a failed one throws).
 */
async function opfsStoreChecks(): Promise<string[]> {
  const storage = (globalThis as unknown as {
    navigator: { storage: { getDirectory(): Promise<WritableDirectoryHandle> } };
  }).navigator.storage;
  const root = await storage.getDirectory();
  const fresh = async (name: string) => {
    await root.removeEntry(name, { recursive: true }).catch(() => {});
    return await root.getDirectoryHandle(name, { create: true });
  };
  const semantics = await directorySemanticsChecks(await fresh("semantics"));
  const dir = await fresh("run");
  const store = await DirectoryRunStore.open(dir);
  const contract = await runStoreContract({ store, reopen: () => DirectoryRunStore.open(dir) });
  store.close();
  return [...semantics, ...contract];
}

(globalThis as { webtuneChecks?: unknown }).webtuneChecks = {
  ...checks,
  kernelVariants,
  compileKernelVariants,
  opfsStoreChecks,
};
