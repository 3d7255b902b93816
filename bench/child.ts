/**
 * Shared by the bench's server children (api-server.ts, hello-server.ts): print the URL the
 * server listens on as one line on stdout, then stop cleanly when the parent asks (SIGTERM,
 * SIGINT) or goes away (stdin closes, which also happens when the parent is SIGKILLed).
 * A clean exit matters: `node --cpu-prof` writes its profile only on a normal exit.
 * To run one by hand, keep its stdin open: `sleep 1d | PACER_BENCH_DB=... node dist/bench/api-server.js`.
 */
export async function runChild(name: string, start: () => Promise<{ url: string; close(): Promise<void> }>): Promise<void> {
  let server: { url: string; close(): Promise<void> } | undefined;
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    const exit = (code: number) => process.exit(code);
    // Never hang on shutdown: the parent SIGKILLs after a few seconds anyway.
    setTimeout(() => exit(0), 3_000).unref();
    (server ? server.close() : Promise.resolve()).then(
      () => exit(0),
      (err: unknown) => {
        process.stderr.write(`${name}: shutdown after ${why} failed: ${String(err)}\n`);
        exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('stdin closed')).on('error', () => stop('stdin error'));
  process.stdin.resume();
  try {
    server = await start();
  } catch (err) {
    process.stderr.write(`${name}: failed to start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
  if (stopping) {
    await server.close();
    return;
  }
  process.stdout.write(`${server.url}\n`);
}
