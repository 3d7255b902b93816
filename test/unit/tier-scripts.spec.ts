/**
 * Each `npm run test:TIER` runs only that tier. mocha merges a config file's `spec` with the
 * files given on its command line, so a `spec` in .mocharc once made every tier script run the
 * whole suite. Checked with mocha's --dry-run: it loads the files and lists the tests, running none.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MOCHA = join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** The mocha arguments of a script ("npm run build && mocha --timeout 600000 'dist/test/vm/*.spec.js'"). */
function mochaArgs(script: string): string[] {
  const command = script.split('&&').map((c) => c.trim()).find((c) => c.startsWith('mocha'));
  assert.ok(command, `no mocha command in "${script}"`);
  return command.split(/\s+/).slice(1).map((a) => a.replace(/^'(.*)'$/, '$1'));
}

/** The tier (folder under dist/test/) of every test the arguments select. */
function tiersOf(args: string[]): Set<string> {
  const out = execFileSync(process.execPath, [MOCHA, ...args, '--dry-run', '--reporter', 'json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  const report = JSON.parse(out) as { tests: { file: string }[] };
  assert.ok(report.tests.length > 0, `mocha ${args.join(' ')} selects no test`);
  return new Set(report.tests.map((t) => relative(join(ROOT, 'dist', 'test'), t.file).split(sep)[0]!));
}

/** The tier folders: every folder of test/ that holds specs. */
const TIER_FOLDERS = readdirSync(join(ROOT, 'test'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && readdirSync(join(ROOT, 'test', d.name)).some((f) => f.endsWith('.spec.ts')))
  .map((d) => d.name)
  .sort();

describe('npm test scripts', function () {
  this.timeout(60_000);
  const tiers = Object.keys(scripts).filter((k) => /^test:[a-z]+$/.test(k)).map((k) => k.slice('test:'.length));

  it('has a script for every tier folder, the kernel tier among them', function () {
    assert.ok(TIER_FOLDERS.includes('kernel'));
    for (const tier of TIER_FOLDERS) assert.ok(tiers.includes(tier), `no test:${tier}`);
  });

  for (const tier of TIER_FOLDERS) {
    it(`npm run test:${tier} selects only dist/test/${tier}`, function () {
      assert.deepEqual([...tiersOf(mochaArgs(scripts[`test:${tier}`]!))], [tier]);
    });
  }

  it('npm test selects every tier', function () {
    assert.deepEqual([...tiersOf(mochaArgs(scripts.test!))].sort(), TIER_FOLDERS);
  });
});
