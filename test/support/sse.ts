/** A minimal SSE client over fetch for tests: collects events and comments, lets a test await them. */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseStream {
  status: number;
  events: EventSourceMessage[];
  comments: string[];
  /** Resolves when an event (or comment) satisfying `pred` has arrived. */
  waitFor(pred: (e: EventSourceMessage) => boolean, timeoutMs?: number): Promise<EventSourceMessage>;
  waitForComment(pred: (c: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openSse(url: string, token: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => waiters.forEach((w) => w());
  const parser = createParser({
    onEvent: (e) => {
      events.push(e);
      notify();
    },
    onComment: (c) => {
      comments.push(c);
      notify();
    },
  });
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch {
      // aborted by close(), or the server cut the stream
    }
  })();
  function wait<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; have events ${JSON.stringify(events.map((e) => [e.event, e.id]))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }
  return {
    status: res.status,
    events,
    comments,
    waitFor: (pred, timeoutMs = 5000) => wait(() => events.find(pred), timeoutMs, 'an event'),
    waitForComment: (pred, timeoutMs = 5000) => wait(() => comments.find(pred), timeoutMs, 'a comment'),
    ended,
    close: () => abort.abort(),
  };
}
