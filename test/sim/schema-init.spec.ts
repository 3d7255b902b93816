/** `pacer sim schema` (the JSON Schema of scenario files, committed and kept current) and `pacer sim init` (a template that runs). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { scenarioJsonSchema, scenarioJsonSchemaText } from '../../sim/scenario/json-schema.js';
import { loadScenario } from '../../sim/scenario/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '../../..');
const PACER = join(here, '../../api/cli/pacer.js');
const pacer = (...args: string[]) => spawnSync(process.execPath, [PACER, 'sim', ...args], { encoding: 'utf8' });

type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; required?: string[]; additionalProperties?: unknown; enum?: string[]; description?: string };

describe('pacer sim schema: a JSON Schema for scenario files, generated from the validator', () => {
  it('sim/scenario.schema.json is current (regenerate with `pacer sim schema --out sim/scenario.schema.json`)', () => {
    assert.equal(readFileSync(join(ROOT, 'sim/scenario.schema.json'), 'utf8'), scenarioJsonSchemaText());
    const p = pacer('schema');
    assert.equal(p.status, 0, p.stderr);
    assert.equal(p.stdout, scenarioJsonSchemaText());
  });

  it('says what the validator says: required sections, no unknown keys, enums, units described', () => {
    const s = scenarioJsonSchema() as JsonSchema;
    assert.deepEqual([...s.required!].sort(), ['duration', 'topology', 'workloads']);
    assert.equal(s.additionalProperties, false);
    const tcp = s.properties!.tcp!;
    assert.deepEqual(tcp.properties!.variant!.enum, ['newreno', 'cubic']);
    assert.equal(tcp.additionalProperties, false);
    assert.match(s.properties!.duration!.description!, /unit/);
    assert.match(s.properties!.topology!.properties!.switch!.properties!.buffer!.description!, /32,768 bytes/);
  });

  it('every example uses only the top-level keys the schema names', () => {
    const keys = Object.keys((scenarioJsonSchema() as JsonSchema).properties!);
    for (const f of readdirSync(join(ROOT, 'sim/examples')).filter((n) => n.endsWith('.yaml'))) {
      for (const k of Object.keys(parse(readFileSync(join(ROOT, 'sim/examples', f), 'utf8')))) assert.ok(keys.includes(k), `${f}: ${k}`);
    }
  });
});

describe('pacer sim init: a commented template that pacer sim run accepts', () => {
  it('writes FILE, which runs; a second init refuses to overwrite it and changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-sim-init-'));
    const file = join(dir, 'plan.yaml');
    const init = pacer('init', file);
    assert.equal(init.status, 0, init.stderr);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# yaml-language-server: \$schema=.*scenario\.schema\.json$/m);
    assert.ok(text.split('\n').filter((l) => /#/.test(l)).length >= 20, 'commented');
    const run = pacer('run', file, '--duration', '50ms', '--json', '--out', join(dir, 'out'));
    assert.equal(run.status, 0, run.stderr);
    const r = JSON.parse(run.stdout);
    assert.ok(r.classes.find((c: { name: string }) => c.name === 'gold').bytes > 0);
    assert.ok(r.classes.find((c: { name: string }) => c.name === 'silver').bytes > 0);
    const again = pacer('init', file);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /exists; pacer sim init never overwrites/);
    assert.equal(readFileSync(file, 'utf8'), text);
  });

  it('without FILE prints the template on stdout; it loads with no warning', () => {
    const p = pacer('init');
    assert.equal(p.status, 0, p.stderr);
    const s = loadScenario(p.stdout, 'template.yaml');
    assert.deepEqual(s.warnings, []);
    assert.deepEqual(s.classes.map((c) => c.spec.name), ['gold', 'silver']);
  });
});
