/**
 * The host's one TCP state (one sock_ops program for every interface) from each interface's
 * desired state. Tuning and selectors come from the same classes and labels on every interface,
 * so they are the same in each; pacing is not: an interface polices (no fq) or shapes, and its
 * borrowing loop gives the class its own effective rate there.
 *
 * A class policed on several interfaces is paced at the highest of its rates: a socket leaves by
 * one interface, which sock_ops does not know, and a cap below that interface's budget would
 * hold the class under what it is given; above the budget of the other interface, that
 * interface's policer still holds the class to its rate (drops, as without pacing).
 */
import type { TcpPacing } from '../../shaper-bpf/src/layout.js';
import type { TcpState } from '../../shaper-bpf/src/tcp-datapath.js';

export function mergeTcpStates(states: readonly TcpState[]): TcpState {
  // One interface: its state is the host's, as it is (no copy of every map at every pass).
  if (states.length === 1) return states[0]!;
  const merged: Required<TcpState> = { tuning: new Map(), pacing: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map() };
  for (const s of states) {
    for (const [id, t] of s.tuning) if (!merged.tuning.has(id)) merged.tuning.set(id, t);
    for (const [id, p] of s.pacing ?? new Map<number, TcpPacing>()) {
      const had = merged.pacing.get(id);
      if (had === undefined || p.rate_bps > had.rate_bps) merged.pacing.set(id, p);
    }
    for (const key of ['marks', 'cgroups', 'dst4', 'dst6'] as const) {
      const into = merged[key] as Map<unknown, number>;
      for (const [sel, id] of (s[key] ?? new Map()) as Map<unknown, number>) if (!into.has(sel)) into.set(sel, id);
    }
  }
  return merged;
}
