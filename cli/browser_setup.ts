/**
 * `deno run -A cli/browser_setup.ts`: run by `deno task test` (and `.ci/run`) before the tests,
 * because the browser tests drive a real Chromium. Silent when Chromium is there
 * (`WEBTUNE_CHROMIUM` names another binary than `/usr/bin/chromium`); otherwise installs
 * Debian's `chromium` with apt-get where allowed (root or passwordless sudo), or prints the
 * command to run and exits 1.
 *
 * @module
 */

import { exitCode, installAccess } from "../kernels/webgpu_setup_fs.ts";

const binary = Deno.env.get("WEBTUNE_CHROMIUM") ?? "/usr/bin/chromium";
const present = async () => (await Deno.stat(binary).catch(() => null))?.isFile ?? false;
const command = "sudo apt-get update && sudo apt-get install -y chromium";

if (!(await present())) {
  const access = await installAccess();
  if (access === "no-apt" || access === "denied") {
    console.error(`Chromium not found at ${binary}; the browser tests need it. Run:\n  ${command}`);
    Deno.exit(1);
  }
  console.error("Chromium not found: installing Debian's chromium with apt-get (browser tests).");
  const prefix = [
    ...(access === "sudo" ? ["sudo", "-n"] : []),
    "env",
    "DEBIAN_FRONTEND=noninteractive",
  ];
  for (
    const step of [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]]
  ) {
    const code = await exitCode([...prefix, ...step], { report: true });
    if (code !== 0 || (step[1] === "install" && !(await present()))) {
      console.error(
        `\`${step.slice(0, 2).join(" ")}\` failed (exit ${code}); install by hand:\n  ${command}`,
      );
      Deno.exit(1);
    }
  }
}
