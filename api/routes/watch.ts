/**
 * GET /v1/watch: Server-Sent Events of every class change after a revision.
 *
 * The client says where it is with Last-Event-ID (on reconnect) or ?since=; without either it
 * gets only changes from now on. A revision older than the history the store keeps, or newer
 * than the store has (the store was replaced), gets 410 Gone: the client must list the classes
 * again and watch from the list's revision.
 *
 * Each stream is a cursor (the last revision it sent) and one of two modes:
 * - live: caught up and the socket takes writes, so a commit is written at once;
 * - catching up: a pump reads pages after the cursor (from the last RECENT changes kept in
 *   memory when they reach back far enough, else from the store) and writes with backpressure
 *   (it waits for 'drain' whenever the socket's buffer is full). A stream starts here, and goes
 *   back here whenever its socket's buffer fills, so the process never holds more than about one
 *   high-water mark (16 KiB) plus one event per stream, however slow the client.
 * A client that falls `slowClientBytes` of committed events behind is cut once: no more writes,
 * the socket destroyed. It resumes with Last-Event-ID and reads from the store.
 *
 * Caps: `perToken` open streams per token (one more is 429) and `total` in all (503). A
 * revoked token's streams are closed at the commit of the revocation (closeToken); an expired
 * token's at the first heartbeat after its expiry. Either way its client reconnects and gets 401.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { Change, ClassEvent } from '../contract/change.js';
import { allow, CLASS_READERS, hasExpired, principalOf } from '../http/auth.js';
import { parse, queryInteger } from '../http/validate.js';
import type { ApiMetrics } from '../http/metrics.js';
import { Gone, TooManyRequests, Unauthenticated, Unavailable } from '../errors.js';
import type { Store } from '../store/store.js';

const since = queryInteger(0);
/** Changes read from the store at once while catching up. */
const REPLAY_PAGE = 500;
/** Recent class changes kept in memory, so a stream briefly behind catches up without the store. */
const RECENT = 1024;
/** Seconds a refused client is told to wait. */
const RETRY_AFTER_S = '5';
/**
 * The most bytes of events a live stream is given in one write: about one socket high-water mark
 * (16 KiB), so a stream that stops reading holds no more than that in the process beyond what its
 * socket's buffer takes.
 */
const WRITE_CHUNK = 16 * 1024;

export interface WatchLimits {
  /** Open streams one token may hold; one more is refused with 429. */
  perToken: number;
  /** Open streams in all; one more is refused with 503. */
  total: number;
  /** A client this many bytes of committed events behind what it has taken is cut off. */
  slowClientBytes: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { perToken: 32, total: 10_000, slowClientBytes: 4 * 1024 * 1024 };

export interface WatchOptions {
  store: Store;
  metrics: ApiMetrics;
  heartbeatMs: number;
  limits?: Partial<WatchLimits>;
}

/** A class change as sent: its revision and its serialized SSE frame. */
interface Event {
  revision: number;
  frame: string;
}

/** Consecutive events of one commit batch, written to each live stream as one string. */
interface Chunk {
  events: Event[];
  /** Their frames, concatenated once for every stream. */
  text: string;
}

interface Watcher {
  res: Response;
  tokenId: string;
  /** The token's expiry (ISO 8601; null: never): the stream ends at the first heartbeat after it. */
  expiresAt: string | null;
  /** The last revision sent. */
  last: number;
  /** The newest class revision committed since the stream opened (0: none yet). */
  committed: number;
  /** Bytes of events committed while the stream was not live, not yet written (an estimate). */
  owed: number;
  /** The revision the stream opened at: events after it count towards `owed`. */
  opened: number;
  live: boolean;
  pumping: boolean;
  ready: boolean;
  closed: boolean;
  heartbeat: NodeJS.Timeout;
  /** Wakes a pump waiting for 'drain'. */
  wake: () => void;
}

export class WatchStreams {
  private readonly open = new Set<Watcher>();
  private readonly byToken = new Map<string, Set<Watcher>>();
  /** Tokens revoked while this process runs: a stream authenticated just before is refused. */
  private readonly revoked = new Set<string>();
  /** The latest class events, oldest first: every one after revision `recentFrom` (-1: none yet). */
  private readonly recent: Event[] = [];
  private recentFrom = -1;
  /** Events committed in this turn, sent to the streams together once the commit's listeners return (fanOut). */
  private batch: Event[] = [];
  private readonly limits: WatchLimits;
  readonly router = Router();

  constructor(private readonly options: WatchOptions) {
    this.limits = { ...DEFAULT_WATCH_LIMITS, ...options.limits };
    options.store.onCommit((change) => this.onCommit(change));
    this.router.get('/', allow(...CLASS_READERS), (req, res) => this.serve(req.get('last-event-id') ?? req.query.since, res));
  }

  get size(): number {
    return this.open.size;
  }

  /** On shutdown: end every stream cleanly; clients reconnect with Last-Event-ID. */
  closeAll(): void {
    for (const w of [...this.open]) this.end(w);
  }

  /** Ends every open stream of a revoked token. Its clients reconnect and get 401. */
  closeToken(tokenId: string): void {
    this.revoked.add(tokenId);
    for (const w of [...(this.byToken.get(tokenId) ?? [])]) this.end(w);
  }

  /** Each committed change is serialized once, however many streams send it. */
  private eventOf(change: Change): Event {
    const event: ClassEvent = {
      revision: change.revision,
      action: change.action as ClassEvent['action'],
      name: change.name,
      class: change.after as ClassEvent['class'],
    };
    return { revision: change.revision, frame: `id: ${change.revision}\nevent: class\ndata: ${JSON.stringify(event)}\n\n` };
  }

  private onCommit(change: Change): void {
    if (change.kind === 'token' && change.action === 'revoked') return this.closeToken(change.name);
    if (change.kind !== 'class') return;
    if (this.recentFrom < 0) this.recentFrom = change.revision - 1;
    const event = this.eventOf(change);
    this.recent.push(event);
    if (this.recent.length > RECENT) this.recentFrom = this.recent.shift()!.revision;
    for (const w of this.open) w.committed = change.revision;
    // The store publishes a group commit's changes one after the other in one turn: they go out
    // together, after the last one (a microtask: before anything else runs, the writers' answers included).
    if (this.batch.length === 0) queueMicrotask(() => this.fanOut());
    this.batch.push(event);
  }

  /**
   * Sends the turn's events to every stream: to a live one in writes of up to WRITE_CHUNK bytes,
   * each string made once for all streams (writing each event to each stream cost one write per
   * event and stream: with 300 streams that do not read, most of the API's time went there, and
   * /healthz waited behind it). What a stream cannot take now is owed: it catches up by its pump,
   * or is cut once it owes more than the slow-client limit.
   */
  private fanOut(): void {
    const events = this.batch;
    this.batch = [];
    const chunks: Chunk[] = [];
    let size = WRITE_CHUNK;
    for (const event of events) {
      if (size + event.frame.length > WRITE_CHUNK) chunks.push({ events: [], text: '' }), (size = 0);
      const c = chunks[chunks.length - 1]!;
      c.events.push(event);
      c.text += event.frame;
      size += event.frame.length;
    }
    for (const w of this.open) {
      let i = 0;
      if (w.live) for (; i < chunks.length && !w.res.writableNeedDrain; i++) this.writeChunk(w, chunks[i]!);
      if (i === chunks.length) continue;
      w.live = false;
      for (; i < chunks.length; i++) w.owed += chunks[i]!.text.length;
      if (w.owed > this.limits.slowClientBytes) this.cut(w);
      else if (!w.pumping) void this.pump(w);
    }
  }

  /** A chunk to a live stream: whole when all of it is new to the stream (almost always), else its new events one by one. */
  private writeChunk(w: Watcher, chunk: Chunk): void {
    if (chunk.events[0]!.revision <= w.last) {
      for (const event of chunk.events) this.write(w, event);
      return;
    }
    // Events up to `opened` were never owed (as in write).
    let paid = 0;
    for (const e of chunk.events) if (e.revision > w.opened) paid += e.frame.length;
    w.owed = Math.max(0, w.owed - paid);
    w.last = chunk.events[chunk.events.length - 1]!.revision;
    w.res.write(chunk.text);
  }

  private write(w: Watcher, { revision, frame }: Event): void {
    if (revision <= w.last) return;
    if (revision > w.opened) w.owed = Math.max(0, w.owed - frame.length);
    w.last = revision;
    w.res.write(frame);
  }

  private async serve(sinceParam: unknown, res: Response): Promise<void> {
    const { store, metrics, heartbeatMs } = this.options;
    const { tokenId, expiresAt } = principalOf(res);
    const current = await store.revision();
    const from = sinceParam === undefined ? current : parse(since, sinceParam, 'revision (Last-Event-ID or ?since=)');
    const compacted = await store.compactedThrough();
    if (from < compacted) throw new Gone(`revision ${from} is older than the history kept (changes up to ${compacted} were compacted); list the classes again and watch from that list's revision`);
    if (from > current) throw new Gone(`revision ${from} is newer than this store's latest (${current}): the store was replaced; list the classes again`);
    // From here to registration nothing awaits, so the checks and the count cannot race.
    if (this.revoked.has(tokenId)) throw new Unauthenticated('this token was revoked');
    const mine = this.byToken.get(tokenId) ?? new Set<Watcher>();
    if (mine.size >= this.limits.perToken) {
      metrics.watchRefused.inc({ cap: 'per_token' });
      throw new TooManyRequests(`this token already has ${mine.size} open watch streams, the most one token may hold (pacer api --watch-per-token); close one, or give each watcher its own token`, { 'Retry-After': RETRY_AFTER_S });
    }
    if (this.open.size >= this.limits.total) {
      metrics.watchRefused.inc({ cap: 'total' });
      throw new Unavailable(`the API holds ${this.open.size} watch streams, its limit (pacer api --watch-max); retry later or add capacity`, { 'Retry-After': RETRY_AFTER_S });
    }

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 2000\n\n');
    const w: Watcher = {
      res,
      tokenId,
      expiresAt,
      last: from,
      committed: 0,
      owed: 0,
      opened: current,
      live: false,
      pumping: false,
      ready: false,
      closed: false,
      heartbeat: setInterval(() => {
        if (hasExpired(w.expiresAt)) return this.end(w);
        // A blocked client needs no heartbeat: its connection is evidently open.
        if (!res.writableNeedDrain) res.write(`: heartbeat ${w.last}\n\n`);
      }, heartbeatMs),
      wake: () => {},
    };
    this.open.add(w);
    this.byToken.set(tokenId, mine.add(w));
    metrics.watchClients.set(this.open.size);
    res.on('close', () => this.forget(w));
    if (res.destroyed) return void this.forget(w); // the client left before the stream was registered
    await this.pump(w);
  }

  /**
   * Catches a stream up from the store, a page at a time, waiting for the socket to drain
   * between writes; makes it live once nothing newer was committed. One pump per stream.
   */
  private async pump(w: Watcher): Promise<void> {
    if (w.pumping || w.closed) return;
    w.pumping = true;
    const { store } = this.options;
    let stalls = 0;
    try {
      for (;;) {
        if (w.res.writableNeedDrain) await drained(w);
        if (w.closed) return;
        if (w.last < (await store.compactedThrough())) {
          // It fell behind the kept history: it reconnects with Last-Event-ID and gets 410.
          this.end(w);
          return;
        }
        const page = this.recentAfter(w.last) ?? (await store.classChangesSince(w.last, REPLAY_PAGE)).map((c) => this.eventOf(c));
        for (const event of page) {
          if (w.closed) return;
          this.write(w, event);
          if (w.res.writableNeedDrain) await drained(w);
        }
        if (w.closed) return;
        // A commit the store does not return: fail loudly rather than spin without I/O.
        stalls = page.length === 0 && w.committed > w.last ? stalls + 1 : 0;
        if (stalls > 3) throw new Error(`the store returns nothing after revision ${w.last}, yet revision ${w.committed} was committed`);
        if (page.length === REPLAY_PAGE || w.committed > w.last || w.res.writableNeedDrain) continue;
        w.live = true;
        w.owed = 0;
        if (!w.ready) {
          w.ready = true;
          // Tells the client it has everything up to `last`: an agent can apply now.
          w.res.write(`event: ready\ndata: ${JSON.stringify({ revision: w.last })}\n\n`);
        }
        return;
      }
    } catch (err) {
      this.forget(w);
      w.res.destroy(err as Error);
    } finally {
      w.pumping = false;
    }
  }

  /** The next page after `last` from memory; undefined when memory does not reach back that far. */
  private recentAfter(last: number): Event[] | undefined {
    if (this.recentFrom < 0 || last < this.recentFrom) return undefined;
    let lo = 0;
    let hi = this.recent.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.recent[mid]!.revision <= last) lo = mid + 1;
      else hi = mid;
    }
    return this.recent.slice(lo, lo + REPLAY_PAGE);
  }

  /** A slow client: stop writing at once and drop the connection, once. */
  private cut(w: Watcher): void {
    if (!this.forget(w)) return;
    this.options.metrics.watchSlowCuts.inc();
    w.res.destroy();
  }

  /** Ends a stream cleanly; one whose client does not read is dropped instead of waiting on it. */
  private end(w: Watcher): void {
    if (!this.forget(w)) return;
    if (w.res.writableNeedDrain) w.res.destroy();
    else w.res.end();
  }

  /** Stops all writing to a stream. False when it was already forgotten. */
  private forget(w: Watcher): boolean {
    if (w.closed) return false;
    w.closed = true;
    clearInterval(w.heartbeat);
    this.open.delete(w);
    const mine = this.byToken.get(w.tokenId);
    mine?.delete(w);
    if (mine?.size === 0) this.byToken.delete(w.tokenId);
    this.options.metrics.watchClients.set(this.open.size);
    w.wake(); // a pump waiting for 'drain' sees `closed`
    return true;
  }
}

/** Resolves when the stream's socket can take more, or the stream is closed. */
function drained(w: Watcher): Promise<void> {
  return new Promise((resolve) => {
    w.wake = () => {
      w.res.off('drain', w.wake);
      w.wake = () => {};
      resolve();
    };
    w.res.on('drain', w.wake);
  });
}
