/**
 * `deno task device-pack [--out DIR] [--xz]`: packs the device check (`cli/device_check.ts`) for
 * a GPU machine that has no network and no Deno: one folder with the check bundled into one file
 * (`device_check.js`, npm packages included), this Deno binary (`deno`, or `deno.xz` with
 * `--xz` where the transfer is size-limited) and `run.sh`, which unpacks Deno if needed and runs
 * the check with the arguments it is given (`sh DIR/run.sh --out result.json`).
 *
 * @module
 */

import { parseFlagTable, runCommand, UsageError, usageText } from "./_cli.ts";

const FLAGS = {
  out: ["string", "DIR", "the folder to write (default device_pack)"],
  xz: ["boolean", "", "compress the Deno binary with xz (about a third of its size)"],
} as const;
const USAGE = usageText("usage: deno task device-pack [--out DIR] [--xz]", FLAGS);

const ROOT = new URL("..", import.meta.url).pathname;

/** The parsed command line of `deno task device-pack`. */
export interface DevicePackArgs {
  /** The folder to write. */
  readonly out: string;
  /** Compress the Deno binary (`deno.xz`). */
  readonly xz: boolean;
}

/** `run.sh` of a pack: unpacks Deno when only `deno.xz` is there, then runs the check. */
export const RUN_SH: string = `#!/bin/sh
# webtune device check, packed by \`deno task device-pack\`: needs no network and no Deno.
# Usage: sh run.sh [--out PATH] [--quick]   (see device_check.js's --help)
set -e
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/deno" ]; then
  xz -dc "$here/deno.xz" > "$here/deno"
  chmod +x "$here/deno"
fi
exec "$here/deno" run -A "$here/device_check.js" "$@"
`;

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {UsageError} On unknown or malformed flags.
 * @example
 * ```ts
 * import { parseDevicePackArgs } from "./device_pack.ts";
 * console.log(parseDevicePackArgs(["--xz"])); // { out: "device_pack", xz: true }
 * ```
 */
export function parseDevicePackArgs(args: readonly string[]): DevicePackArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  if (v.out === "") throw new UsageError("--out must name a folder");
  return Object.freeze({ out: v.out ?? "device_pack", xz: v.xz ?? false });
}

async function run(cmd: string, args: string[], options: Deno.CommandOptions = {}): Promise<void> {
  const out = await new Deno.Command(cmd, { ...options, args, stdout: "piped", stderr: "piped" })
    .output()
    .catch((e: Error) => {
      throw new Error(`${cmd} could not be started: ${e.message}`);
    });
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  }
}

/**
 * Writes the pack: `device_check.js`, `deno` (or `deno.xz`), `run.sh`.
 *
 * @param a Where, and whether to compress Deno.
 * @returns The files written.
 * @example
 * ```ts ignore
 * import { writeDevicePack } from "./device_pack.ts";
 * console.log(await writeDevicePack({ out: "device_pack", xz: false }));
 * ```
 */
export async function writeDevicePack(a: DevicePackArgs): Promise<string[]> {
  await Deno.mkdir(a.out, { recursive: true });
  const bundle = `${a.out}/device_check.js`;
  await run(Deno.execPath(), [
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    "-o",
    bundle,
    `${ROOT}cli/device_check.ts`,
  ], { cwd: ROOT });
  const deno = `${a.out}/deno`;
  await Deno.remove(deno).catch(() => {});
  await Deno.remove(`${deno}.xz`).catch(() => {});
  if (a.xz) {
    const file = await Deno.open(`${deno}.xz`, { write: true, create: true, truncate: true });
    const xz = new Deno.Command("xz", { args: ["-6", "-c", Deno.execPath()], stdout: "piped" })
      .spawn();
    await xz.stdout.pipeTo(file.writable);
    if (!(await xz.status).success) throw new Error("xz failed compressing the Deno binary");
  } else {
    await Deno.copyFile(Deno.execPath(), deno);
    await Deno.chmod(deno, 0o755);
  }
  await Deno.writeTextFile(`${a.out}/run.sh`, RUN_SH, { mode: 0o755 });
  return [bundle, a.xz ? `${deno}.xz` : deno, `${a.out}/run.sh`];
}

async function main(a: DevicePackArgs): Promise<void> {
  const files = await writeDevicePack(a);
  for (const f of files) {
    console.log(`${f}  ${((await Deno.stat(f)).size / 2 ** 20).toFixed(1)} MiB`);
  }
  console.log(`run it there: sh ${a.out}/run.sh --out device_check.json`);
}

const command = { usage: USAGE, parse: parseDevicePackArgs, run: main, plainErrors: [] };
if (import.meta.main) Deno.exit(await runCommand(Deno.args, command));
