/**
 * The log of the long-running commands, `pacer api` and `pacer agent`: pino's JSON lines (what log
 * shippers and the tests parse) unless stdout is a terminal, where a person reads it: then one
 * pino-pretty line per message. --log-format json|pretty forces either.
 *
 * pino-pretty is loaded only for a pretty log: no other command, and no JSON run, pays for it.
 */
import { createRequire } from 'node:module';
import pino, { type Logger, type LoggerOptions } from 'pino';
import type PinoPretty from 'pino-pretty';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const LOG_FORMAT_HELP = 'json (one JSON object a line) or pretty (for a person); default: pretty when stdout is a terminal, else json';

/** `format` undefined: pretty on a terminal, JSON otherwise. */
export function createLogger(options: LoggerOptions, format?: LogFormat, stdout: { isTTY?: boolean } = process.stdout): Logger {
  if ((format ?? (stdout.isTTY ? 'pretty' : 'json')) === 'json') return pino(options);
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  // sync: every line is out before process.exit (the agent exits right after its last message).
  // singleLine: a message's fields on its own line, so a tailed log stays one line per event.
  return pino(options, pretty({ sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}
