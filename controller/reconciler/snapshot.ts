/**
 * The last-known-good snapshot: the last desired state that was applied, on disk, so a restarted
 * agent enforces it again before (or without) reaching the API. Written to a temporary file and
 * renamed over the old one, so a crash mid-write leaves the previous snapshot, never half of one.
 * Maps and bigints (cgroup ids) are tagged in the JSON so they come back as they were.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

const replacer = (_key: string, v: unknown) =>
  v instanceof Map ? { $map: [...v.entries()] } : typeof v === 'bigint' ? { $bigint: v.toString() } : v;

const reviver = (_key: string, v: unknown) => {
  if (v !== null && typeof v === 'object') {
    if ('$map' in v) return new Map((v as { $map: [unknown, unknown][] }).$map);
    if ('$bigint' in v) return BigInt((v as { $bigint: string }).$bigint);
  }
  return v;
};

export function writeSnapshot(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(value, replacer));
    renameSync(tmp, file);
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
  }
}

/** undefined when there is none; a corrupt file is an error (the caller logs it and starts empty). */
export function readSnapshot<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8'), reviver) as T;
}
