/**
 * Lapses of enforcement on an interface: pacer's tc program found not attached by the agent's
 * periodic check (a filter deleted by hand, a clsact qdisc removed by another tool, the interface
 * deleted and re-created). What the agent keeps per interface, the state the host status and
 * /metrics report, and the messages, with the fix, for the log and the status. Pure: the agent
 * (controller/agent.ts, the qdisc check) does the checking and re-attaching.
 *
 * States (docs/agent.md, "Lapses"):
 *   attached  the program was found attached at every check (or the last repair is old);
 *   error     it is not attached and could not be re-attached (e.g. no interface of that name):
 *             nothing on the interface is shaped or policed; the host's mode is `error`;
 *   repaired  it was re-attached, less than REPAIRED_VISIBLE_MS ago.
 */
import { constants } from 'node:os';
import type { Reattached } from '../../shaper-bpf/src/interface.js';
import type { HostAttachment } from '../../api/contract/host.js';

/** How long a repaired lapse stays `repaired` in the status: long enough for a person or a monitor polling every few minutes to see it. */
export const REPAIRED_VISIBLE_MS = 10 * 60_000;

export type AttachmentState = 'attached' | 'repaired' | 'error';

export interface AttachmentStatus {
  /** Lapses seen since the agent started: each detachment counts once, however many checks it lasts. */
  lapses: number;
  /** When the last lapse was seen (ms since the epoch) and what had happened. */
  lastLapseAt?: number;
  lastLapse?: string;
  /** When the program was last re-attached (ms since the epoch). */
  repairedAt?: number;
  /** While the program is not attached and cannot be: why, and what happens next. */
  error?: string;
}

export const initialAttachment = (): AttachmentStatus => ({ lapses: 0 });

export function attachmentState(a: AttachmentStatus, nowMs: number): AttachmentState {
  if (a.error !== undefined) return 'error';
  return a.repairedAt !== undefined && nowMs - a.repairedAt < REPAIRED_VISIBLE_MS ? 'repaired' : 'attached';
}

/** An interface's attachment as the host status carries it (api/contract/host.ts); undefined: no lapse yet. */
export function attachmentReport(iface: string, a: AttachmentStatus | undefined, nowMs: number): HostAttachment {
  if (a === undefined) return { iface, state: 'attached', lapses: 0 };
  return {
    iface,
    state: attachmentState(a, nowMs),
    lapses: a.lapses,
    ...(a.lastLapseAt !== undefined ? { lastLapseAt: new Date(a.lastLapseAt).toISOString() } : {}),
    ...(a.lastLapse !== undefined ? { lastLapse: a.lastLapse.slice(0, 1024) } : {}),
    ...(a.repairedAt !== undefined ? { repairedAt: new Date(a.repairedAt).toISOString() } : {}),
  };
}

/** What a check found: still attached (undefined), re-attached (what had happened), or a failure. */
export type CheckOutcome = { reattached: Reattached } | { failed: Error } | undefined;

export interface AttachmentChange {
  next: AttachmentStatus;
  /** What to log: once per lapse, and once per new failure message. */
  log?: { level: 'warn' | 'error'; msg: string; fields: Record<string, unknown> };
}

const FIX_REPAIRED =
  'pacer re-attached the same program on the same maps (schedules and counters kept); traffic sent between the removal and this check was not shaped. ' +
  'Find what removes it (a script or another tool managing tc on this interface) and stop it: pacer only repairs at each --qdisc-check';

/** The status after a check. Pure; `undefined` outcome on an attached program changes nothing. */
export function afterCheck(iface: string, current: AttachmentStatus, outcome: CheckOutcome, nowMs: number): AttachmentChange | undefined {
  if (outcome === undefined) return undefined;
  if ('reattached' in outcome) {
    const r = outcome.reattached;
    // A failure before this repair already counted the lapse.
    const continuing = current.error !== undefined;
    const next: AttachmentStatus = {
      lapses: current.lapses + (continuing ? 0 : 1),
      lastLapseAt: continuing ? current.lastLapseAt : nowMs,
      lastLapse: r.detail,
      repairedAt: nowMs,
    };
    return {
      next,
      log: {
        level: 'warn',
        msg: 'pacer\'s tc program was not attached: re-attached',
        fields: { iface, cause: r.cause, detail: r.detail, lapses: next.lapses, programId: r.programId, ifindex: r.ifindex, ...(r.mode ? { mode: r.mode } : {}), fix: FIX_REPAIRED },
      },
    };
  }
  const error = failureMessage(iface, outcome.failed);
  if (current.error === error) return undefined;
  const continuing = current.error !== undefined;
  const next: AttachmentStatus = {
    ...current,
    lapses: current.lapses + (continuing ? 0 : 1),
    lastLapseAt: continuing ? current.lastLapseAt : nowMs,
    lastLapse: error,
    error,
  };
  return { next, log: { level: 'error', msg: 'pacer\'s tc program is not attached and could not be re-attached; retrying at every qdisc check', fields: { iface, err: error, lapses: next.lapses } } };
}

/** The status's message for a failed check or re-attach: what is wrong, and what happens next. */
export function failureMessage(iface: string, err: Error): string {
  if ((err as { errno?: number }).errno === constants.errno.ENODEV) {
    return `pacer's tc program is not attached to ${iface}, so nothing leaving it is shaped or policed: there is no interface named ${iface} (deleted?); pacer installs again (clsact, filter, fq where available) at the first --qdisc-check after an interface named ${iface} appears`;
  }
  return `pacer's tc program on ${iface} could not be checked or re-attached, so its enforcement is not confirmed: ${err.message}; pacer retries at every --qdisc-check`;
}
