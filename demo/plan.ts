/**
 * What `pacer demo` shows: the example classes it creates through the REST API, the traffic it
 * starts (one iperf3 flow per leaf class, to the receiver address the class selects), and the
 * budget change it makes midway.
 *
 * The rates are modest on purpose: the same plan runs in the enforcement VM (`pacer demo --vm`),
 * one emulated CPU that also runs the API, the agent and the table (the enforcement tier measures
 * at most 50 Mbit/s in all there, docs/vm-tier.md), and on a shared host whose iperf3 processes
 * compete with the agent for CPU. 50 Mbit/s in all, 40 after the change.
 */

/** The lab's addresses (private, inside the namespaces the demo creates: never routed). */
export const SUBNET = '10.98.0';
export const SENDER_ADDR = `${SUBNET}.1`;

export interface DemoClass {
  name: string;
  /** The class body POSTed to /v1/classes (the demo adds `hosts`). */
  body: Record<string, unknown>;
  /** The receiver address its traffic goes to (the class selects it by /32), undefined for a parent. */
  receiver?: string;
  /** Shown in the table's budget column after the rates (e.g. "rto-min 5ms"). */
  note?: string;
}

export const CLASSES: readonly DemoClass[] = [
  { name: 'web', receiver: `${SUBNET}.2`, body: { rate: '20mbit', match: { dst: [`${SUBNET}.2/32`] } } },
  // A parent with one busy child: batch borrows its parent's unused rate up to its ceil.
  { name: 'bulk', body: { rate: '20mbit' }, note: 'parent' },
  { name: 'batch', receiver: `${SUBNET}.3`, body: { rate: '5mbit', ceil: '20mbit', parent: 'bulk', match: { dst: [`${SUBNET}.3/32`] } } },
  // RTOmin 5 ms through sock_ops: a drop costs its sender 5 ms instead of 200 ms.
  { name: 'rpc', receiver: `${SUBNET}.4`, body: { rate: '10mbit', tcp: { rtoMin: '5ms' }, match: { dst: [`${SUBNET}.4/32`] } }, note: 'rto-min 5ms' },
];

/** The budget the demo changes while traffic runs, and its two values (it alternates between them). */
export const CHANGE = { className: 'web', rates: ['20mbit', '10mbit'] as const };

/** Without --duration the demo runs until interrupted and changes the budget this often. */
export const CHANGE_EVERY_S = 15;

/** `pacer demo --vm` without --duration runs this long (the guest cannot be sent a Ctrl-C). */
export const DEFAULT_VM_S = 60;

/** Seconds after a start or a change that the summary leaves out: TCP ramps and the agent applies. */
export const SETTLE_S = 3;

/** The host name and labels the demo's agent registers with (its classes select it by label). */
export const HOST = 'demo-sender';
export const HOST_LABELS = { pacer: 'demo' } as const;
