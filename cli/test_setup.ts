/**
 * `deno run -A cli/test_setup.ts`: run by `deno task test`, `deno task test:lavapipe` (and
 * `.ci/run`) before the tests, which drive a real Chromium (the browser tests), a real
 * nats-server (the rollout broker tests) and, in the second run, Mesa's Vulkan software adapter
 * (lavapipe, `cli/test_lavapipe.ts`). Silent when all are there (`WEBTUNE_CHROMIUM` names another
 * Chromium binary than `/usr/bin/chromium`); otherwise installs Debian's `chromium` /
 * `nats-server` / `mesa-vulkan-drivers` with apt-get where allowed (root or passwordless sudo),
 * or prints the command to run and exits 1.
 *
 * @module
 */

import { exitCode, installAccess } from "../kernels/webgpu_setup_fs.ts";
import { LAVAPIPE_PACKAGE, lavapipeManifest } from "./test_lavapipe.ts";

const chromium = Deno.env.get("WEBTUNE_CHROMIUM") ?? "/usr/bin/chromium";
const isFile = async (path: string) => (await Deno.stat(path).catch(() => null))?.isFile ?? false;
const onPath = async (name: string) => await exitCode(["which", name], { report: false }) === 0;

/** Debian package → whether its program is there. */
const needed: [string, () => Promise<boolean>][] = [
  ["chromium", () => isFile(chromium)],
  ["nats-server", () => onPath("nats-server")],
  [LAVAPIPE_PACKAGE, async () => await lavapipeManifest() !== null],
];
const missing: string[] = [];
for (const [pkg, present] of needed) if (!(await present())) missing.push(pkg);

if (missing.length > 0) {
  const command = `sudo apt-get update && sudo apt-get install -y ${missing.join(" ")}`;
  const access = await installAccess();
  if (access === "no-apt" || access === "denied") {
    console.error(`The tests need ${missing.join(" and ")} (not found). Run:\n  ${command}`);
    Deno.exit(1);
  }
  console.error(
    `Installing ${missing.join(" and ")} with apt-get (browser, broker and lavapipe tests).`,
  );
  const prefix = [
    ...(access === "sudo" ? ["sudo", "-n"] : []),
    "env",
    "DEBIAN_FRONTEND=noninteractive",
  ];
  for (
    const step of [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", ...missing]]
  ) {
    const code = await exitCode([...prefix, ...step], { report: true });
    if (code !== 0) {
      console.error(`\`${step.slice(0, 2).join(" ")}\` failed (exit ${code}); install by hand:`);
      console.error(`  ${command}`);
      Deno.exit(1);
    }
  }
  for (const [pkg, present] of needed) {
    if (!(await present())) {
      console.error(`${pkg} is still missing after apt-get; install by hand:\n  ${command}`);
      Deno.exit(1);
    }
  }
}
