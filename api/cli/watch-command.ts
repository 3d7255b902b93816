/**
 * `pacer class watch`: follow class changes as they happen (the API's SSE stream). Reconnects with
 * Last-Event-ID after a dropped connection. When the API says the history it would need is gone
 * (410), it says where to continue from and exits non-zero: it never prints a history with a hole.
 */
import { Command, InvalidArgumentError } from 'commander';
import { createParser } from 'eventsource-parser';
import type { ClassEvent } from '../contract/change.js';
import { ApiProblemError, CliError, PacerClient, withGlobalOptions, type GlobalOptions } from './client.js';
import { fieldChanges } from './field-changes.js';
import { out, run, terminalText } from './output.js';

interface WatchOptions extends GlobalOptions {
  since?: number;
  untilReady?: boolean;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

function revision(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('a revision is a non-negative integer');
  return Number(value);
}

/**
 * One event as a line. An update says which fields changed when the class's previous state was
 * seen in this run (`seen`), else it shows the class's rate, ceil and parent as a creation does.
 */
function describe(e: ClassEvent, seen: Map<string, ClassEvent['class']>): string {
  const c = e.class;
  const before = seen.get(e.name);
  if (c) seen.set(e.name, c);
  else seen.delete(e.name);
  const changed = e.action === 'updated' && before ? fieldChanges(before, c).join('; ') || '(no field changed)' : '';
  const fields = changed || (c ? [`rate ${c.rate.text}`, c.ceil ? `ceil ${c.ceil.text}` : '', c.parent ? `parent ${c.parent}` : ''].filter(Boolean).join(' ') : '');
  return `revision ${e.revision}  ${e.action.padEnd(7)}  ${e.name}${fields ? `  ${fields}` : ''}`;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Streams events until the server ends the stream; `seen`: each class's last state, across reconnects. */
async function follow(client: PacerClient, from: number | undefined, o: WatchOptions, seen: Map<string, ClassEvent['class']>): Promise<{ last: number | undefined; ready: boolean }> {
  const query = from === undefined ? '' : `?since=${from}`;
  const res = await client.openStream(`/v1/watch${query}`);
  if (!res.ok) {
    const text = await res.text();
    let problem;
    try {
      problem = JSON.parse(text);
    } catch {
      problem = { type: 'about:blank', title: res.statusText, status: res.status, detail: text.slice(0, 200) };
    }
    throw new ApiProblemError(res.status, problem);
  }
  let last = from;
  let ready = false;
  const parser = createParser({
    onEvent: (ev) => {
      if (ev.event === 'class') {
        const data = JSON.parse(ev.data) as ClassEvent;
        last = data.revision;
        out(o.json ? JSON.stringify(data) : describe(data, seen));
      } else if (ev.event === 'ready') {
        ready = true;
        process.stderr.write(`caught up at revision ${JSON.parse(ev.data).revision}${o.untilReady ? '' : '; following changes (Ctrl-C to stop)'}\n`);
      }
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    if (ready && o.untilReady) break;
  }
  return { last, ready };
}

export function watchCommand(): Command {
  return withGlobalOptions(
    new Command('watch')
      .description('print class changes as they happen (from --since REVISION, else from now)')
      .option('--since <revision>', 'start after this revision (0 = the whole kept history)', revision)
      .option('--until-ready', 'exit once caught up, instead of following'),
  ).action(
    run(async (o: WatchOptions) => {
      const client = PacerClient.fromOptions(o);
      let from = o.since;
      let delay = RETRY_MIN_MS;
      const seen = new Map<string, ClassEvent['class']>();
      for (;;) {
        try {
          const { last, ready } = await follow(client, from, o, seen);
          from = last ?? from;
          if (ready && o.untilReady) return;
          delay = RETRY_MIN_MS;
          process.stderr.write('the API ended the stream; reconnecting\n');
        } catch (err) {
          if (err instanceof ApiProblemError && err.status === 410) {
            // The changes asked for are gone: skipping them silently would print a history with a
            // hole in it, and retrying cannot bring them back. Say so and stop.
            const list = await client.get<{ revision: number }>('/v1/classes?limit=1');
            throw new CliError(
              `the API no longer has the changes after revision ${from}: ${terminalText(err.problem.detail ?? 'the history was compacted')}\n` +
                `see the current state with \`pacer class ls\`, then follow from it with \`pacer class watch --since ${list.body.revision}\``,
            );
          }
          if (err instanceof ApiProblemError || o.untilReady) throw err;
          process.stderr.write(`connection lost (${(err as Error).message}); retrying in ${delay / 1000}s\n`);
        }
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }),
  );
}
