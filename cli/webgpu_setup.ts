/**
 * `deno run -A cli/webgpu_setup.ts [--verbose]`: run by `deno task train` and `deno task test`
 * (and `.ci/run`) before their command. Silent when a WebGPU adapter exists (`--verbose` names
 * it); otherwise installs Mesa's software adapter where allowed, or prints the command to run
 * and exits 1. Imports only the setup, so it starts fast.
 *
 * @module
 */

import { setupWebGpu } from "../kernels/webgpu_setup_fs.ts";

const result = await setupWebGpu();
if (result.adapter !== null && Deno.args.includes("--verbose")) {
  console.error(`WebGPU adapter: ${result.adapter}`);
}
if (result.outcome === "manual" || result.outcome === "failed") Deno.exit(1);
