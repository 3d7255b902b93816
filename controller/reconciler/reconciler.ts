/**
 * Applies desired state to one target (an interface's Datapath, or the host's TcpDatapath) and
 * keeps it applied: reconcile, don't command. Desired state is data; the target's apply writes
 * only differences, so applying the same state again is cheap and repairs whatever drifted.
 *
 * Per target there is one key (the whole state): its apply is all or nothing, so a per-key
 * backoff is one backoff per target. A failure does not end the stream: it is a result with
 * ok: false, and the latest state is applied again after an exponential backoff.
 *
 * A change of revision that leaves the state as last applied is reported applied without calling
 * the target (the target's apply reads everything it enforces, and some targets spawn commands).
 *
 * Applies never overlap, and changes are coalesced (coalesce.ts): while an apply runs, every
 * newer desired state collapses into the newest, applied when the running apply ends. A burst of
 * revisions thus costs about two applies, not one per revision, and the applied state is never
 * older than the newest desired state by more than the apply in progress (docs/agent.md,
 * "Bursts of changes").
 *
 * After a successful apply of a state not snapshotted yet, the last-known-good snapshot is
 * queued (snapshot.ts SnapshotWriter): serialized here (or, while a write is in flight, once for
 * the newest state when that write ends), written to disk off the event loop, so
 * a slow disk never holds back the next apply, the heartbeat or the watch. A resync of the same
 * state writes nothing. On unsubscribe the newest state is written synchronously.
 */
import { isDeepStrictEqual } from 'node:util';
import { Subject, defer, distinctUntilChanged, finalize, from, interval, map, merge, of, shareReplay, startWith, tap, timer, withLatestFrom, type Observable, type Subscription } from 'rxjs';
import type { ApplyReport } from '../../shaper-bpf/src/steps.js';
import { backoffDelay, type Backoff } from '../api-client/api-client.js';
import { readSnapshot, removeTemporaries, setAsideUnreadable, SnapshotWriter } from './snapshot.js';
import { coalesceWhileBusy } from './coalesce.js';

export interface Desired<S> {
  /** The API revision this state was computed from (reported as appliedRevision). */
  revision: number;
  state: S;
  /**
   * class id → name of the classes in `state`, stored with the snapshot for `pacer dp` and the
   * metrics (snapshot-names.ts). Absent from targets without class names and from older snapshots.
   */
  names?: ReadonlyMap<number, string>;
}

/** How long an apply took on this thread, ms: the target's apply, and serializing the snapshot (0 when none was due; the disk write runs off the event loop). */
export interface ReconcileTimings {
  applyMs: number;
  snapshotMs: number;
}

export type ReconcileResult =
  | { ok: true; revision: number; why: 'change' | 'resync'; report: ApplyReport; snapshotError?: string; timings: ReconcileTimings }
  | { ok: false; revision: number; why: 'change' | 'resync'; error: string; retryInMs: number; timings: ReconcileTimings };

export interface ReconcilerOptions<S> {
  /** Synchronous (the kernel's maps) or not (a target that waits on something); never called while a previous call runs. */
  apply(state: S): ApplyReport | Promise<ApplyReport>;
  /** Where the last-known-good snapshot lives; undefined: none. */
  snapshotFile?: string;
  /**
   * Enforce the snapshot at start, before the API answers (default true). False when the kernel
   * already holds state (pins a previous agent left): that state is at least as new as the
   * snapshot, which a crash between an apply and its snapshot's rename leaves one state behind,
   * so applying the snapshot could only roll the host back.
   */
  startFromSnapshot?: boolean;
  /** A snapshot file that cannot be read (corrupt, not a snapshot): it was set aside and ignored. */
  onUnreadableSnapshot?(message: string): void;
  resyncMs: number;
  backoff: Backoff;
  random?: () => number;
}

export class Reconciler<S> {
  private writer?: SnapshotWriter;

  constructor(private readonly o: ReconcilerOptions<S>) {}

  get snapshotFile(): string | undefined {
    return this.o.snapshotFile;
  }

  /** Resolves when the snapshot writes queued so far are on disk (or failed). */
  snapshotsWritten(): Promise<void> {
    return this.writer?.idle() ?? Promise.resolve();
  }

  /**
   * After unsubscribing (which wrote the newest state): waits for the disk write in flight and
   * removes every temporary file of this snapshot, so a stopping agent leaves no *.tmp.
   */
  async close(): Promise<void> {
    await this.writer?.close();
    if (this.o.snapshotFile !== undefined) removeTemporaries(this.o.snapshotFile);
  }

  /** The snapshot of the last successful apply, if any. Throws when the file is not one. */
  lastKnownGood(): Desired<S> | undefined {
    if (this.o.snapshotFile === undefined) return undefined;
    const saved = readSnapshot<Desired<S>>(this.o.snapshotFile);
    if (saved !== undefined && (typeof saved !== 'object' || saved === null || !Number.isSafeInteger(saved.revision) || typeof saved.state !== 'object' || saved.state === null)) {
      throw new Error('not a snapshot: it has no revision and state');
    }
    return saved;
  }

  /**
   * lastKnownGood, except that an unreadable file is renamed to FILE.unreadable (kept for a look,
   * and not read again), reported, and treated as no snapshot: a bad file must not stop the agent.
   */
  private readSaved(): Desired<S> | undefined {
    try {
      return this.lastKnownGood();
    } catch (err) {
      const file = this.o.snapshotFile!;
      const kept = setAsideUnreadable(file);
      this.o.onUnreadableSnapshot?.(`the last-known-good snapshot ${file} cannot be read (${(err as Error).message}); ${kept ? `moved to ${kept} and ` : ''}ignored: enforcement starts from the pinned maps, or from the API when it answers`);
      return undefined;
    }
  }

  /** One result per apply. Subscribe once; the snapshot (if any) is applied first. */
  run(desired$: Observable<Desired<S>>): Observable<ReconcileResult> {
    return defer(() => {
      const retry$ = new Subject<void>();
      let attempt = 0;
      let pendingRetry: Subscription | undefined;
      const saved = this.readSaved();
      // Temporary files of writes a crash interrupted: never renamed, never read.
      if (this.o.snapshotFile !== undefined) removeTemporaries(this.o.snapshotFile);
      const writer = (this.writer = this.o.snapshotFile === undefined ? undefined : new SnapshotWriter(this.o.snapshotFile));
      /** The state whose snapshot was last queued: a resync of the same state needs no new one. */
      let snapshotted: Desired<S> | undefined = saved;
      /** The state of the last apply, if it succeeded (undefined after a failure: the kernel may be anything). */
      let applied: S | undefined;

      // Enforce the last-known-good state at once, before the API answers (or while it cannot),
      // unless the kernel holds a state of its own (startFromSnapshot).
      const start = saved !== undefined && (this.o.startFromSnapshot ?? true);
      const latest$ = (start ? desired$.pipe(startWith(saved)) : desired$).pipe(
        // The same state (and revision) again needs no apply: the resync covers drift.
        distinctUntilChanged<Desired<S>>((a, b) => isDeepStrictEqual(a, b)),
        // One upstream subscription, and the latest value for the resync and retry ticks.
        shareReplay({ bufferSize: 1, refCount: true }),
      );
      const again$ = merge(interval(this.o.resyncMs).pipe(map(() => 'resync' as const)), retry$.pipe(map(() => 'resync' as const))).pipe(
        // A tick re-applies the latest state: repairs drift, retries a failure.
        withLatestFrom(latest$),
        map(([why, d]) => ({ why, d })),
      );
      return merge(latest$.pipe(map((d) => ({ why: 'change' as const, d }))), again$).pipe(
        // Applies run one at a time (two must never interleave on the maps), each on the newest
        // state: what arrives during an apply collapses into one (a change wins over a resync).
        coalesceWhileBusy(
          ({ why, d }) => {
            // A new revision whose state is the one just applied (a change to a class that does
            // not apply to this target) needs no apply: it is reported as applied at once. The
            // resync still reads the target and repairs drift.
            if (why === 'change' && applied !== undefined && isDeepStrictEqual(applied, d.state)) {
              return of<ReconcileResult>({ ok: true, revision: d.revision, why, report: { changes: {} }, timings: { applyMs: 0, snapshotMs: 0 } });
            }
            const after = (r: ReconcileResult): ReconcileResult => {
              applied = r.ok ? d.state : undefined;
              if (r.ok && writer && d !== snapshotted) {
                const t = performance.now();
                // Serialized now when no write is in flight (else when the newest state's write starts).
                writer.write(d);
                snapshotted = d;
                r.timings.snapshotMs = performance.now() - t;
              }
              // A state that cannot be serialized is reported here (enforcement is in place); a
              // failed disk write comes back with the next result (it finishes after this one).
              const failed = r.ok ? writer?.takeError() : undefined;
              if (r.ok && failed !== undefined) r.snapshotError ??= failed;
              return r;
            };
            const r = this.applyOnce(d, why, attempt);
            return r instanceof Promise ? from(r.then(after)) : of(after(r));
          },
          (waiting, next) => (waiting.why === 'change' ? { why: 'change' as const, d: next.d } : next),
        ),
        tap((r) => {
          pendingRetry?.unsubscribe();
          if (r.ok) attempt = 0;
          else {
            attempt++;
            pendingRetry = timer(r.retryInMs).subscribe(() => retry$.next());
          }
        }),
        finalize(() => {
          pendingRetry?.unsubscribe();
          // Stopping: the newest applied state goes to disk now, not after the process has gone.
          try {
            writer?.flushSync();
          } catch {
            /* the previous snapshot stays; the maps and the API hold the newer state */
          }
        }),
      );
    });
  }

  private applyOnce(d: Desired<S>, why: 'change' | 'resync', attempt: number): ReconcileResult | Promise<ReconcileResult> {
    const started = performance.now();
    const failed = (err: unknown): ReconcileResult => {
      const timings = { applyMs: performance.now() - started, snapshotMs: 0 };
      return { ok: false, revision: d.revision, why, error: (err as Error).message, retryInMs: backoffDelay(attempt, this.o.backoff, this.o.random ?? Math.random), timings };
    };
    // The snapshot is queued by run(); enforcement is in place either way.
    const done = (report: ApplyReport): ReconcileResult => ({ ok: true, revision: d.revision, why, report, timings: { applyMs: performance.now() - started, snapshotMs: 0 } });
    let report: ApplyReport | Promise<ApplyReport>;
    try {
      report = this.o.apply(d.state);
    } catch (err) {
      return failed(err);
    }
    return report instanceof Promise ? report.then(done, failed) : done(report);
  }
}
