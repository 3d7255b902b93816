/**
 * The demo's verdict: for each phase between budget changes, each leaf class's achieved rate
 * against the rate the kernel enforced (its effective rate, which borrowing may raise above the
 * budget up to the ceil), over the phase's steady seconds (the first SETTLE_S after a start or a
 * change are left out). Tolerances (issue 11): 2% when shaping with fq, 10% when only policing.
 */
import { SETTLE_S } from './plan.js';
import type { ClassSecond, Second } from './readings.js';

export const TOLERANCE = { shaping: 0.02, policing: 0.1 } as const;

export interface ClassVerdict {
  name: string;
  /** Means over the steady seconds, bits/s. */
  effectiveBps: number;
  achievedBps: number;
  /** (achieved − effective) / effective, percent. */
  errorPct: number;
  meanDelayNs: number | null;
  /** The largest per-second p99 in the phase (ns). */
  p99DelayNs: number | null;
  drops: number;
  ok: boolean;
}

export interface Phase {
  /** Seconds since the traffic started: [fromS, toS). */
  fromS: number;
  toS: number;
  steadySeconds: number;
  classes: ClassVerdict[];
}

export interface DemoSummary {
  ok: boolean;
  mode: string;
  modeDetail?: string;
  tolerancePct: number;
  durationS: number;
  changes: Array<{ atS: number; className: string; from: string; to: string }>;
  phases: Phase[];
  /** Why ok is false, in words. */
  problems: string[];
  /** The signal that stopped the demo before its duration (or, without one, at all). */
  stoppedBy?: string;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;

/** The verdict of one phase's seconds (`seconds` already cut to the phase). */
function phase(seconds: readonly Second[], fromS: number, toS: number, tolerance: number): Phase {
  const steady = seconds.filter((s) => s.t > fromS + SETTLE_S && s.t <= toS);
  const leaves = (steady[0]?.classes ?? []).filter((c) => !steady[0]!.classes.some((x) => x.parent === c.name));
  const classes = leaves.map((leaf): ClassVerdict => {
    const measured = steady.flatMap((s) => s.classes.filter((c) => c.name === leaf.name).map((row) => ({ row, interval: s.intervalS })));
    const rows = measured.map((m) => m.row);
    // Time-weighted: the bits over the time, whatever each second's interval was.
    const weighted = (value: (r: ClassSecond) => number) => measured.reduce((a, m) => a + value(m.row) * m.interval, 0) / measured.reduce((a, m) => a + m.interval, 0);
    const effectiveBps = weighted((r) => r.effectiveBps ?? 0);
    const achievedBps = weighted((r) => r.achievedBps);
    const delays = rows.map((r) => r.meanDelayNs).filter((d) => d !== undefined);
    const p99s = rows.map((r) => r.p99DelayNs).filter((d): d is number => d !== undefined && Number.isFinite(d));
    const errorPct = effectiveBps > 0 ? ((achievedBps - effectiveBps) / effectiveBps) * 100 : NaN;
    return {
      name: leaf.name,
      effectiveBps: Math.round(effectiveBps),
      achievedBps: Math.round(achievedBps),
      errorPct: Math.round(errorPct * 100) / 100,
      meanDelayNs: delays.length ? Math.round(mean(delays)) : null,
      p99DelayNs: p99s.length ? Math.max(...p99s) : null,
      drops: rows.reduce((a, r) => a + r.drops, 0),
      ok: Math.abs(errorPct) <= tolerance * 100,
    };
  });
  return { fromS, toS, steadySeconds: steady.length, classes };
}

/**
 * `interrupted`: the demo was stopped (Ctrl-C) rather than run for a duration; a last phase cut
 * too short to judge is then left out instead of reported.
 */
export function summarise(seconds: readonly Second[], changes: DemoSummary['changes'], durationS: number, interrupted = false): DemoSummary {
  const last = seconds[seconds.length - 1];
  const mode = last?.mode ?? 'unknown';
  const tolerance = mode === 'shaping' ? TOLERANCE.shaping : TOLERANCE.policing;
  const bounds = [0, ...changes.map((c) => c.atS), durationS];
  const phases = bounds.slice(1).map((toS, i) => phase(seconds, bounds[i]!, toS, tolerance));
  if (interrupted && phases.length > 1 && phases[phases.length - 1]!.steadySeconds < 2) phases.pop();
  const problems: string[] = [];
  if (mode !== 'shaping' && mode !== 'policing') problems.push(`the host's mode is ${mode}${last?.modeDetail ? ` (${last.modeDetail})` : ''}, not shaping or policing`);
  for (const p of phases) {
    if (p.steadySeconds < 2) problems.push(`${p.fromS}–${p.toS} s: only ${p.steadySeconds} steady seconds to judge (run longer)`);
    for (const c of p.classes) {
      if (!c.ok) problems.push(`${p.fromS}–${p.toS} s: ${c.name} achieved ${(c.achievedBps / 1e6).toFixed(2)} of ${(c.effectiveBps / 1e6).toFixed(2)} Mbit/s (${c.errorPct}%, tolerance ±${tolerance * 100}%)`);
    }
  }
  return { ok: problems.length === 0, mode, modeDetail: last?.modeDetail, tolerancePct: tolerance * 100, durationS, changes, phases, problems };
}
