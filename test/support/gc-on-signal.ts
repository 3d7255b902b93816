/**
 * Preloaded into an API child by the watch load test (`node --expose-gc --import` this file): a
 * SIGUSR2 runs a full garbage collection, so the test measures what the process keeps rather
 * than heap V8 has not yet given back.
 */
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
