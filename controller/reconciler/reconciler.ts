/**
 * Applies desired state to one target (an interface's Datapath, or the host's TcpDatapath) and
 * keeps it applied: reconcile, don't command. Desired state is data; the target's apply writes
 * only differences, so applying the same state again is cheap and repairs whatever drifted.
 *
 * Per target there is one key (the whole state): its apply is all or nothing, so a per-key
 * backoff is one backoff per target. A failure does not end the stream: it is a result with
 * ok: false, and the latest state is applied again after an exponential backoff.
 */
import { isDeepStrictEqual } from 'node:util';
import { Subject, concatMap, defer, distinctUntilChanged, finalize, interval, map, merge, of, shareReplay, startWith, tap, timer, withLatestFrom, type Observable, type Subscription } from 'rxjs';
import type { ApplyReport } from '../../shaper-bpf/src/steps.js';
import { backoffDelay, type Backoff } from '../api-client/api-client.js';
import { readSnapshot, writeSnapshot } from './snapshot.js';

export interface Desired<S> {
  /** The API revision this state was computed from (reported as appliedRevision). */
  revision: number;
  state: S;
}

export type ReconcileResult =
  | { ok: true; revision: number; why: 'change' | 'resync'; report: ApplyReport; snapshotError?: string }
  | { ok: false; revision: number; why: 'change' | 'resync'; error: string; retryInMs: number };

export interface ReconcilerOptions<S> {
  apply(state: S): ApplyReport;
  /** Where the last-known-good snapshot lives; undefined: none. */
  snapshotFile?: string;
  resyncMs: number;
  backoff: Backoff;
  random?: () => number;
}

export class Reconciler<S> {
  constructor(private readonly o: ReconcilerOptions<S>) {}

  /** The snapshot of the last successful apply, if any. */
  lastKnownGood(): Desired<S> | undefined {
    return this.o.snapshotFile === undefined ? undefined : readSnapshot<Desired<S>>(this.o.snapshotFile);
  }

  /** One result per apply. Subscribe once; the snapshot (if any) is applied first. */
  run(desired$: Observable<Desired<S>>): Observable<ReconcileResult> {
    return defer(() => {
      const retry$ = new Subject<void>();
      let attempt = 0;
      let pendingRetry: Subscription | undefined;
      const saved = this.lastKnownGood();

      // Enforce the last-known-good state at once, before the API answers (or while it cannot).
      const latest$ = (saved ? desired$.pipe(startWith(saved)) : desired$).pipe(
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
        // Applies run one at a time, in order: two applies must never interleave on the maps.
        concatMap(({ why, d }) => of(this.applyOnce(d, why, attempt))),
        tap((r) => {
          pendingRetry?.unsubscribe();
          if (r.ok) attempt = 0;
          else {
            attempt++;
            pendingRetry = timer(r.retryInMs).subscribe(() => retry$.next());
          }
        }),
        finalize(() => pendingRetry?.unsubscribe()),
      );
    });
  }

  private applyOnce(d: Desired<S>, why: 'change' | 'resync', attempt: number): ReconcileResult {
    let report: ApplyReport;
    try {
      report = this.o.apply(d.state);
    } catch (err) {
      return { ok: false, revision: d.revision, why, error: (err as Error).message, retryInMs: backoffDelay(attempt, this.o.backoff, this.o.random ?? Math.random) };
    }
    if (this.o.snapshotFile === undefined) return { ok: true, revision: d.revision, why, report };
    try {
      writeSnapshot(this.o.snapshotFile, d);
      return { ok: true, revision: d.revision, why, report };
    } catch (err) {
      // Enforcement is in place; only a restart without the API would miss it. Reported, not retried.
      return { ok: true, revision: d.revision, why, report, snapshotError: (err as Error).message };
    }
  }
}
