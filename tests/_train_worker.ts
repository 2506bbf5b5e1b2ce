/**
 * The `deno task train` process of the signal tests (`train_demo_test.ts`): `trainMain` with
 * its real environment (signal handlers, console), except that the phase named on the command
 * line pauses right after logging the given step: it prints `paused <phase> <step>` on stdout
 * and waits until a signal stops the run (SIGTERM, SIGINT) or the process is killed. So the
 * test sends its signal at a known step, with no timing guess.
 *
 * ```
 * deno run -A tests/_train_worker.ts <phase>:<step>|none <deno task train arguments…>
 * ```
 *
 * @module
 */

import { trainMain } from "../cli/train.ts";
import type { MetricsLogger } from "../rl/metrics.ts";
import type { Phase, PhaseContext, PhaseSet } from "../rl/pipeline.ts";
import type { PhaseName } from "../rl/pipeline_state.ts";

/** The line the worker prints when it pauses. */
export function pausedLine(phase: PhaseName, step: number): string {
  return `paused ${phase} ${step}`;
}

/** Wraps a phase so that it pauses after logging `step` until the run's signal aborts. */
function pauseAfter(phase: Phase, name: PhaseName, step: number): Phase {
  return {
    run(ctx: PhaseContext) {
      const logger = {
        async log(p: string, s: number, values: Record<string, number>) {
          await ctx.logger.log(p, s, values);
          if (s !== step) return;
          console.log(pausedLine(name, step));
          const deadline = Date.now() + 120_000;
          while (!ctx.signal.aborted && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        },
        flush: () => ctx.logger.flush(),
        records: () => ctx.logger.records(),
      } as unknown as MetricsLogger;
      return phase.run({ ...ctx, logger });
    },
  };
}

if (import.meta.main) {
  const [pause, ...args] = Deno.args;
  let phases: ((defaults: PhaseSet) => PhaseSet) | undefined;
  if (pause !== "none") {
    const [name, step] = pause.split(":") as [PhaseName, string];
    phases = (defaults) => ({
      ...defaults,
      [name]: pauseAfter(defaults[name]!, name, Number(step)),
    });
  }
  Deno.exit(await trainMain(args, { phases }));
}
