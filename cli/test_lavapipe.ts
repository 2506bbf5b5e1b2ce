/**
 * `deno task test:lavapipe [deno test flags]`: runs the kernel and model tests a second time on
 * Mesa's Vulkan software adapter (lavapipe: `shader-f16`, 32 storage buffers per stage), besides
 * the main run's adapter (GL llvmpipe in `.ci/run`: no `shader-f16`, 16). The tests must hold on
 * any adapter; this is the second one CI has. Lavapipe is forced even where a GPU's Vulkan
 * driver exists (`VK_DRIVER_FILES` names its manifest alone). `cli/test_setup.ts` installs it.
 * Flags go to `deno test` (`--filter NAME`; `--no-check` replaces the default `--no-check=remote`).
 *
 * @module
 */

/** The Debian package of lavapipe. */
export const LAVAPIPE_PACKAGE: string = "mesa-vulkan-drivers";

const ROOT = new URL("..", import.meta.url);

/**
 * The Vulkan loader's manifest of lavapipe, where the distribution puts it.
 *
 * @returns Its path, or null when lavapipe is not installed.
 */
export async function lavapipeManifest(): Promise<string | null> {
  const arch = Deno.build.arch; // x86_64 / aarch64, as in Mesa's file names
  for (
    const dir of ["/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
  ) {
    for (const name of [`lvp_icd.${arch}.json`, "lvp_icd.json"]) {
      const path = `${dir}/${name}`;
      if ((await Deno.stat(path).catch(() => null))?.isFile) return path;
    }
  }
  return null;
}

/** Model tests that run the fixture model (or its weights) on the GPU. */
const MODEL_TESTS = [
  "gemma3_forward_test.ts",
  "weights_test.ts",
  "peft_test.ts",
  "generate_test.ts",
  "rollout_logprobs_test.ts",
  "train_full_test.ts",
  "train_entropy_test.ts",
  "train_lora_test.ts",
  "layer_fusion_test.ts",
];

/** Runtime tests not named after a kernels/ module. */
const RUNTIME_TESTS = ["runtime_test.ts", "pipeline_errors_test.ts"];

/**
 * The test files of this run, sorted: every `tests/<m>_test.ts` and `tests/<m>_*_test.ts` of a
 * public `kernels/<m>.ts` (so a new kernel family's tests join by their name), the runtime tests
 * and {@linkcode MODEL_TESTS}.
 *
 * @returns Paths relative to the repository root.
 */
export function lavapipeTests(): string[] {
  const names = (dir: string) => [...Deno.readDirSync(new URL(dir, ROOT))].map((e) => e.name);
  const modules = names("kernels")
    .filter((n) => /^[a-z][a-z0-9_]*\.ts$/.test(n) && !/_(ref|fs)\.ts$/.test(n))
    .map((n) => n.slice(0, -3))
    .filter((m) => m !== "errors"); // tests/errors_test.ts checks the entries' exports
  const kernelTests = names("tests").filter((n) =>
    n.endsWith("_test.ts") && modules.some((m) => n === `${m}_test.ts` || n.startsWith(`${m}_`))
  );
  const all = new Set([...kernelTests, ...RUNTIME_TESTS, ...MODEL_TESTS]);
  return [...all].sort().map((n) => `tests/${n}`);
}

if (import.meta.main) {
  const manifest = await lavapipeManifest();
  if (manifest === null) {
    console.error(
      `lavapipe is not installed (no lvp_icd manifest under /usr/share/vulkan/icd.d): ` +
        `sudo apt-get install -y ${LAVAPIPE_PACKAGE}`,
    );
    Deno.exit(1);
  }
  const env = {
    DENO_WEBGPU_BACKEND: "vulkan",
    VK_DRIVER_FILES: manifest, // Vulkan loader ≥ 1.3.207
    VK_ICD_FILENAMES: manifest, // older loaders
  };
  const deno = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args, env, cwd: ROOT }).spawn().status;
  if (!(await deno(["run", "-A", "cli/adapter_info.ts"])).success) Deno.exit(1);
  const files = lavapipeTests();
  console.log(
    `lavapipe run (${manifest}): ${files.length} test files: ` +
      files.map((f) => f.slice("tests/".length, -"_test.ts".length)).join(" "),
  );
  const ownCheck = Deno.args.some((a) => /^--(no-)?check\b/.test(a));
  const check = ownCheck ? [] : ["--no-check=remote"];
  const status = await deno(["test", "-A", ...check, ...Deno.args, ...files]);
  Deno.exit(status.code);
}
