/**
 * What the guest of the enforcement tier reports (result.json) and the arithmetic both sides use
 * on it. The guest measures and records; the host-side spec and the benchmark judge.
 */
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import type { IperfRun } from './guest-lab.js';
import type { Stall } from './stall-monitor.js';

export interface ScenarioResult {
  ok: boolean;
  /** How long the scenario took in the guest. */
  ms: number;
  error?: string;
  [measured: string]: unknown;
}

export interface EnforcementReport {
  kernel: string;
  /** /proc/loadavg in the guest at the start and at the end. */
  loadStart: string;
  loadEnd?: string;
  /** Lab start (namespaces, API, agent installed and heartbeating), guest ms. */
  setupMs?: number;
  setupError?: string;
  scenarios: Record<string, ScenarioResult>;
  /**
   * Every moment the guest measurably lost time (its stall monitor woke late: the emulator did
   * not run while the guest's clock moved), on the lab's clock. Empty when none did.
   */
  stalls: Stall[];
  /** Why there are no stall measurements, when the monitor did not run (then nothing is excluded). */
  stallMonitorError?: string;
  /** The end of the agent's log, for failure messages. */
  agentLog?: string;
}

export type StatsDelta = Pick<ClassStats, 'packets' | 'bytes' | 'delayed' | 'delay_ns' | 'horizon_drops' | 'ce_marks'>;

export function statsDelta(before: ClassStats, after: ClassStats): StatsDelta {
  return {
    packets: after.packets - before.packets,
    bytes: after.bytes - before.bytes,
    delayed: after.delayed - before.delayed,
    delay_ns: after.delay_ns - before.delay_ns,
    horizon_drops: after.horizon_drops - before.horizon_drops,
    ce_marks: after.ce_marks - before.ce_marks,
  };
}

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
export const round2 = (x: number): number => Math.round(x * 100) / 100;

/**
 * A run's 1 s receiver samples as wire rates, Mbit/s: what pacer's budget limits (the frames'
 * bytes, as tc counts them) rather than iperf3's TCP payload, which is MSS / (MSS + 66) of it.
 */
export const wireMbps = (run: IperfRun): number[] => run.receiverMbps.map((x) => round2(x * run.wireFactor));

/**
 * The steady-state samples of a run (wire rates): every 1 s interval except the first, which
 * holds the connection's set-up and slow start, and the last, in which the sender stops (the
 * receiver's intervals start when the connection is up, so its last one runs past the sender's
 * end). A rate is judged on what the shaper does while the sender has something to send, as
 * conformance is measured for Carousel.
 */
export const steady = (run: IperfRun): number[] => wireMbps(run).slice(1, -1);

/** The samples of whole seconds from index `from` on, without the last (the sender stops in it). */
export const whileSending = (run: IperfRun, from: number, to?: number): number[] => wireMbps(run).slice(from, to ?? -1);

/** Relative error of `x` against `budget`, in percent (signed: negative is below budget). */
export const errorPct = (x: number, budget: number): number => round2(((x - budget) / budget) * 100);

/**
 * The receiver sample index of `run` that covers lab time `ms` (the server's intervals start
 * when the connection is up, a few ms after the spawn: alignment is within that).
 */
export const sampleAt = (run: IperfRun, ms: number): number => Math.floor((ms - run.spawnedAtMs) / 1000);

/**
 * The seconds of `samples` that burst above their budget (+ `tolerance`): above it alone AND
 * averaged with each neighbouring second. The receiver's 1 s boundaries alias under emulation
 * (a pair like 19.2 / 20.5 at 20 Mbit/s is one interval's bytes counted in the next), so a
 * second above budget that its neighbour makes up for is not a burst.
 */
export function bursts(samples: readonly number[], budgetOf: (i: number) => number, tolerance: number): Array<{ i: number; x: number; budget: number }> {
  const above = (x: number, i: number): boolean => x > budgetOf(i) * (1 + tolerance);
  return samples
    .map((x, i) => ({ i, x, budget: budgetOf(i) }))
    .filter(({ x, i }) => above(x, i) && [samples[i - 1], samples[i + 1]].every((y) => y === undefined || above((x + y) / 2, i)));
}

/**
 * A second in which the guest lost at least this much time is not judged: it lost at least the
 * rate tolerance (2%) of its time to the host, and its rate says nothing about pacer's. A second
 * is never excluded for what it measured, only for what the stall monitor measured.
 */
export const EXCLUDE_LOST_MS = 20;

/** Time the guest lost within lab interval [fromMs, toMs). */
export function lostWithin(stalls: readonly Stall[], fromMs: number, toMs: number): number {
  let lost = 0;
  for (const s of stalls) lost += Math.max(0, Math.min(toMs, s.atMs + s.lostMs) - Math.max(fromMs, s.atMs));
  return lost;
}

export interface Judged {
  /** The samples judged (wire Mbit/s), in order. */
  samples: number[];
  /** Sample indexes (of the run's 1 s intervals) left out, with the time the guest lost in each. */
  excluded: Array<{ i: number; lostMs: number }>;
}

/**
 * The wire-rate samples of `run` from index `from` up to `to` (exclusive; default: without the
 * last, in which the sender stops), leaving out every second in which the guest lost at least
 * EXCLUDE_LOST_MS (its interval is [spawn + i s, spawn + (i + 1) s) on the lab's clock, as
 * `sampleAt` aligns them).
 */
export function judge(run: IperfRun, stalls: readonly Stall[], from: number, to?: number): Judged {
  const all = wireMbps(run);
  const end = to === undefined ? all.length - 1 : to < 0 ? all.length + to : Math.min(to, all.length);
  const samples: number[] = [];
  const excluded: Judged['excluded'] = [];
  for (let i = Math.max(0, from); i < end; i++) {
    const lostMs = lostWithin(stalls, run.spawnedAtMs + i * 1000, run.spawnedAtMs + (i + 1) * 1000);
    if (lostMs >= EXCLUDE_LOST_MS) excluded.push({ i, lostMs: Math.round(lostMs) });
    else samples.push(all[i]!);
  }
  return { samples, excluded };
}

/** For a test title: which seconds were left out and why. */
export const excludedText = (j: Judged | Judged['excluded']): string => {
  const excluded = Array.isArray(j) ? j : j.excluded;
  return excluded.length === 0
    ? 'no second excluded'
    : `excluded ${excluded.map((e) => `s${e.i} (guest lost ${e.lostMs} ms)`).join(', ')}`;
};
