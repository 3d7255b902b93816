/**
 * The agent: installs (or adopts) pacer on each interface, follows the API's classes for this
 * host, keeps each interface's maps equal to the desired state, heartbeats its status and serves
 * /metrics. start() subscribes once; stop() unsubscribes and leaves enforcement in place.
 */
import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject, injectable, optional } from 'inversify';
import { Registry } from 'prom-client';
import { BehaviorSubject, ReplaySubject, combineLatest, distinctUntilChanged, filter, map, switchMap, tap, type Subscription } from 'rxjs';
import type { ClassRecord } from '../api/contract/class.js';
import type { HostStatus } from '../api/contract/host.js';
import { cgroupId, describeTcpError } from '../shaper-bpf/src/sockops.js';
import { KERNEL_PROBE, type KernelProbe, type MissingFeature } from '../shaper-bpf/src/kernel-features.js';
import type { TcpState } from '../shaper-bpf/src/tcp-datapath.js';
import type { ShaperState } from '../shaper-bpf/src/datapath.js';
import { ApiClient } from './api-client/api-client.js';
import { refusedTokenFix } from './api-client/refused-token.js';
import { AgentConfig } from './config/config.js';
import { LOGGER, type Logger } from './config/module.js';
import { INTERFACE_INSTALLER, type InstalledDatapath, type InterfaceInstaller } from './datapath/installer.js';
import { modeAfterCheck, type ModeState } from './datapath/fq-watch.js';
import { CGROUP_ROOT_OFF, TCP_TUNER, type InstalledTcp, type TcpTuner } from './datapath/tcp-tuner.js';
import { cgroup2Mounts } from './datapath/cgroup-root.js';
import { UnpacedTcpWatch, unpacedTcpError } from './datapath/unpaced-tcp.js';
import { afterCheck, attachmentReport, attachmentState, type AttachmentStatus, type CheckOutcome } from './datapath/attachment-watch.js';
import { ROUTE_TUNER, type RouteTuner } from './datapath/route-tuner.js';
import type { RouteState } from './datapath/route-plan.js';
import type { ClassError, Inventory } from './desired/desired-state.js';
import { DesiredStates } from './desired/desired-states.js';
import { mergeTcpStates } from './desired/tcp-merge.js';
import { Reconciler, type ReconcileResult } from './reconciler/reconciler.js';
import { removeTemporaries } from './reconciler/snapshot.js';
import { interfaceSnapshotFile, readSnapshotNames } from './reconciler/snapshot-names.js';
import { shaperDesired$ } from './borrowing/shaper-desired.js';
import { Borrower } from './borrowing/borrower.js';
import { InfluxSink } from './metrics/influx-sink.js';
import { PrometheusMetrics } from './metrics/prometheus.js';
import { DelayHistogramCache } from './metrics/delay-histograms.js';
import { Heartbeat } from './heartbeat/heartbeat.js';

/** The cgroup v2 mount, if the host has one. */
function cgroupRoot(): string | undefined {
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2');
  return line?.[1];
}

/** The API's classes for this host, at a revision. */
interface Budgets {
  revision: number;
  classes: readonly ClassRecord[];
}

interface IfaceStatus extends ModeState {
  installed: InstalledDatapath;
  /** fq is the root qdisc now (with mq: on every queue): the inventory's fq, shaping or policing. */
  fq$: BehaviorSubject<boolean>;
  /** The TCP part of the interface's latest desired state: its pacing depends on the mode and the borrowed rates. */
  tcp$: BehaviorSubject<TcpState | undefined>;
  /** The last failed qdisc check's message, logged once until a check succeeds. */
  qdiscCheckError?: string;
  /** Lapses of the tc program's attachment, from the qdisc checks (undefined: none seen yet). */
  attachment?: AttachmentStatus;
  /** Times the qdisc check found pins removed and pinned them again. */
  pinsRecreated?: number;
  applied?: number;
  lastError: string | null;
  classErrors: ClassError[];
}

@injectable()
export class Agent {
  private readonly subscriptions: Subscription[] = [];
  private readonly ifaces: IfaceStatus[] = [];
  /** TCP tuning (host-wide), when configured: what is installed and how its last apply went. */
  private tcp?: { installed?: InstalledTcp; lastError: string | null };
  /**
   * Per class with TCP tuning: tcp_stats' `failed` when its tuning was last written. Only sockets
   * refused since then are reported, so fixing a class clears its error (the counters are the
   * kernel's and keep counting).
   */
  private readonly tcpFailedBaseline = new Map<number, number>();
  /** What the kernel probe found missing (features with a fallback; the others stopped start()). */
  private kernelMissing: MissingFeature[] = [];
  /** Policed classes whose TCP is not paced (datapath/unpaced-tcp.ts): checked at each heartbeat. */
  private unpacedWatch = new UnpacedTcpWatch();
  private unpacedErrors: ClassError[] = [];
  /** Date.now() of the last unpaced-TCP check (the heartbeat's status runs it at most once per heartbeat interval). */
  private unpacedCheckedAt = 0;
  /** Route tuning (rto_min route metrics), when enabled: how its last apply went. */
  private routes?: { lastError: string | null };
  /** class id → name, from the API's latest classes: names the kernel's per-class TCP errors and the metrics. */
  private classNames = new Map<number, string>();
  /** class id → name from the interfaces' snapshots at start: names the metrics while the API does not answer. */
  private snapshotNames = new Map<number, string>();
  private heartbeats?: Heartbeat;
  /** Every reconciler started, for stop(): their snapshot writes are finished and their temporary files removed. */
  private readonly reconcilers: Reconciler<unknown>[] = [];
  /** Every snapshot file of those reconcilers (removeSnapshotTemporaries). */
  private readonly snapshotFiles: string[] = [];
  private qdiscTimer?: NodeJS.Timeout;
  private checkingQdiscs = false;
  private metricsServer?: Server;
  private influx?: InfluxSink;
  /** Delay histograms, read once for /metrics and InfluxDB, only for classes that passed packets. */
  private readonly delayHistograms = new DelayHistogramCache();
  readonly registry = new Registry();

  constructor(
    @inject(AgentConfig) private readonly config: AgentConfig,
    @inject(ApiClient) private readonly api: ApiClient,
    @inject(INTERFACE_INSTALLER) private readonly installer: InterfaceInstaller,
    @inject(LOGGER) private readonly log: Logger,
    @inject(TCP_TUNER) @optional() private readonly tcpTuner?: TcpTuner,
    @inject(ROUTE_TUNER) @optional() private readonly routeTuner?: RouteTuner,
    @inject(KERNEL_PROBE) @optional() private readonly probeKernel?: KernelProbe,
  ) {}

  async start(): Promise<void> {
    const s = this.config.settings;
    // One heartbeat in flight at a time; sends before start() (an early apply) are fine.
    this.heartbeats = new Heartbeat({
      intervalMs: s.heartbeatMs,
      put: (status) => this.api.heartbeat(status),
      status: () => {
        // At most once a heartbeat interval: the check reads every class's counters, and during a
        // burst a heartbeat follows each apply (docs/agent.md, "Bursts of changes").
        if (Date.now() - this.unpacedCheckedAt >= s.heartbeatMs) {
          this.unpacedCheckedAt = Date.now();
          this.checkUnpacedTcp();
        }
        return this.status();
      },
      log: this.log,
    });
    // Before anything is installed: a kernel without what the tc program needs is refused with the version it takes (KernelTooOldError).
    this.kernelMissing = this.probeKernel?.() ?? [];
    for (const m of this.kernelMissing) this.log.warn({ feature: m.feature, since: `Linux ${m.since}`, neededBy: m.neededBy }, `this kernel lacks ${m.feature} (Linux ${m.since} or later): ${m.fallback}`);
    for (const iface of s.iface) {
      const installed = await this.installer.install(iface);
      this.log.info({ iface, mode: installed.mode, modeDetail: installed.modeDetail, adopted: installed.adopted }, 'interface ready');
      this.ifaces.push({ installed, mode: installed.mode, modeDetail: installed.modeDetail, fq$: new BehaviorSubject(installed.mode === 'shaping'), tcp$: new BehaviorSubject<TcpState | undefined>(undefined), lastError: null, classErrors: [] });
    }
    // Registration may fail while the API is down: the watch retries, and so does this.
    void this.registerUntilDone();

    // sock_ops first: without --cgroup-root it chooses (or mounts) the cgroup v2 root, and class
    // cgroup paths are resolved where it is attached; else --cgroup-root, else any cgroup2 mount.
    const installedTcp = this.installTcp();
    const root = installedTcp?.cgroupRoot ?? (s.cgroupRoot === CGROUP_ROOT_OFF ? undefined : s.cgroupRoot) ?? cgroupRoot();
    const inventoryFor = (fq: boolean): Inventory => ({ fq, cgroupRoot: root, cgroupIds: (p) => this.cgroupIdOf(root, p) });
    // One computation per class list and mode, whoever asks (desired/desired-states.ts).
    const states = new DesiredStates(s.label, inventoryFor);
    // One API connection for every consumer; the latest classes are replayed to whoever
    // (re)subscribes, so recomputing an interface's state after a mode change asks the API nothing.
    const budgets$ = new ReplaySubject<Budgets>(1);
    for (const st of this.ifaces) {
      for (const [id, name] of readSnapshotNames(s.stateDir, st.installed.iface).names ?? []) this.snapshotNames.set(id, name);
      const reconciler = new Reconciler<ShaperState>({
        apply: (state) => st.installed.datapath.apply(state),
        snapshotFile: interfaceSnapshotFile(s.stateDir, st.installed.iface),
        startFromSnapshot: !st.installed.pinsFound,
        onUnreadableSnapshot: (message) => this.log.error({ iface: st.installed.iface }, message),
        resyncMs: s.resyncMs,
        backoff: { minMs: s.backoffMinMs, maxMs: s.backoffMaxMs },
      });
      this.track(reconciler as Reconciler<unknown>);
      // The API's classes, this host's labels and what the interface can do now (fq or not:
      // switchMap recomputes everything, horizons and the policing flag, when the mode changes);
      // with the effective rates of the borrowing loop (the interface's stats read every
      // borrowIntervalMs), whose measurements survive a mode change (one Borrower per interface).
      const borrower = new Borrower();
      const desired$ = st.fq$.pipe(
        distinctUntilChanged(),
        switchMap((fq) =>
          shaperDesired$(budgets$, {
            labels: s.label,
            inventory: inventoryFor(fq),
            atOwnRates: (classes) => states.at(classes, fq),
            datapath: st.installed.datapath,
            intervalMs: s.borrowIntervalMs,
            borrower,
            log: this.log,
            onDesired: (d) => {
              st.classErrors = d.classErrors;
              // The same TCP part again (a borrowing tick that moved no rate) is no news for the TCP reconciler.
              if (st.tcp$.value !== d.tcp) st.tcp$.next(d.tcp);
            },
          }),
        ),
      );
      this.subscriptions.push(reconciler.run(desired$).subscribe((r) => this.onResult(st, r)));
    }
    this.startTcp(budgets$, states, installedTcp);
    if (s.routeTuning) this.startRoutes(budgets$, states);
    // Subscribed last, so every consumer above sees the first list.
    this.subscriptions.push(
      this.api
        .budgets$()
        .pipe(tap((b) => (this.classNames = new Map(b.classes.map((c) => [c.id, c.name])))))
        .subscribe(budgets$),
    );
    this.heartbeats.start();
    if (s.qdiscCheckMs > 0) this.qdiscTimer = setInterval(() => void this.checkQdiscs(), s.qdiscCheckMs);
    if (s.metricsListen) await this.serveMetrics(s.metricsListen);
    if (s.influx) {
      // Per class metrics every second; InfluxDB being down never stops or slows the agent.
      this.influx = new InfluxSink({
        url: s.influx,
        host: s.host,
        sources: () => this.ifaces.map((i) => ({ iface: i.installed.iface, mode: i.mode, datapath: i.installed.datapath })),
        className: (id) => this.className(id),
        histograms: this.delayHistograms,
        log: this.log,
      });
      this.influx.start();
    }
  }

  /** A class's name for the metrics: the API's, else the snapshot's (ids are never reused, names never change). */
  private className(id: number): string | undefined {
    return this.classNames.get(id) ?? this.snapshotNames.get(id);
  }

  /** The InfluxDB sink, when --influx is set. */
  influxSink(): InfluxSink | undefined {
    return this.influx;
  }

  /**
   * TCP tuning: sock_ops attached (or adopted) at the cgroup root, and its maps reconciled to the
   * desired `tcp` state like an interface's. A failure here is reported, never stops shaping.
   */
  /**
   * Is fq still (or again) each interface's root qdisc? A change of mode recomputes that
   * interface's desired state, is logged, and heartbeated at once. Checks never overlap.
   */
  private async checkQdiscs(): Promise<void> {
    if (this.checkingQdiscs) return;
    this.checkingQdiscs = true;
    try {
      for (const st of [...this.ifaces]) await this.checkQdisc(st);
    } finally {
      this.checkingQdiscs = false;
    }
  }

  private async checkQdisc(st: IfaceStatus): Promise<void> {
    const iface = st.installed.iface;
    // Without the program attached (or the interface) there is nothing the root qdisc could tell.
    if (!(await this.checkAttachment(st))) return;
    let presence;
    try {
      presence = await st.installed.checkQdisc();
      st.qdiscCheckError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      // The mode stays what it was: an unreadable qdisc is not evidence that fq is gone.
      if (st.qdiscCheckError !== message) this.log.warn({ iface, err: message }, 'could not read the root qdisc; the mode stays as it was');
      st.qdiscCheckError = message;
      return;
    }
    const next = modeAfterCheck(iface, st, presence);
    if (next === undefined || !this.ifaces.includes(st)) return;
    st.mode = next.mode;
    st.modeDetail = next.modeDetail;
    if (next.mode === 'policing') {
      this.log.warn({ iface, mode: next.mode, modeDetail: next.modeDetail }, 'fq is gone: the interface polices now (short horizons); the agent does not put fq back, a restart of the agent does');
    } else {
      this.log.info({ iface, mode: next.mode, modeDetail: next.modeDetail }, 'fq is back: the interface shapes again');
    }
    st.fq$.next(next.mode === 'shaping');
    this.heartbeat();
  }

  /**
   * Is pacer's program still attached to the interface? If not, it is attached again (same
   * program, same maps: schedules kept), the lapse is counted and logged, and the status says
   * `repaired` for a while, or `error` for as long as it cannot be re-attached
   * (datapath/attachment-watch.ts). Returns whether the program is attached now.
   */
  private async checkAttachment(st: IfaceStatus): Promise<boolean> {
    const iface = st.installed.iface;
    let outcome: CheckOutcome;
    try {
      const reattached = await st.installed.ensureAttached();
      outcome = reattached && { reattached };
    } catch (err) {
      outcome = { failed: err as Error };
    }
    if (!this.ifaces.includes(st)) return false; // stopped meanwhile
    this.checkPins(st);
    const change = afterCheck(iface, st.attachment ?? { lapses: 0 }, outcome, Date.now());
    if (change) {
      st.attachment = change.next;
      if (change.log) this.log[change.log.level](change.log.fields, change.log.msg);
      // A re-created interface was set up again: its qdisc decides the mode, as at start.
      const r = outcome && 'reattached' in outcome ? outcome.reattached : undefined;
      if (r?.mode && r.modeDetail && (r.mode !== st.mode || r.modeDetail !== st.modeDetail)) {
        st.mode = r.mode;
        st.modeDetail = r.modeDetail;
        st.fq$.next(r.mode === 'shaping');
      }
      this.heartbeat();
    }
    return st.attachment?.error === undefined;
  }

  /**
   * Pins removed under the interface's pin root (enforcement goes on: the agent holds the maps and
   * the program runs) are pinned again, so that a restarted agent adopts them and `pacer dp` finds them.
   */
  private checkPins(st: IfaceStatus): void {
    const iface = st.installed.iface;
    try {
      const repinned = st.installed.ensurePinned();
      if (repinned.length === 0) return;
      st.pinsRecreated = (st.pinsRecreated ?? 0) + 1;
      this.log.warn(
        { iface, repinned, times: st.pinsRecreated, fix: 'find what removes files under pacer\'s pin directory (a cleanup script, a bpffs remount) and stop it; pacer pins again at every --qdisc-check' },
        'pacer\'s pins were removed while it enforced (enforcement went on): pinned them again',
      );
    } catch (err) {
      this.log.error({ iface, err: (err as Error).message }, 'pacer\'s pins were removed and could not be pinned again: a restarted agent would not adopt this state; retrying at every --qdisc-check');
    }
  }

  /** sock_ops attached (or adopted); undefined when off or when it failed (reported, shaping goes on). */
  private installTcp(): InstalledTcp | undefined {
    const s = this.config.settings;
    const lacking = this.kernelMissing.filter((m) => m.program === 'sockops');
    if (this.tcpTuner && lacking.length > 0) {
      const why = `TCP tuning not installed: this kernel lacks ${lacking.map((m) => `${m.feature} (Linux ${m.since} or later)`).join(', ')}; ${lacking[0]!.fallback}`;
      this.tcp = { lastError: why };
      this.log.error(why);
      return undefined;
    }
    let installed: InstalledTcp | undefined;
    try {
      installed = this.tcpTuner?.install();
    } catch (err) {
      this.tcp = { lastError: `TCP tuning not installed: ${(err as Error).message}` };
      this.log.error({ err: (err as Error).message, cgroupRoot: s.cgroupRoot }, 'TCP tuning could not be installed; shaping goes on without it');
      return undefined;
    }
    if (installed === undefined) {
      // Without sock_ops a local TCP sender in a policed class is not paced and gets a small part of its rate (docs/agent.md, "TCP under policing").
      const policed = this.ifaces.filter((i) => i.mode === 'policing').map((i) => i.installed.iface);
      if (policed.length > 0) this.log.warn({ policed }, 'policing with --cgroup-root off: local TCP senders are not paced (sock_ops is not attached) and get far less than their classes\' rates; start the agent without --cgroup-root off');
      return undefined;
    }
    if (installed.cgroupRootSource === 'mounted') {
      this.log.info({ cgroupRoot: installed.cgroupRoot }, 'this host had no cgroup v2 mount: mounted the cgroup v2 hierarchy for sock_ops (pacer agent teardown unmounts it)');
    }
    return installed;
  }

  /** Whether sock_ops sees every local socket: attached at the root of the cgroup v2 hierarchy. */
  private sockopsCoversHost(installed: InstalledTcp): boolean {
    return installed.cgroupRootSource !== 'flag' || cgroup2Mounts().includes(installed.cgroupRoot);
  }

  private startTcp(budgets$: ReplaySubject<Budgets>, states: DesiredStates, installed: InstalledTcp | undefined): void {
    const s = this.config.settings;
    if (installed === undefined) return;
    const tcp = (this.tcp = { installed, lastError: null as string | null });
    const wholeHost = this.sockopsCoversHost(installed);
    this.log.info({ cgroupRoot: installed.cgroupRoot, source: installed.cgroupRootSource, wholeHost, attach: installed.attach }, 'TCP tuning ready');
    if (!wholeHost && this.ifaces.some((i) => i.mode === 'policing')) {
      this.log.warn({ cgroupRoot: installed.cgroupRoot }, `policing: only TCP sockets created below ${installed.cgroupRoot} are paced; a local TCP sender elsewhere gets far less than its class's rate (start the agent without --cgroup-root to cover every socket)`);
    }
    /** The state of the last successful apply: what the maps hold (the kernel's read only before the first, or after a failure). */
    let applied: TcpState | undefined;
    const reconciler = new Reconciler<TcpState>({
      apply: (state) => {
        const before = applied ?? installed.datapath.read();
        applied = undefined;
        const report = installed.datapath.apply(state);
        applied = state;
        // A class whose tuning was written (new or changed) starts counting refusals afresh.
        // Compared with the state applied last, not read back from the kernel at each apply (at
        // 10,000 policed classes that read was most of the apply): an entry the kernel lost and
        // a resync wrote again keeps its count, which only means an older refusal stays reported.
        // Fields by hand: isDeepStrictEqual per class made garbage of every key list.
        const written: number[] = [];
        for (const [id, t] of state.tuning) {
          const was = before.tuning.get(id);
          if (was?.rto_min_us !== t.rto_min_us || was.delack_max_us !== t.delack_max_us) written.push(id);
        }
        for (const [id, p] of state.pacing ?? []) if (before.pacing?.get(id)?.rate_bps !== p.rate_bps) written.push(id);
        if (written.length > 0) {
          const stats = installed.datapath.stats();
          for (const id of written) this.tcpFailedBaseline.set(id, stats.get(id)?.failed ?? 0);
        }
        for (const id of this.tcpFailedBaseline.keys()) if (!state.tuning.has(id) && !state.pacing?.has(id)) this.tcpFailedBaseline.delete(id);
        return report;
      },
      snapshotFile: join(s.stateDir, 'tcp.last-known-good.json'),
      // sock_ops' pinned link was there: its maps hold a state at least as new as the snapshot.
      startFromSnapshot: installed.attach === 'attached',
      onUnreadableSnapshot: (message) => this.log.error(message),
      resyncMs: s.resyncMs,
      backoff: { minMs: s.backoffMinMs, maxMs: s.backoffMaxMs },
    });
    this.track(reconciler as Reconciler<unknown>);
    // Tuning from the classes; pacing from each interface's latest desired state (policing or
    // not, and its borrowed rates), merged into the host's one state (desired/tcp-merge.ts).
    const desired$ =
      this.ifaces.length === 0
        ? budgets$.pipe(map((b) => ({ revision: b.revision, state: states.at(b.classes, true).tcp })))
        : combineLatest([budgets$, ...this.ifaces.map((i) => i.tcp$)]).pipe(
            // Until every interface has computed its state, its pacing is unknown: wait.
            filter(([, ...states]) => states.every((t) => t !== undefined)),
            map(([b, ...states]) => ({ revision: b.revision, state: mergeTcpStates(states as TcpState[]) as TcpState })),
          );
    this.subscriptions.push(
      reconciler.run(desired$).subscribe((r) => {
        if (r.ok) {
          if (Object.keys(r.report.changes).length > 0) this.log.info({ revision: r.revision, why: r.why, changes: r.report.changes }, 'TCP tuning applied');
          tcp.lastError = null;
        } else {
          tcp.lastError = r.error;
          this.log.error({ err: r.error, retryInMs: r.retryInMs }, 'TCP tuning apply failed; the previous tuning stays');
        }
      }),
    );
  }

  /**
   * rto_min route metrics for prefix-selected classes: pacer's own routes (proto 112) reconciled
   * to the desired routes like the maps (resync repairs a route deleted by hand). Refusals are
   * per class; a failed apply is retried and reported, and never stops shaping.
   */
  private startRoutes(budgets$: ReplaySubject<Budgets>, states: DesiredStates): void {
    const tuner = this.routeTuner;
    if (tuner === undefined) return;
    const s = this.config.settings;
    const routes = (this.routes = { lastError: null as string | null });
    const reconciler = new Reconciler<RouteState>({
      apply: (state) => tuner.apply(state),
      snapshotFile: join(s.stateDir, 'routes.last-known-good.json'),
      // Routes outlive an agent, not a reboot: pins found on an interface mean no reboot since, so the kernel's routes are the newer.
      startFromSnapshot: !this.ifaces.some((i) => i.installed.pinsFound),
      onUnreadableSnapshot: (message) => this.log.error(message),
      resyncMs: s.resyncMs,
      backoff: { minMs: s.backoffMinMs, maxMs: s.backoffMaxMs },
    });
    this.track(reconciler as Reconciler<unknown>);
    // Subscribed after the interfaces: their states of this list are computed already, and reused.
    const desired$ = budgets$.pipe(map((b) => ({ revision: b.revision, state: states.routes(b.classes) })));
    let refused = '';
    this.subscriptions.push(
      reconciler.run(desired$).subscribe((r) => {
        if (r.ok) {
          if (Object.keys(r.report.changes).length > 0) this.log.info({ revision: r.revision, why: r.why, changes: r.report.changes }, 'route tuning applied');
          routes.lastError = null;
          const errors = JSON.stringify(tuner.classErrors());
          if (errors !== refused && errors !== '[]') this.log.warn({ classErrors: tuner.classErrors() }, 'route tuning refused for some classes; the others are applied');
          refused = errors;
        } else {
          routes.lastError = r.error;
          this.log.error({ err: r.error, retryInMs: r.retryInMs }, 'route tuning apply failed; retrying');
        }
      }),
    );
  }

  /** What the kernel refused, per class with tuning (from tcp_stats), since its tuning was written. */
  private tcpClassErrors(): ClassError[] {
    const installed = this.tcp?.installed;
    if (!installed) return [];
    const { tuning: tuned, pacing: paced } = installed.datapath.read();
    const out: ClassError[] = [];
    for (const [id, st] of installed.datapath.stats()) {
      const refused = st.failed - (this.tcpFailedBaseline.get(id) ?? 0);
      if ((!tuned.has(id) && !paced?.has(id)) || refused <= 0 || st.last_error === 0) continue;
      out.push({ class: this.classNames.get(id) ?? `id ${id}`, error: `tcp: ${describeTcpError(st.last_error, st.last_option)} (${refused} sockets)` });
    }
    return out;
  }

  private cgroupIdOf(root: string | undefined, path: string): bigint | undefined {
    if (root === undefined || !existsSync(join(root, path))) return undefined;
    return cgroupId(join(root, path));
  }

  /**
   * Resolves with an error the agent cannot recover from by retrying (the API refused its token
   * at registration); the command stops the agent and exits 1 with it. Never rejects.
   */
  private fatalError: (err: Error) => void = () => {};
  readonly fatal: Promise<Error> = new Promise((resolve) => (this.fatalError = resolve));

  private async registerUntilDone(): Promise<void> {
    for (let attempt = 0; this.ifaces.length > 0; attempt++) {
      try {
        await this.api.register(this.config.settings.label, 'pacer-agent/0.1.0');
        this.heartbeat(); // one that overtook the registration was refused (404)
        return;
      } catch (err) {
        // A refused token does not get better by retrying: stop, with the fix (issue 11).
        const refused = refusedTokenFix(err, this.config.settings.host);
        if (refused) {
          this.log.error({ err: (err as Error).message, fix: refused }, `the API refused this agent's token: ${refused}`);
          this.fatalError(new Error(`the API refused this agent's token (${(err as Error).message}): ${refused}`));
          return;
        }
        this.log.warn({ err: (err as Error).message }, 'registration failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)).unref());
      }
    }
  }

  private onResult(st: IfaceStatus, r: ReconcileResult): void {
    if (r.ok) {
      const changed = Object.keys(r.report.changes).length > 0;
      if (changed || r.why === 'change') this.log.info({ iface: st.installed.iface, revision: r.revision, why: r.why, changes: r.report.changes }, 'applied');
      if (r.snapshotError) this.log.warn({ err: r.snapshotError }, 'could not write the last-known-good snapshot');
      const first = st.applied === undefined;
      st.applied = r.revision;
      st.lastError = null;
      if (first || r.why === 'change') this.heartbeat();
    } else {
      st.lastError = r.error;
      this.log.error({ iface: st.installed.iface, err: r.error, retryInMs: r.retryInMs }, 'apply failed; the previous state stays enforced');
    }
  }

  status(): HostStatus {
    const policing = this.ifaces.find((i) => i.mode === 'policing');
    const failed = this.ifaces.find((i) => i.lastError !== null);
    const now = Date.now();
    const detached = this.ifaces.find((i) => i.attachment?.error !== undefined);
    const classErrors = this.ifaces.flatMap((i) => i.classErrors.map((e) => (this.ifaces.length > 1 ? { ...e, error: `${i.installed.iface}: ${e.error}` } : e)));
    let tcpErrors: ClassError[] = [];
    try {
      tcpErrors = this.tcpClassErrors();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not read the TCP tuning stats');
    }
    // With sock_ops attached, a class's prefixes still tune new connections when its route is refused: say so.
    const viaSockops = this.tcp?.installed ? ' (sock_ops still tunes the class\'s new connections)' : '';
    const routeErrors = this.routes ? (this.routeTuner?.classErrors() ?? []).map((e) => ({ ...e, error: `${e.error}${viaSockops}` })) : [];
    const lastError = detached
      ? `${detached.installed.iface}: ${detached.attachment!.error}`
      : failed
      ? `${failed.installed.iface}: ${failed.lastError}`
      : this.tcp?.lastError
        ? `tcp: ${this.tcp.lastError}`
        : this.routes?.lastError
          ? `routes: ${this.routes.lastError}`
          : null;
    return {
      appliedRevision: this.appliedRevision(),
      // A TCP tuning failure is an error to report, but shaping/policing goes on: the mode says what the interfaces do.
      mode: failed || detached ? 'error' : policing ? 'policing' : 'shaping',
      modeDetail: policing?.modeDetail ?? this.ifaces[0]?.modeDetail,
      classErrors: [...classErrors, ...tcpErrors, ...this.unpacedErrors, ...routeErrors].slice(0, 10_000).map((e) => ({ class: e.class, error: e.error.slice(0, 1024) })),
      lastError: lastError === null ? null : lastError.slice(0, 4096),
      attachments: this.ifaces.map((i) => attachmentReport(i.installed.iface, i.attachment, now)),
    };
  }

  /** The revision applied on every interface (status() without reading the TCP maps: /metrics asks at every scrape). */
  private appliedRevision(): number {
    return Math.min(...this.ifaces.map((i) => i.applied ?? 0));
  }

  /**
   * Policed classes whose TCP is not paced, since the previous check: kept for the status, logged
   * when the set changes (datapath/unpaced-tcp.ts).
   */
  private checkUnpacedTcp(): void {
    const installed = this.tcp?.installed;
    let found;
    // Shaping everywhere: fq holds packets, nothing to check (and no counters to read).
    if (!this.ifaces.some((i) => i.mode === 'policing')) {
      this.unpacedErrors = [];
      this.unpacedWatch = new UnpacedTcpWatch(); // drops counted while shaping are not the policer's
      return;
    }
    try {
      const ifaces = this.ifaces.map((i) => ({
        iface: i.installed.iface,
        policing: i.mode === 'policing',
        drops: new Map([...i.installed.datapath.stats().classes].map(([id, st]) => [id, st.horizon_drops])),
      }));
      found = this.unpacedWatch.check(ifaces, installed?.pacedSockets());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not read the counters for the unpaced-TCP check');
      return;
    }
    const sockops = { cgroupRoot: installed?.cgroupRoot, whole: installed !== undefined && this.sockopsCoversHost(installed) };
    const errors = found.map((u) => unpacedTcpError(u, this.classNames.get(u.classId) ?? `id ${u.classId}`, sockops));
    const names = (list: ClassError[]) => JSON.stringify(list.map((e) => e.class));
    if (names(errors) !== names(this.unpacedErrors)) {
      if (errors.length > 0) for (const e of errors) this.log.warn({ class: e.class, err: e.error }, 'class policed without a socket cap');
      else this.log.info({ classes: this.unpacedErrors.map((e) => e.class) }, 'no class is policed without a socket cap any more');
    }
    this.unpacedErrors = errors;
  }

  /** The status to the API now (or right after the heartbeat in flight: heartbeat/heartbeat.ts). */
  private heartbeat(): void {
    this.heartbeats?.send();
  }

  private async serveMetrics(listen: string): Promise<void> {
    const metrics = new PrometheusMetrics({
      registry: this.registry,
      sources: () => this.ifaces.map((i) => ({ iface: i.installed.iface, mode: i.mode, datapath: i.installed.datapath, attachment: { state: attachmentState(i.attachment ?? { lapses: 0 }, Date.now()), lapses: i.attachment?.lapses ?? 0, pinsRecreated: i.pinsRecreated ?? 0 } })),
      appliedRevision: () => this.appliedRevision(),
      api: () => this.api.connection(),
      className: (id) => this.className(id),
      histograms: this.delayHistograms,
    });
    this.metricsServer = createServer(async (req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      try {
        const chunks = await metrics.chunks();
        res.writeHead(200, { 'content-type': this.registry.contentType });
        for (const chunk of chunks) res.write(chunk);
        res.end();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, '/metrics: could not read the maps');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`could not read the maps: ${(err as Error).message}\n`);
      }
    });
    const [host, port] = listen.includes(':') ? [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))] : ['127.0.0.1', Number(listen)];
    await new Promise<void>((resolve, reject) => this.metricsServer!.once('error', reject).listen(port, host, resolve));
  }

  /** The listening address of /metrics, once started. */
  metricsAddress(): string | undefined {
    const a = this.metricsServer?.address();
    return a && typeof a === 'object' ? `${a.address}:${a.port}` : undefined;
  }

  private track(reconciler: Reconciler<unknown>): void {
    this.reconcilers.push(reconciler);
    if (reconciler.snapshotFile !== undefined) this.snapshotFiles.push(reconciler.snapshotFile);
  }

  /** Removes every temporary snapshot file now (a stop that missed its deadline: shutdown.ts). */
  removeSnapshotTemporaries(): void {
    for (const f of this.snapshotFiles) removeTemporaries(f);
  }

  /**
   * Stops following the API. Enforcement stays: programs, maps and pins are left in place. Each
   * reconciler writes its newest state's snapshot as it is unsubscribed; then the writes in
   * flight are waited for and every temporary snapshot file is removed.
   */
  async stop(): Promise<void> {
    this.subscriptions.splice(0).forEach((s) => s.unsubscribe());
    this.heartbeats?.stop();
    this.api.close(); // ends the heartbeat in flight, if any
    clearInterval(this.qdiscTimer);
    await Promise.all(this.reconcilers.splice(0).map((r) => r.close()));
    for (const i of this.ifaces) {
      i.fq$.complete();
      i.tcp$.complete();
    }
    await this.influx?.stop();
    this.influx = undefined;
    await new Promise<void>((r) => {
      if (!this.metricsServer) return r();
      this.metricsServer.close(() => r());
      this.metricsServer.closeAllConnections(); // a scraper's idle keep-alive connection must not hold the stop
    });
    for (const i of this.ifaces) i.installed.close();
    this.ifaces.length = 0;
    this.tcp?.installed?.close(); // the pinned link keeps sock_ops attached
    this.tcp = undefined;
    this.routes = undefined; // pacer's routes stay: they keep tuning while the agent is away
  }
}

export { refusedTokenFix } from './api-client/refused-token.js';
