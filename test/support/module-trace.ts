/**
 * Runs the `pacer` CLI in a child process and lists every module it imported (ESM resolution,
 * which also sees the CommonJS packages an ES module imports), for tests that check a command
 * loads only what it needs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from './api-process.js';

const HOOKS = fileURLToPath(new URL('./module-trace-hooks.js', import.meta.url));

/** The URLs of the modules `pacer ARGS` imported, and its exit code. */
export function modulesLoadedBy(args: readonly string[]): { urls: string[]; code: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'pacer-trace-'));
  const out = join(dir, 'modules');
  try {
    const register = `import { register } from 'node:module'; import { pathToFileURL } from 'node:url'; register(pathToFileURL(${JSON.stringify(HOOKS)}), { data: { out: ${JSON.stringify(out)} } });`;
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw r.error;
    return { urls: readFileSync(out, 'utf8').split('\n').filter(Boolean), code: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
