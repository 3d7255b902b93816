/**
 * What a benchmark run must undo (child processes, namespaces, temporary files), undone in reverse
 * order on success, error, Ctrl-C, SIGTERM and SIGHUP. Pins are bench/pins.ts's (synchronous, so
 * they also go on a plain process.exit).
 */
import { removePins } from './pins.js';

const undo: Array<{ what: string; fn: () => void | Promise<void> }> = [];
let running: Promise<void> | undefined;

/** Registers an undo step; call the returned function to run it now (and not again later). */
export function onCleanup(what: string, fn: () => void | Promise<void>): () => Promise<void> {
  const entry = { what, fn };
  undo.push(entry);
  return async () => {
    const i = undo.indexOf(entry);
    if (i < 0) return;
    undo.splice(i, 1);
    await fn();
  };
}

/** Runs every registered step, newest first; a failing step is reported and the rest still run. */
export function runCleanups(): Promise<void> {
  return (running ??= (async () => {
    while (undo.length > 0) {
      const { what, fn } = undo.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup (${what}): ${(err as Error).message}\n`);
      }
    }
    removePins();
    running = undefined;
  })());
}

/** On SIGINT/SIGTERM/SIGHUP: clean up (at most 15 s), then exit with the signal's code. */
export function cleanupOnSignals(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the bench's processes, removing its namespaces, pins and files\n`);
      setTimeout(() => process.exit(code), 15_000).unref();
      void runCleanups().finally(() => process.exit(code));
    });
  }
}
