/**
 * Getting a WebGPU adapter on a fresh machine (Deno): when none exists, Mesa's software adapter
 * (llvmpipe) is installed with apt-get on Debian/Ubuntu where that is allowed (running as root
 * or with passwordless sudo); otherwise the one command to run is printed. `deno task train`,
 * `deno task test` and `.ci/run` run this first through `cli/webgpu_setup.ts`.
 *
 * When an adapter exists this costs one `requestAdapter()` and prints nothing. Nothing is set
 * globally: no environment variables, no files besides the packages.
 *
 * @module
 */

/** The Debian/Ubuntu packages that give WebGPU Mesa's software adapter (llvmpipe). */
export const MESA_PACKAGES: readonly string[] = Object.freeze([
  "libgl1-mesa-dri",
  "libegl1",
  "libegl-mesa0",
  "libglx-mesa0",
]);

/** How this machine may install packages: as root, through passwordless sudo, not at all. */
export type InstallAccess = "root" | "sudo" | "denied" | "no-apt";

/** What {@linkcode setupWebGpu} asks of the machine (tests replace these). */
export interface WebGpuSetupHooks {
  /** The adapter's description in this process, or null when there is none. */
  readonly probe: () => Promise<string | null>;
  /**
   * The adapter's description in a new Deno process, or null: one started after the install
   * sees the new libraries, which this process may not.
   */
  readonly probeFresh: () => Promise<string | null>;
  /** Whether and how apt-get may run. */
  readonly installAccess: () => Promise<InstallAccess>;
  /** Runs a command (argv) without printing unless it fails; resolves to its exit code. */
  readonly run: (argv: readonly string[]) => Promise<number>;
  /** Prints one line for people. */
  readonly log: (line: string) => void;
}

/** What {@linkcode setupWebGpu} did. */
export interface WebGpuSetupResult {
  /**
   * `found`: an adapter was there (nothing printed); `installed`: Mesa was installed and an
   * adapter now exists; `manual`: installing needs root, `command` says what to run;
   * `failed`: no adapter could be had (the log says why).
   */
  readonly outcome: "found" | "installed" | "manual" | "failed";
  /** The adapter's description, when there is one. */
  readonly adapter: string | null;
  /** The command the user should run (`manual`, and `failed` after a failed install). */
  readonly command: string | null;
}

const APT_ENV = ["env", "DEBIAN_FRONTEND=noninteractive"];
const PROBE_CODE = "const a = await navigator.gpu?.requestAdapter(); if (!a) Deno.exit(3); " +
  'console.log(a.info.description || a.info.vendor || "WebGPU adapter");';

/** The command a user without root rights runs. */
export const MESA_INSTALL_COMMAND: string = "sudo apt-get update && sudo apt-get install -y " +
  MESA_PACKAGES.join(" ");

function describe(adapter: GPUAdapter): string {
  return adapter.info.description || adapter.info.vendor || "WebGPU adapter";
}

async function probeHere(): Promise<string | null> {
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    return adapter ? describe(adapter) : null;
  } catch {
    return null;
  }
}

async function probeFresh(): Promise<string | null> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", PROBE_CODE],
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim();
    return out.success && line !== "" ? line : null;
  } catch {
    return null;
  }
}

/**
 * Runs a command quietly; on failure (with `report`) prints the tail of its error output.
 *
 * @param argv The command and its arguments.
 * @param options `report`: print the failing command's last error lines.
 * @returns Its exit code (127 when it cannot be started).
 * @example
 * ```ts
 * import { exitCode } from "./webgpu_setup_fs.ts";
 * console.log(await exitCode(["true"], { report: false })); // 0
 * ```
 */
export async function exitCode(
  argv: readonly string[],
  options: { readonly report: boolean },
): Promise<number> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch {
    return 127; // not found / not runnable
  }
  if (!out.success && options.report) {
    const lines = new TextDecoder().decode(out.stderr).trimEnd().split("\n").slice(-10);
    for (const line of lines) if (line !== "") console.error(`  ${line}`);
  }
  return out.code;
}

/**
 * Whether this machine may install Debian packages: as root, through passwordless sudo, not
 * at all (`denied`), or has no apt-get (`no-apt`).
 *
 * @returns The access.
 * @example
 * ```ts
 * import { installAccess } from "./webgpu_setup_fs.ts";
 * console.log(["root", "sudo", "denied", "no-apt"].includes(await installAccess())); // true
 * ```
 */
export async function installAccess(): Promise<InstallAccess> {
  const quiet = { report: false };
  if (Deno.build.os !== "linux" || await exitCode(["apt-get", "--version"], quiet) !== 0) {
    return "no-apt";
  }
  if (Deno.uid() === 0) return "root";
  return await exitCode(["sudo", "-n", "true"], quiet) === 0 ? "sudo" : "denied";
}

const DEFAULT_HOOKS: WebGpuSetupHooks = {
  probe: probeHere,
  probeFresh,
  installAccess,
  run: (argv) => exitCode(argv, { report: true }),
  log: (line) => console.error(line),
};

/**
 * Makes sure a WebGPU adapter exists: returns at once when one does; otherwise, on
 * Debian/Ubuntu, installs {@linkcode MESA_PACKAGES} with apt-get when allowed (root or
 * passwordless sudo; says so in one line) and probes again in a new process; when not allowed
 * prints {@linkcode MESA_INSTALL_COMMAND}.
 *
 * @param hooks Replacements for the probes, the installer and the printer (tests).
 * @returns What happened; `found` and `installed` mean an adapter exists now.
 * @example
 * ```ts
 * import { setupWebGpu } from "./webgpu_setup_fs.ts";
 * const result = await setupWebGpu({ probe: () => Promise.resolve("llvmpipe") });
 * console.log(result.outcome); // "found"
 * ```
 */
export async function setupWebGpu(
  hooks: Partial<WebGpuSetupHooks> = {},
): Promise<WebGpuSetupResult> {
  const h: WebGpuSetupHooks = { ...DEFAULT_HOOKS, ...hooks };
  const found = await h.probe();
  if (found !== null) return { outcome: "found", adapter: found, command: null };
  const access = await h.installAccess();
  if (access === "no-apt") {
    h.log(
      "No WebGPU adapter found. webtune needs one: a GPU driver with Vulkan, Metal or D3D12, " +
        "or Mesa's software adapter (llvmpipe; Debian/Ubuntu: " + MESA_INSTALL_COMMAND + ").",
    );
    return { outcome: "failed", adapter: null, command: null };
  }
  if (access === "denied") {
    h.log(
      "No WebGPU adapter found, and installing Mesa's software adapter (llvmpipe) needs root. " +
        "Run this, then try again:",
    );
    h.log(`  ${MESA_INSTALL_COMMAND}`);
    return { outcome: "manual", adapter: null, command: MESA_INSTALL_COMMAND };
  }
  const prefix = access === "sudo" ? ["sudo", "-n", ...APT_ENV] : APT_ENV;
  h.log(
    `No WebGPU adapter found: installing Mesa's software adapter (llvmpipe) with apt-get ` +
      `(${MESA_PACKAGES.join(" ")}); webtune then runs on the CPU.`,
  );
  for (
    const step of [
      ["apt-get", "update", "-qq"],
      ["apt-get", "install", "-y", "-qq", ...MESA_PACKAGES],
    ]
  ) {
    const code = await h.run([...prefix, ...step]);
    if (code !== 0) {
      h.log(`\`${step.slice(0, 2).join(" ")}\` failed (exit ${code}); install by hand:`);
      h.log(`  ${MESA_INSTALL_COMMAND}`);
      return { outcome: "failed", adapter: null, command: MESA_INSTALL_COMMAND };
    }
  }
  const adapter = await h.probeFresh();
  if (adapter === null) {
    h.log(
      "Mesa is installed but there is still no WebGPU adapter; check that Vulkan or EGL " +
        "works (e.g. XDG_RUNTIME_DIR set to a private folder).",
    );
    return { outcome: "failed", adapter: null, command: null };
  }
  return { outcome: "installed", adapter, command: null };
}
