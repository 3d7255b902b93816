/**
 * The agent's side of the budgets API: the class list for this host as a stream (list, then
 * watch from the list's revision), registration and the status heartbeat.
 *
 * budgets$ is written as a plain async loop inside one Observable rather than an operator chain:
 * the loop carries state across reconnects (the classes, the last revision seen) and a reader
 * follows "list, watch, on error wait and resume, on 410 list again" faster as code than as
 * retry/repeat operators.
 *
 * Bounded by design (docs/agent.md, "Bursts of changes"): every request but the watch has a
 * timeout (requestTimeoutMs), the client holds at most maxConnections connections to the API
 * (keep-alive, reused; keep-alive-fetch.ts), and the watch emits at most once per turn of the
 * event loop, with every event read in that turn, and keeps half of the agent's time for the rest
 * (EmitPacing): a burst of 10,000 events costs a few emissions of the newest class list, not
 * 10,000 sorted copies of it, each recomputing and applying every class.
 */
import { Observable } from 'rxjs';
import { createParser } from 'eventsource-parser';
import { classFromJson, type ClassJson, type ClassRecord } from '../../api/contract/class.js';
import type { ClassEvent } from '../../api/contract/change.js';
import { escapeStatusText, type HostStatus } from '../../api/contract/host.js';
import { escapeControl } from '../../api/contract/text.js';
import { keepAliveFetch } from './keep-alive-fetch.js';

export interface Budgets {
  /** Everything up to this revision is in `classes`. */
  revision: number;
  /** Every class the API told us about that may apply to this host, by name order. */
  classes: ClassRecord[];
}

export interface Backoff {
  minMs: number;
  maxMs: number;
}

export interface ApiClientOptions {
  baseUrl: string;
  token: string;
  host: string;
  backoff?: Backoff;
  /** No byte from the watch (the API heartbeats) for this long: the connection is dead, reconnect. */
  idleTimeoutMs?: number;
  /** Every request but the watch is given up after this long (default 10 s): a heartbeat never hangs on. */
  requestTimeoutMs?: number;
  /** Most connections open to the API at once (default 4: the watch, a heartbeat, a list, one spare); more requests wait for one. */
  maxConnections?: number;
  /** Tests: a scripted HTTP layer instead of the keep-alive one. */
  fetch?: typeof fetch;
  random?: () => number;
  /** Told about every failed attempt, for logs and metrics. */
  onError?: (err: Error, retryInMs: number) => void;
  onConnected?: (revision: number) => void;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** 410 on the watch: the history we would resume from is gone; list again. */
export class HistoryGone extends ApiError {}

/** Exponential backoff with "equal jitter": half fixed, half random, so agents do not reconnect in step. */
export function backoffDelay(attempt: number, b: Backoff, random: () => number): number {
  const ceiling = Math.min(b.maxMs, b.minMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

const PAGE = 1000;

/**
 * One emission for any number of changes requested before it runs: in the next turn of the event
 * loop (so every event already read, from every chunk that was waiting, is in it), and, when the
 * previous emission kept its subscribers busy for d ms (the desired state, the applies), not
 * before d ms after it ended. A lone change goes at once; during a burst, following changes takes
 * at most half of the agent's time, and the other half stays for /metrics, the heartbeat and
 * reading the watch. The bound: a change is emitted within one emission's time of the end of the
 * previous one (docs/agent.md, "Bursts of changes").
 */
class EmitPacing {
  private cancelPending?: () => void;
  private lastEnd = 0;
  private lastTook = 0;

  constructor(private readonly emit: () => void) {}

  request(): void {
    if (this.cancelPending) return;
    const wait = this.lastEnd + this.lastTook - performance.now();
    if (wait > 0) {
      const t = setTimeout(() => this.run(), wait);
      this.cancelPending = () => clearTimeout(t);
    } else {
      const t = setImmediate(() => this.run());
      this.cancelPending = () => clearImmediate(t);
    }
  }

  /** Emits now what was requested and not emitted yet. */
  flush(): void {
    if (this.cancelPending) this.run();
  }

  cancel(): void {
    this.cancelPending?.();
    this.cancelPending = undefined;
  }

  private run(): void {
    this.cancel();
    const started = performance.now();
    this.emit();
    this.lastEnd = performance.now();
    this.lastTook = this.lastEnd - started;
  }
}

/** Whether the agent follows the API now; for metrics. The agent enforces either way. */
export interface ApiConnection {
  /** The watch is caught up (it got `ready`) and has not failed since. */
  connected: boolean;
  /** Date.now() of the last change of `connected` (or of the client's creation). */
  sinceMs: number;
  /** Failed attempts (list or watch) since the client was created. */
  failures: number;
  lastError: string | null;
}

export class ApiClient {
  private readonly fetch: typeof fetch;
  private readonly closeConnections: () => void = () => {};
  private readonly requestTimeoutMs: number;
  private readonly backoff: Backoff;
  private readonly conn: ApiConnection = { connected: false, sinceMs: Date.now(), failures: 0, lastError: null };

  constructor(private readonly o: ApiClientOptions) {
    if (o.fetch) this.fetch = o.fetch;
    else {
      const http = keepAliveFetch(o.maxConnections ?? 4);
      this.fetch = http.fetch;
      this.closeConnections = http.close;
    }
    this.requestTimeoutMs = o.requestTimeoutMs ?? 10_000;
    this.backoff = o.backoff ?? { minMs: 500, maxMs: 30_000 };
  }

  /** Closes the connections to the API (the agent stops; unsubscribe from budgets$ first). */
  close(): void {
    this.closeConnections();
  }

  /** A request and, unless it is the watch (`untimed`), a timeout that covers reading its body too. */
  private async call(method: string, path: string, body?: unknown, signal?: AbortSignal, headers: Record<string, string> = {}, untimed = false): Promise<Response> {
    const timeout = untimed ? undefined : AbortSignal.timeout(this.requestTimeoutMs);
    const timedOut = () => new Error(`${method} ${path}: no answer within ${this.requestTimeoutMs} ms (requestTimeoutMs)`);
    const res = await this.fetch(this.o.baseUrl + path, {
      method,
      signal: timeout && signal ? AbortSignal.any([signal, timeout]) : (timeout ?? signal),
      headers: {
        authorization: `Bearer ${this.o.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((err: unknown) => {
      if (timeout?.aborted) throw timedOut();
      if ((err as Error).name === 'AbortError') throw err;
      // Which API, and why: "fetch failed" alone says neither (issue 17).
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach the API at ${this.o.baseUrl} (${method} ${path}): ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
    });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let detail = text;
      try {
        detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
      } catch {}
      const message = `${method} ${path}: ${res.status} ${detail}`.trim();
      throw res.status === 410 ? new HistoryGone(410, message) : new ApiError(res.status, message);
    }
    return res;
  }

  /** PUT /v1/hosts/{name}: registers this host with its labels. */
  async register(labels: Record<string, string>, agentVersion?: string): Promise<void> {
    await (await this.call('PUT', `/v1/hosts/${encodeURIComponent(this.o.host)}`, { labels, ...(agentVersion ? { agentVersion: escapeControl(agentVersion) } : {}) })).text();
  }

  /** PUT /v1/hosts/{name}/status: the heartbeat. */
  async heartbeat(status: HostStatus): Promise<void> {
    await (await this.call('PUT', `/v1/hosts/${encodeURIComponent(this.o.host)}/status`, escapeStatusText(status))).text();
  }

  /** Whether the budgets stream follows the API now (a copy). */
  connection(): ApiConnection {
    return { ...this.conn };
  }

  private setConnected(connected: boolean, err?: Error): void {
    if (err) {
      this.conn.failures++;
      this.conn.lastError = err.message;
    }
    if (this.conn.connected !== connected) Object.assign(this.conn, { connected, sinceMs: Date.now() });
  }

  /** Every class for this host, page by page. The first page's revision is the watch's start: later changes are replayed, and replaying one is harmless. */
  async list(signal?: AbortSignal): Promise<Budgets> {
    let revision: number | undefined;
    const classes: ClassRecord[] = [];
    let after: string | null = null;
    do {
      const q = new URLSearchParams({ host: this.o.host, limit: String(PAGE), ...(after ? { after } : {}) });
      const page = (await (await this.call('GET', `/v1/classes?${q}`, undefined, signal)).json()) as { revision: number; items: ClassJson[]; next: string | null };
      revision ??= page.revision;
      classes.push(...page.items.map(classFromJson));
      after = page.next;
    } while (after);
    return { revision: revision!, classes };
  }

  /**
   * The class list for this host, emitted when the watch says it is caught up (`ready`) and after
   * every change from then on. Never errors: failures are retried with backoff, resuming from the
   * last revision seen; a 410 lists again. Unsubscribing closes the connection.
   */
  budgets$(): Observable<Budgets> {
    return new Observable<Budgets>((subscriber) => {
      const abort = new AbortController();
      const sleep = (ms: number) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, ms);
          abort.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
      let state: { revision: number; classes: Map<string, ClassRecord> } | undefined;
      const emit = () => subscriber.next({ revision: state!.revision, classes: [...state!.classes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) });

      const loop = async () => {
        let attempt = 0;
        while (!abort.signal.aborted) {
          try {
            if (state === undefined) {
              const listed = await this.list(abort.signal);
              state = { revision: listed.revision, classes: new Map(listed.classes.map((c) => [c.name, c])) };
            }
            await this.watch(state, abort.signal, () => {
              attempt = 0; // a connection that got as far as ready resets the backoff
              this.setConnected(true);
              this.o.onConnected?.(state!.revision);
              emit();
            }, emit);
            throw new Error('the watch stream ended');
          } catch (err) {
            if (abort.signal.aborted) return;
            if (err instanceof HistoryGone) state = undefined;
            const delay = err instanceof HistoryGone && attempt === 0 ? 0 : backoffDelay(attempt, this.backoff, this.o.random ?? Math.random);
            attempt++;
            this.setConnected(false, err as Error);
            this.o.onError?.(err as Error, delay);
            await sleep(delay);
          }
        }
      };
      void loop();
      return () => abort.abort();
    });
  }

  /** One watch connection from state.revision; applies events to `state` until it fails or ends. */
  private async watch(state: { revision: number; classes: Map<string, ClassRecord> }, signal: AbortSignal, onReady: () => void, onChange: () => void): Promise<void> {
    const connection = new AbortController();
    const stop = () => connection.abort();
    signal.addEventListener('abort', stop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const pacing = new EmitPacing(onChange);
    const idleMs = this.o.idleTimeoutMs ?? 60_000;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(stop, idleMs);
    };
    try {
      touch();
      // Last-Event-ID, as a browser's EventSource would resume: the API replays everything after it.
      const res = await this.call('GET', '/v1/watch', undefined, connection.signal, { accept: 'text/event-stream', 'last-event-id': String(state.revision) }, true);
      let live = false;
      let failure: Error | undefined;
      const parser = createParser({
        onEvent: (e) => {
          if (e.event === 'ready') {
            live = true;
            onReady();
          } else if (e.event === 'class') {
            const ev = JSON.parse(e.data) as ClassEvent;
            if (ev.revision <= state.revision) return;
            if (ev.class === null) state.classes.delete(ev.name);
            else state.classes.set(ev.name, classFromJson(ev.class));
            state.revision = ev.revision;
            if (live) pacing.request();
          }
        },
        onError: (err) => (failure = err),
      });
      const decoder = new TextDecoder();
      const reader = res.body!.getReader();
      // Ends the pending read when the connection is given up (idle, or the agent stops).
      connection.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}), { once: true });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        touch();
        parser.feed(decoder.decode(value, { stream: true }));
        if (failure) throw failure;
      }
      if (connection.signal.aborted && !signal.aborted) throw new Error(`no data from the watch for ${idleMs} ms`);
    } catch (err) {
      if (connection.signal.aborted && !signal.aborted && !(err instanceof ApiError)) throw new Error(`no data from the watch for ${idleMs} ms`);
      throw err;
    } finally {
      clearTimeout(idle);
      // Events read but not emitted yet: emitted now, unless the subscriber is gone.
      if (signal.aborted) pacing.cancel();
      else pacing.flush();
      signal.removeEventListener('abort', stop);
      connection.abort();
    }
  }
}
