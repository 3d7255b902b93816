/**
 * The interface mode while the agent runs. The root qdisc is checked about every second: someone
 * may replace pacer's fq (`tc qdisc replace dev IF root pfifo`) or put fq back. Without fq the
 * interface polices (short horizons, SETTINGS_POLICING); with fq back, it shapes again. The agent
 * never re-installs fq itself: the qdisc is the operator's to change, and fighting a deliberate
 * change every second would make it impossible to take pacer's fq off for debugging. A restart of
 * the agent (or `pacer agent teardown` and a start) installs fq again. Each check first makes sure
 * pacer's tc program is still attached (attachment-watch.ts): without it the qdisc does not matter.
 */
import type { FqPresence } from '../../shaper-bpf/src/qdisc.js';
import type { InterfaceMode } from '../../shaper-bpf/src/interface.js';

export const SHAPING_DETAIL = 'shaping (fq)';

export interface ModeState {
  mode: InterfaceMode;
  /** "shaping (fq)", "policing (fq unavailable)", or "policing (fq unavailable: what happened)". */
  modeDetail: string;
}

/** The mode after a check of the root qdisc; undefined when it does not change. Pure. */
export function modeAfterCheck(iface: string, current: ModeState, presence: FqPresence): ModeState | undefined {
  if (presence.fq) return current.mode === 'shaping' ? undefined : { mode: 'shaping', modeDetail: SHAPING_DETAIL };
  if (current.mode === 'policing') return undefined; // still no fq: keep the first explanation
  return {
    mode: 'policing',
    modeDetail: `policing (fq unavailable: the root qdisc of ${iface} was replaced by ${presence.found} after pacer installed fq)`,
  };
}
