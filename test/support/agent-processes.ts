/**
 * Child processes for the agent's kernel tests: the API (`pacer api`) on a fixed port, so it can
 * be killed and come back at the same URL on the same DB file, and the agent (`pacer agent`),
 * whose pino log lines are kept for assertions and for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { CLI } from './api-process.js';

export { CLI, startApiChild, killed, type ApiChild } from './api-process.js';

/** A port nobody listens on right now (the kernel picks it; we close and reuse the number). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject).listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a line of output is a JSON object: a pino line in the JSON log format (not the pretty one). */
export function isJsonLine(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null;
  } catch {
    return false;
  }
}

/** One line of the agent's pino log. */
export interface AgentLogLine {
  level: number;
  msg: string;
  time: number;
  [k: string]: unknown;
}

export class AgentChild {
  readonly lines: AgentLogLine[] = [];
  private raw = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        this.raw += line + '\n';
        try {
          this.lines.push(JSON.parse(line) as AgentLogLine);
        } catch {
          // not a log line (should not happen); kept in raw for the failure message
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.raw += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines of output, for failure messages. */
  tail(n = 30): string {
    return this.raw.split('\n').slice(-n).join('\n');
  }

  /** The first log line with this message (and matching fields) logged from index `from` on. */
  find(msg: string, from = 0, match: (l: AgentLogLine) => boolean = () => true): AgentLogLine | undefined {
    return this.lines.slice(from).find((l) => l.msg === msg && match(l));
  }
}

/** `wrapper`: a command the agent runs under (e.g. unshare into a mount namespace of its own); it must exec its arguments. */
export function startAgentChild(args: readonly string[], token: string, wrapper: readonly string[] = []): AgentChild {
  const command = [...wrapper, process.execPath, CLI, 'agent', ...args];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, PACER_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new AgentChild(child);
}

/** Polls f every `everyMs` until it returns something other than undefined; throws after `ms`. */
export async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 5000, everyMs = 5): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
