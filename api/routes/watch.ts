/**
 * GET /v1/watch: Server-Sent Events of every class change after a revision.
 *
 * The client says where it is with Last-Event-ID (on reconnect) or ?since=; without either it
 * gets only changes from now on. A revision older than the history the store keeps, or newer
 * than the store has (the store was replaced), gets 410 Gone: the client must list the classes
 * again and watch from the list's revision.
 *
 * Order: subscribe to commits first, then replay history, then drain what arrived meanwhile, so
 * no change falls between replay and live. Each stream sends every revision once, in order.
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { Change, ClassEvent } from '../contract/change.js';
import { allow, CLASS_READERS } from '../http/auth.js';
import { parse, queryInteger } from '../http/validate.js';
import type { ApiMetrics } from '../http/metrics.js';
import { Gone } from '../errors.js';
import type { Store } from '../store/store.js';

const since = queryInteger(0);
const REPLAY_PAGE = 1000;
/** A client this far behind is cut off; it resumes with Last-Event-ID and reads from the store. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface WatchOptions {
  store: Store;
  metrics: ApiMetrics;
  heartbeatMs: number;
}

export class WatchStreams {
  private readonly open = new Set<Response>();
  /** Each change is serialized once, however many streams send it. */
  private readonly frames = new WeakMap<Change, string>();
  readonly router = Router();

  constructor(private readonly options: WatchOptions) {
    this.router.get('/', allow(...CLASS_READERS), (req, res) => this.serve(req.get('last-event-id') ?? req.query.since, res));
  }

  get size(): number {
    return this.open.size;
  }

  /** On shutdown: end every stream cleanly; clients reconnect with Last-Event-ID. */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  private frameOf(change: Change): string {
    let frame = this.frames.get(change);
    if (frame === undefined) {
      const event: ClassEvent = {
        revision: change.revision,
        action: change.action as ClassEvent['action'],
        name: change.name,
        class: change.after as ClassEvent['class'],
      };
      frame = `id: ${change.revision}\nevent: class\ndata: ${JSON.stringify(event)}\n\n`;
      this.frames.set(change, frame);
    }
    return frame;
  }

  private async serve(sinceParam: unknown, res: Response): Promise<void> {
    const { store, metrics, heartbeatMs } = this.options;
    const current = await store.revision();
    const from = sinceParam === undefined ? current : parse(since, sinceParam, 'revision (Last-Event-ID or ?since=)');
    const compacted = await store.compactedThrough();
    if (from < compacted) throw new Gone(`revision ${from} is older than the history kept (changes up to ${compacted} were compacted); list the classes again and watch from that list's revision`);
    if (from > current) throw new Gone(`revision ${from} is newer than this store's latest (${current}): the store was replaced; list the classes again`);

    let last = from;
    let live = false;
    const pending: Change[] = [];
    const send = (change: Change) => {
      if (change.revision <= last) return;
      last = change.revision;
      res.write(this.frameOf(change));
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
    };
    const unsubscribe = store.onCommit((change) => {
      if (change.kind !== 'class') return;
      if (live) send(change);
      else pending.push(change);
    });

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 2000\n\n');
    this.open.add(res);
    metrics.watchClients.set(this.open.size);
    const heartbeat = setInterval(() => res.write(`: heartbeat ${last}\n\n`), heartbeatMs);
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      this.open.delete(res);
      metrics.watchClients.set(this.open.size);
    });

    try {
      for (;;) {
        const page = await store.classChangesSince(last, REPLAY_PAGE);
        page.forEach(send);
        if (page.length < REPLAY_PAGE) break;
      }
      pending.splice(0).forEach(send);
      live = true;
      // Tells the client it has everything up to `last`: an agent can apply now.
      res.write(`event: ready\ndata: ${JSON.stringify({ revision: last })}\n\n`);
    } catch (err) {
      res.destroy(err as Error);
    }
  }
}
