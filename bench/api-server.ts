/**
 * The real pacer API, alone in its own process, for `npm run bench:api`.
 *
 * Env: PACER_BENCH_DB (SQLite file; the bench owns and removes its directory),
 * PACER_ADMIN_TOKEN (the fixed admin secret the load generator uses), and optionally
 * PACER_BENCH_REMOVE_DIR: a directory to remove after the store is closed, so the temporary
 * files go away even when the bench itself was SIGKILLed (this child then sees stdin close).
 * Prints the URL on stdout once listening.
 */
import { rmSync } from 'node:fs';
import pino from 'pino';
import { serve } from '../api/server.js';
import { runChild } from './child.js';

const dbFile = process.env.PACER_BENCH_DB;
const adminToken = process.env.PACER_ADMIN_TOKEN;
if (!dbFile || !adminToken) {
  process.stderr.write('api-server: set PACER_BENCH_DB and PACER_ADMIN_TOKEN\n');
  process.exit(2);
}

await runChild('api-server', async () => {
  const api = await serve({
    host: '127.0.0.1',
    port: 0,
    dbFile,
    adminToken,
    logger: pino({ level: 'silent' }),
    // The load generator authenticates from one address; never slow it down.
    authFailuresBeforeSlowdown: 1_000_000_000,
    // The fan-out's clients all use the one admin token.
    watchLimits: { perToken: 100_000, total: 100_000 },
  });
  return {
    url: api.url,
    close: async () => {
      await api.close();
      const dir = process.env.PACER_BENCH_REMOVE_DIR;
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
});
