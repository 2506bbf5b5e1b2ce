/**
 * webtune's version, as `deno.json` states it (a test keeps the two equal). Things remembered
 * across runs that a new release may invalidate carry it, e.g. the kernel tuning cache.
 *
 * @module
 */

/**
 * The version of this webtune.
 *
 * @example
 * ```ts
 * import { WEBTUNE_VERSION } from "./version.ts";
 * console.log(WEBTUNE_VERSION); // "0.1.0"
 * ```
 */
export const WEBTUNE_VERSION: string = "0.1.0";
