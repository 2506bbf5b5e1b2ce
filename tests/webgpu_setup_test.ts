/**
 * setupWebGpu(): the fresh-machine decisions with fake probes and a fake installer (no real
 * apt-get), and the `cli/webgpu_setup.ts` entry on this machine, where an adapter exists.
 */

import assert from "node:assert/strict";
import {
  type InstallAccess,
  MESA_INSTALL_COMMAND,
  MESA_PACKAGES,
  setupWebGpu,
  type WebGpuSetupHooks,
} from "../kernels/webgpu_setup_fs.ts";

interface Machine {
  readonly hooks: WebGpuSetupHooks;
  readonly calls: string[];
  readonly ran: string[][];
  readonly lines: string[];
}

/** A fake machine: adapter before/after install, install rights, exit codes of the commands. */
function machine(options: {
  readonly before: string | null;
  readonly after?: string | null;
  readonly access?: InstallAccess;
  readonly exitCodes?: readonly number[];
}): Machine {
  const calls: string[] = [], ran: string[][] = [], lines: string[] = [];
  const codes = [...(options.exitCodes ?? [])];
  const hooks: WebGpuSetupHooks = {
    probe: () => (calls.push("probe"), Promise.resolve(options.before)),
    probeFresh: () => (calls.push("probeFresh"), Promise.resolve(options.after ?? null)),
    installAccess: () => (calls.push("access"), Promise.resolve(options.access ?? "root")),
    run: (argv) => (ran.push([...argv]), Promise.resolve(codes.shift() ?? 0)),
    log: (line) => lines.push(line),
  };
  return { hooks, calls, ran, lines };
}

const APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"];

Deno.test("setupWebGpu(): an adapter is there → nothing printed, nothing installed", async () => {
  const m = machine({ before: "NVIDIA H100" });
  const result = await setupWebGpu(m.hooks);
  assert.deepEqual(result, { outcome: "found", adapter: "NVIDIA H100", command: null });
  assert.deepEqual(m.calls, ["probe"]);
  assert.deepEqual(m.ran, []);
  assert.deepEqual(m.lines, []);
});

Deno.test("setupWebGpu(): no adapter, root or passwordless sudo → installs Mesa, says so in one line, probes a new process", async () => {
  assert.deepEqual(MESA_PACKAGES, ["libgl1-mesa-dri", "libegl1", "libegl-mesa0", "libglx-mesa0"]);
  for (const access of ["root", "sudo"] as const) {
    const m = machine({ before: null, after: "llvmpipe (LLVM 15.0.6, 256 bits)", access });
    const result = await setupWebGpu(m.hooks);
    assert.deepEqual(result, {
      outcome: "installed",
      adapter: "llvmpipe (LLVM 15.0.6, 256 bits)",
      command: null,
    });
    assert.deepEqual(m.calls, ["probe", "access", "probeFresh"]);
    const sudo = access === "sudo" ? ["sudo", "-n"] : [];
    assert.deepEqual(m.ran, [
      [...sudo, ...APT, "update", "-qq"],
      [...sudo, ...APT, "install", "-y", "-qq", ...MESA_PACKAGES],
    ]);
    assert.equal(m.lines.length, 1, m.lines.join("\n"));
    assert.match(m.lines[0], /No WebGPU adapter found: installing Mesa's software adapter/);
  }
});

Deno.test("setupWebGpu(): no adapter and no root → prints the one command, installs nothing", async () => {
  const m = machine({ before: null, access: "denied" });
  const result = await setupWebGpu(m.hooks);
  assert.deepEqual(result, { outcome: "manual", adapter: null, command: MESA_INSTALL_COMMAND });
  assert.equal(
    MESA_INSTALL_COMMAND,
    "sudo apt-get update && sudo apt-get install -y " + MESA_PACKAGES.join(" "),
  );
  assert.deepEqual(m.ran, []);
  assert.deepEqual(m.calls, ["probe", "access"]);
  assert.equal(m.lines.at(-1), `  ${MESA_INSTALL_COMMAND}`);
});

Deno.test("setupWebGpu(): no apt-get, a failed install, or still no adapter → failed, with the reason", async () => {
  const noApt = machine({ before: null, access: "no-apt" });
  assert.equal((await setupWebGpu(noApt.hooks)).outcome, "failed");
  assert.deepEqual(noApt.ran, []);
  assert.match(noApt.lines.join("\n"), /needs one: a GPU driver/);

  const updateFails = machine({ before: null, exitCodes: [100] });
  const r1 = await setupWebGpu(updateFails.hooks);
  assert.deepEqual(r1, { outcome: "failed", adapter: null, command: MESA_INSTALL_COMMAND });
  assert.equal(updateFails.ran.length, 1, "stops at the failing step");
  assert.ok(!updateFails.calls.includes("probeFresh"));
  assert.match(updateFails.lines.join("\n"), /`apt-get update` failed \(exit 100\)/);

  const installFails = machine({ before: null, exitCodes: [0, 1] });
  assert.equal((await setupWebGpu(installFails.hooks)).outcome, "failed");
  assert.match(installFails.lines.join("\n"), /`apt-get install` failed \(exit 1\)/);

  const stillNone = machine({ before: null, after: null });
  assert.deepEqual(await setupWebGpu(stillNone.hooks), {
    outcome: "failed",
    adapter: null,
    command: null,
  });
  assert.match(stillNone.lines.at(-1)!, /still no WebGPU adapter/);
});

Deno.test("cli/webgpu_setup.ts: silent and exit 0 where an adapter exists; --verbose names it", async () => {
  const script = new URL("../cli/webgpu_setup.ts", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, ...args] }).output();
  const quiet = await run([]);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(quiet.code, 0, decode(quiet.stderr));
  assert.equal(decode(quiet.stdout) + decode(quiet.stderr), "");
  const verbose = await run(["--verbose"]);
  assert.equal(verbose.code, 0);
  assert.match(decode(verbose.stderr), /^WebGPU adapter: .+\n$/);
});
