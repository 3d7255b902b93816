/** `pacer api`: serve the API on its embedded SQLite store. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger, LOG_FORMAT_HELP, LOG_FORMATS, type LogFormat } from './logger.js';
import { DEFAULT_LIMITS, serve } from '../server.js';
import { DEFAULT_AUTH_FAILURE_BUDGET } from '../app.js';
import { DEFAULT_WATCH_LIMITS } from '../routes/watch.js';

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError('expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0 picks a free one)');
  return { host: m[1] ?? m[2]!, port };
}

function positiveInt(what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return Number(value);
  };
}

interface ServeFlags {
  listen: { host: string; port: number };
  db: string;
  history: number;
  staleAfter: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
  authFailureBudget: number;
  watchPerToken: number;
  watchMax: number;
  watchSlowBytes: number;
  logFormat?: LogFormat;
}

export function apiCommand(): Command {
  return new Command('api')
    .description('serve the budgets API (REST + watch stream) on an SQLite file')
    .option('--listen <host:port>', 'address to listen on', parseListen, parseListen('127.0.0.1:8080'))
    .option('--db <file>', 'SQLite store file (created if missing)', 'pacer.db')
    .option('--history <revisions>', 'revisions of history kept for watch resume and audit', positiveInt('--history'), 100_000)
    .option('--stale-after <seconds>', 'a host without heartbeat for this long is stale', positiveInt('--stale-after'), 30)
    .option('--headers-timeout <seconds>', 'a client must send its request headers within this long (408 and closed otherwise)', positiveInt('--headers-timeout'), DEFAULT_LIMITS.headersTimeoutMs / 1000)
    .option('--request-timeout <seconds>', 'a client must send its whole request within this long; a watch stream, once open, is not cut by it', positiveInt('--request-timeout'), DEFAULT_LIMITS.requestTimeoutMs / 1000)
    .option('--keep-alive-timeout <seconds>', 'an idle keep-alive connection is closed after this long', positiveInt('--keep-alive-timeout'), DEFAULT_LIMITS.keepAliveTimeoutMs / 1000)
    .option('--max-connections <n>', 'connections beyond this many at once are closed on arrival; each agent holds one for its watch stream', positiveInt('--max-connections'), DEFAULT_LIMITS.maxConnections)
    .option('--auth-failure-budget <failures>', 'failed authentications per minute, from all addresses together, before only tokens already in use are let in (429 for the rest)', positiveInt('--auth-failure-budget'), DEFAULT_AUTH_FAILURE_BUDGET)
    .option('--watch-per-token <streams>', 'open watch streams one token may hold (one more is 429)', positiveInt('--watch-per-token'), DEFAULT_WATCH_LIMITS.perToken)
    .option('--watch-max <streams>', 'open watch streams in all (one more is 503)', positiveInt('--watch-max'), DEFAULT_WATCH_LIMITS.total)
    .option('--watch-slow-bytes <bytes>', 'a watch client this far behind is disconnected (it resumes from the store)', positiveInt('--watch-slow-bytes'), DEFAULT_WATCH_LIMITS.slowClientBytes)
    .addOption(new Option('--log-format <format>', LOG_FORMAT_HELP).choices(LOG_FORMATS).env('PACER_LOG_FORMAT'))
    .addHelpText('after', '\nThe first start prints an admin token once; set PACER_ADMIN_TOKEN to choose it instead.')
    .action(async (opts: ServeFlags) => {
      const logger = createLogger({ name: 'pacer-api' }, opts.logFormat);
      const api = await serve({
        host: opts.listen.host,
        port: opts.listen.port,
        dbFile: opts.db,
        historyLimit: opts.history,
        staleAfterMs: opts.staleAfter * 1000,
        limits: {
          headersTimeoutMs: opts.headersTimeout * 1000,
          requestTimeoutMs: opts.requestTimeout * 1000,
          keepAliveTimeoutMs: opts.keepAliveTimeout * 1000,
          maxConnections: opts.maxConnections,
        },
        authFailureBudget: { failures: opts.authFailureBudget },
        watchLimits: { perToken: opts.watchPerToken, total: opts.watchMax, slowClientBytes: opts.watchSlowBytes },
        adminToken: process.env.PACER_ADMIN_TOKEN,
        logger,
      });
      // Before saying it listens: a supervisor may stop it as soon as it reads that.
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down');
        api.close().then(
          () => process.exit(0),
          (err) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      process.stdout.write(`pacer api listening on ${api.url} (store: ${opts.db})\n`);
      if (api.newAdminToken) {
        process.stdout.write(
          `\nFirst start: an admin token was created. It is shown only now; keep it:\n\n  export PACER_TOKEN=${api.newAdminToken}\n\n` +
            `Then try:  pacer class set web --rate 2gbit --ceil 5gbit --dst 10.0.0.0/8 --api ${api.url}\n\n`,
        );
      } else {
        process.stdout.write('Use an existing token (PACER_TOKEN); an admin creates more with `pacer token create`.\n');
      }
    });
}
