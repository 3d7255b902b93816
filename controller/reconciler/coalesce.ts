/**
 * Latest wins while busy: exhaustMap with a trailing value. A value that arrives while `work`
 * runs waits in one slot, and a newer arrival replaces it (`merge` decides how the two combine;
 * by default the newer wins). When the work ends, the waiting value is handed to work at once.
 *
 * So at most one work runs and at most one value waits, whatever the rate of the source: a burst
 * of 1,000 values during one work costs one more work, not 1,000, and memory does not grow with
 * the burst. The bound on staleness: a value starts its work no later than the end of the work
 * that was running when it arrived (two works' time after its arrival, at most, until it is done).
 *
 * `work` may finish synchronously (of(x)) or later (a Promise): either way a value emitted by the
 * source from inside a running work (re-entrantly) waits in the slot like any other.
 */
import { Observable, from, type ObservableInput, type OperatorFunction, type Subscription } from 'rxjs';

export function coalesceWhileBusy<T, R>(work: (value: T) => ObservableInput<R>, merge: (waiting: T, next: T) => T = (_, next) => next): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      let busy = false;
      let waiting: { value: T } | undefined;
      let sourceDone = false;
      let running: Subscription | undefined;

      const drain = (): void => {
        while (!busy && waiting !== undefined && !subscriber.closed) {
          const { value } = waiting;
          waiting = undefined;
          busy = true;
          let sync = true;
          const s = from(work(value)).subscribe({
            next: (r) => subscriber.next(r),
            error: (err) => subscriber.error(err),
            complete: () => {
              busy = false;
              running = undefined;
              if (!sync) drain(); // finished later: pick up what waited meanwhile
            },
          });
          sync = false;
          if (busy) running = s;
        }
        if (!busy && waiting === undefined && sourceDone) subscriber.complete();
      };

      const upstream = source.subscribe({
        next: (value) => {
          waiting = waiting === undefined ? { value } : { value: merge(waiting.value, value) };
          drain();
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          drain();
        },
      });
      return () => {
        upstream.unsubscribe();
        running?.unsubscribe();
      };
    });
}
