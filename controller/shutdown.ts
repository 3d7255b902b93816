/**
 * SIGTERM/SIGINT for a running agent: stop following the API (programs and maps stay attached
 * and pinned), within a deadline. stop() ends the watch and the heartbeat, writes the newest
 * snapshot, waits for the snapshot write in flight and removes temporary snapshot files. If it
 * has not finished by the deadline (a disk that hangs), the temporary files are removed anyway
 * and the process exits with 1: systemd's stop timeout is never what ends the agent.
 */
import type { Logger } from './config/module.js';
import type { Agent } from './agent.js';

/** How long a stop may take before the agent gives up on it (docs/agent.md, "Stopping"). */
export const STOP_DEADLINE_MS = 5_000;

/** Resolves at the first SIGTERM or SIGINT. */
export function signalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** Stops the agent within deadlineMs; the exit code to use (0: stopped cleanly). */
export async function stopWithin(agent: Agent, log: Pick<Logger, 'info' | 'error'>, deadlineMs = STOP_DEADLINE_MS): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
  const outcome = await Promise.race([agent.stop().then(() => 'stopped' as const), late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    agent.removeSnapshotTemporaries();
    log.error({ deadlineMs }, `the agent did not stop within ${deadlineMs} ms; exiting anyway (enforcement stays; the last snapshot on disk is the previous one)`);
    return 1;
  }
  log.info({ ms: Date.now() - started }, 'stopped; enforcement stays in place');
  return 0;
}
