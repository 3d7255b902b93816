/**
 * `pacer class ls|get|set|rm`: traffic classes, tc style.
 *
 *   pacer class set web --rate 2gbit --ceil 5gbit --dst 10.0.0.0/8
 *
 *   pacer class get web --json > web.json; $EDITOR web.json; pacer class set -f web.json
 *
 * Units are passed to the API as typed; the API validates them and names the offending field,
 * and its warnings about likely mistakes (a rate in a bytes unit spelled like bits…) are
 * printed on stderr.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ClassJson } from '../contract/class.js';
import type { FieldError } from '../contract/problem.js';
import { ApiProblemError, CliError, PacerClient, seg, withGlobalOptions, type GlobalOptions } from './client.js';
import { NONE, keyValues, labelsText, out, printJson, run, table, terminalText } from './output.js';
import { watchCommand } from './watch-command.js';

/** How often `set` re-reads and re-applies after someone else changed the class in between (412). */
const SET_RETRIES = 3;
const MATCH_SHOWN = 3;

/** What POST, PUT and PATCH answer: the class and the API's warnings about it (none from an API older than warnings). */
type WrittenJson = ClassJson & { warnings?: FieldError[] };

export interface ClassList {
  revision: number;
  items: ClassJson[];
  next: string | null;
}

// ---------------------------------------------------------------------------
// Option parsers
// ---------------------------------------------------------------------------

/** Decimal or 0x-hex integer (socket marks are often written in hex). */
function parseInteger(what: string, value: string): number {
  const t = value.trim();
  const n = /^\d+$/.test(t) ? Number(t) : /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t.slice(2), 16) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what} must be an integer, got ${JSON.stringify(value)}`);
  return n;
}

export function parseWeight(value: string): number {
  return parseInteger('--weight', value);
}

type Listed<T> = Array<T | 'none'>;

function collect<T>(parse: (v: string) => T) {
  return (value: string, previous: Listed<T> | undefined): Listed<T> => [
    ...(previous ?? []),
    value === 'none' ? 'none' : parse(value),
  ];
}

const collectMark = collect((v) => parseInteger('--mark', v));
const collectString = collect((v) => v);
const collectLabel = collect((v): [string, string] => {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE (e.g. zone=eu1), got ${JSON.stringify(v)}`);
  return [v.slice(0, eq), v.slice(eq + 1)];
});
const collectRaw = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** A list option: undefined when not given; [] for `none`; the values otherwise. */
function listOf<T>(flag: string, given: Listed<T> | undefined): T[] | undefined {
  if (given === undefined) return undefined;
  if (given.includes('none')) {
    if (given.length > 1) throw new CliError(`${flag} none empties the list; do not combine it with values`);
    return [];
  }
  return given as T[];
}

const noneToNull = (v: string | undefined): string | null | undefined => (v === 'none' ? null : v);

// ---------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------

function matchText(c: ClassJson): string {
  const parts = [
    ...c.match.marks.map((m) => `mark=${m}`),
    ...c.match.cgroups.map((g) => `cgroup=${g}`),
    ...c.match.dst.map((d) => `dst=${d}`),
  ];
  if (parts.length === 0) return NONE;
  if (parts.length <= MATCH_SHOWN) return parts.join(',');
  return `${parts.slice(0, MATCH_SHOWN).join(',')},+${parts.length - MATCH_SHOWN} more`;
}

function tcpText(c: ClassJson): string {
  if (c.tcp === null) return NONE;
  const parts: string[] = [];
  if (c.tcp.rtoMin) parts.push(`rto-min=${c.tcp.rtoMin.text}`);
  if (c.tcp.delackMax) parts.push(`delack-max=${c.tcp.delackMax.text}`);
  return parts.length ? parts.join(',') : NONE;
}

/** A class from an API older than ECN has no field: shown as none. */
const ecnText = (c: ClassJson): string => c.ecn?.threshold.text ?? NONE;

const listText = (list: ReadonlyArray<string | number>) => (list.length ? list.join(', ') : NONE);

export function classTable(items: ClassJson[]): string {
  return table(
    ['NAME', 'ID', 'RATE', 'CEIL', 'PARENT', 'MATCH', 'HOSTS', 'TCP', 'ECN', 'REVISION'],
    items.map((c) => [
      c.name,
      c.id,
      c.rate.text,
      c.ceil?.text ?? NONE,
      c.parent ?? NONE,
      matchText(c),
      labelsText(c.hosts.matchLabels, '<all>'),
      tcpText(c),
      ecnText(c),
      c.revision,
    ]),
  );
}

export function classDetails(c: ClassJson): string {
  return keyValues([
    ['Name', c.name],
    ['ID', c.id],
    ['Description', c.description || NONE],
    ['Rate', c.rate.text],
    ['Ceil', c.ceil ? c.ceil.text : `${NONE} (no borrowing: the rate is the limit)`],
    ['Burst', c.burst.text],
    ['Horizon', c.horizon.text],
    ['Parent', c.parent ?? NONE],
    ['Weight', c.weight],
    ['Match marks', listText(c.match.marks)],
    ['Match cgroups', listText(c.match.cgroups)],
    ['Match dst', listText(c.match.dst)],
    ['Host labels', labelsText(c.hosts.matchLabels, '<all hosts>')],
    ['TCP rto-min', c.tcp?.rtoMin?.text ?? NONE],
    ['TCP delack-max', c.tcp?.delackMax?.text ?? NONE],
    ['ECN threshold', c.ecn ? `${c.ecn.threshold.text} (CE on ECT packets that wait longer)` : `${NONE} (no CE marking)`],
    ['Revision', `${c.revision} (ETag ${c.etag})`],
    ['Created', `${c.createdAt} (revision ${c.createdRevision})`],
    ['Updated', c.updatedAt],
  ]);
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

export interface LsOptions extends GlobalOptions {
  label?: string[];
  host?: string;
}

/** Every page of GET /v1/classes, following `next`. The revision is the first page's: replaying a watch from it misses nothing. */
export async function listAll(client: PacerClient, o: LsOptions): Promise<ClassList> {
  const items: ClassJson[] = [];
  let revision: number | undefined;
  let after: string | null = null;
  do {
    const q = new URLSearchParams();
    for (const l of o.label ?? []) q.append('label', l);
    if (o.host !== undefined) q.set('host', o.host);
    if (after !== null) q.set('after', after);
    const query = q.toString();
    const page: ClassList = (await client.get<ClassList>(`/v1/classes${query ? `?${query}` : ''}`)).body;
    revision ??= page.revision;
    items.push(...page.items);
    if (page.next !== null && page.next === after) throw new CliError(`the API returned the same page twice (next=${page.next})`);
    after = page.next;
  } while (after !== null);
  return { revision: revision ?? 0, items, next: null };
}

function lsCommand(): Command {
  return withGlobalOptions(new Command('ls'))
    .alias('list')
    .description('list classes')
    .option('--label <key=value>', 'only classes that apply to a host with this label (repeatable)', collectRaw)
    .option('--host <name>', 'only classes that apply to this registered host')
    .action(
      run(async (o: LsOptions) => {
        const list = await listAll(PacerClient.fromOptions(o), o);
        if (o.json) return printJson(list);
        if (list.items.length === 0) {
          process.stderr.write('no classes found\n');
          return;
        }
        out(classTable(list.items));
      }),
    );
}

function getCommand(): Command {
  return withGlobalOptions(new Command('get'))
    .description('show one class with all its fields')
    .argument('<name>', 'class name')
    .action(
      run(async (name: string, o: GlobalOptions) => {
        const c = (await PacerClient.fromOptions(o).get<ClassJson>(`/v1/classes/${seg(name)}`)).body;
        if (o.json) return printJson(c);
        out(classDetails(c));
      }),
    );
}

interface RmOptions extends GlobalOptions {
  ifMatch?: string;
}

/** `7` → `"7"`; anything else (a quoted tag, `*`) as given. */
function etagFrom(value: string): string {
  return /^\d+$/.test(value.trim()) ? `"${value.trim()}"` : value.trim();
}

function rmCommand(): Command {
  return withGlobalOptions(new Command('rm'))
    .alias('delete')
    .description('delete a class (only if unchanged since it was read)')
    .argument('<name>', 'class name')
    .option('--if-match <etag>', 'delete only if the class is still at this ETag/revision (skips the read)')
    .action(
      run(async (name: string, o: RmOptions) => {
        const client = PacerClient.fromOptions(o);
        let etag: string;
        let current: ClassJson | undefined;
        if (o.ifMatch !== undefined) {
          etag = etagFrom(o.ifMatch);
        } else {
          const got = await client.get<ClassJson>(`/v1/classes/${seg(name)}`);
          current = got.body;
          etag = got.headers.get('etag') ?? current.etag;
        }
        await client.request('DELETE', `/v1/classes/${seg(name)}`, { headers: { 'if-match': etag } });
        if (o.json) return printJson({ name, deleted: true, etag, ...(current ? { id: current.id } : {}) });
        out(current ? `deleted class ${name} (id ${current.id}, was revision ${current.revision})` : `deleted class ${name}`);
      }),
    );
}

interface SetOptions extends GlobalOptions {
  file?: string;
  rate?: string;
  ceil?: string;
  burst?: string;
  horizon?: string;
  parent?: string;
  weight?: number;
  mark?: Listed<number>;
  cgroup?: Listed<string>;
  dst?: Listed<string>;
  hostLabel?: Listed<[string, string]>;
  rtoMin?: string;
  delackMax?: string;
  ecnThreshold?: string;
  /** false when --no-tcp was given. */
  tcp: boolean;
  description?: string;
}

/**
 * The fields the user gave, as a create body (current undefined) or a JSON merge patch onto
 * `current`: only given fields; given lists replace the old list; `none` clears.
 */
export function classFields(o: SetOptions, current: ClassJson | undefined): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  if (o.description !== undefined) f.description = o.description;
  if (o.rate !== undefined) f.rate = o.rate;
  if (o.ceil !== undefined) f.ceil = noneToNull(o.ceil);
  if (o.burst !== undefined) f.burst = o.burst;
  if (o.horizon !== undefined) f.horizon = o.horizon;
  if (o.parent !== undefined) f.parent = noneToNull(o.parent);
  if (o.weight !== undefined) f.weight = o.weight;

  const match: Record<string, unknown> = {};
  const marks = listOf('--mark', o.mark);
  const cgroups = listOf('--cgroup', o.cgroup);
  const dst = listOf('--dst', o.dst);
  if (marks) match.marks = marks;
  if (cgroups) match.cgroups = cgroups;
  if (dst) match.dst = dst;
  if (Object.keys(match).length) f.match = match;

  const labels = listOf('--host-label', o.hostLabel);
  if (labels) {
    const wanted: Record<string, string | null> = {};
    for (const [k, v] of labels) {
      if (k in wanted && wanted[k] !== v) throw new CliError(`--host-label ${k} is given twice with different values`);
      wanted[k] = v;
    }
    // A merge patch merges objects: remove the old labels that are not in the new set.
    for (const k of Object.keys(current?.hosts.matchLabels ?? {})) if (!(k in wanted)) wanted[k] = null;
    f.hosts = { matchLabels: wanted };
  }

  if (o.tcp === false) {
    f.tcp = null;
  } else if (o.rtoMin !== undefined || o.delackMax !== undefined) {
    const tcp: Record<string, string | null> = {};
    if (o.rtoMin !== undefined) tcp.rtoMin = noneToNull(o.rtoMin) ?? null;
    if (o.delackMax !== undefined) tcp.delackMax = noneToNull(o.delackMax) ?? null;
    if (!current) for (const k of Object.keys(tcp)) if (tcp[k] === null) delete tcp[k];
    // Removing the last TCP field removes the tuning (the API refuses an empty tcp object).
    const left = { ...Object.fromEntries(Object.entries(current?.tcp ?? {}).filter(([, v]) => v !== null && v !== undefined)), ...tcp };
    const remaining = Object.values(left).filter((v) => v !== null);
    if (current?.tcp && remaining.length === 0) f.tcp = null;
    else if (Object.keys(tcp).length) f.tcp = tcp;
  }
  // ecn has one field, so `none` removes the whole object (a merge patch's null).
  if (o.ecnThreshold !== undefined) f.ecn = o.ecnThreshold === 'none' ? null : { threshold: o.ecnThreshold };
  return f;
}

async function getOrUndefined(client: PacerClient, name: string): Promise<{ c: ClassJson; etag: string } | undefined> {
  try {
    const r = await client.get<ClassJson>(`/v1/classes/${seg(name)}`);
    return { c: r.body, etag: r.headers.get('etag') ?? r.body.etag };
  } catch (e) {
    if (e instanceof ApiProblemError && e.status === 404) return undefined;
    throw e;
  }
}

/** Someone else wrote the class between our read and our write: read again and re-apply. */
function lostRace(e: unknown, creating: boolean): boolean {
  if (!(e instanceof ApiProblemError)) return false;
  if (creating) return e.status === 409 && (e.problem.errors ?? []).some((x) => x.path === '/name' && /already exists/.test(x.message));
  return e.status === 412 || e.status === 404;
}

/** The field flags of `set`, by their option keys; `-f` replaces the whole class and takes none of them. */
const FIELD_OPTIONS = ['description', 'rate', 'ceil', 'burst', 'horizon', 'parent', 'weight', 'mark', 'cgroup', 'dst', 'hostLabel', 'rtoMin', 'delackMax', 'ecnThreshold'] as const;

/** The API's warnings, one per line on stderr, so --json output stays clean. */
function printWarnings(written: WrittenJson): void {
  for (const w of written.warnings ?? []) process.stderr.write(`${terminalText(`warning: ${w.message}`)}\n`);
}

function printWritten(action: 'created' | 'updated', result: WrittenJson, o: GlobalOptions): void {
  printWarnings(result);
  if (o.json) return printJson(result);
  out(`${action} class ${result.name} (id ${result.id}, revision ${result.revision})\n\n${classDetails(result)}`);
}

type Current = { c: ClassJson; etag: string };
type SetOutcome = { action: 'created' | 'updated'; result: WrittenJson };

/** Reads the class, then writes; after a lost race (someone else wrote in between) reads and writes again, up to SET_RETRIES times. */
async function readThenWrite(client: PacerClient, name: string, write: (current: Current | undefined) => Promise<SetOutcome>): Promise<SetOutcome> {
  for (let attempt = 0; ; attempt++) {
    const current = await getOrUndefined(client, name);
    try {
      return await write(current);
    } catch (e) {
      if (!lostRace(e, !current)) throw e;
      if (attempt >= SET_RETRIES) {
        throw new CliError(`class ${name} kept changing under concurrent writers; gave up after ${attempt + 1} attempts: ${(e as Error).message}`);
      }
    }
  }
}

const created = async (client: PacerClient, body: Record<string, unknown>): Promise<SetOutcome> => ({
  action: 'created',
  result: (await client.request<WrittenJson>('POST', '/v1/classes', { body })).body,
});

/** `set NAME --flag…`: create with the given fields, or merge-patch them onto the class. */
function setFields(client: PacerClient, name: string, o: SetOptions): Promise<SetOutcome> {
  return readThenWrite(client, name, async (current) => {
    const fields = classFields(o, current?.c);
    if (!current) {
      if (o.rate === undefined) throw new CliError(`class ${name} does not exist; creating it needs --rate (e.g. pacer class set ${name} --rate 100mbit)`);
      return created(client, { name, ...fields });
    }
    if (Object.keys(fields).length === 0) {
      throw new CliError(`nothing to change: give the fields to set, e.g. pacer class set ${name} --rate 2gbit (see pacer class set --help)`);
    }
    const headers = { 'if-match': current.etag };
    const result = (await client.request<WrittenJson>('PATCH', `/v1/classes/${seg(name)}`, { body: fields, contentType: 'application/merge-patch+json', headers })).body;
    return { action: 'updated', result };
  });
}

/** A class file: JSON or YAML (JSON is YAML), one object; `-` is stdin. YAML is loaded only here, so every other command starts without it. */
export async function readClassFile(path: string): Promise<Record<string, unknown>> {
  const file = path === '-' ? 'stdin' : path;
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new CliError(`${file} is not valid JSON or YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CliError(`${file} must hold one class as an object, like the output of pacer class get NAME --json`);
  }
  return value as Record<string, unknown>;
}

/**
 * `set [NAME] -f FILE`: the whole class from the file. A class that exists is replaced (PUT):
 * when the file holds a revision (it came from `class get --json`), that revision is the
 * If-Match, so an edit of a version someone has since changed is refused rather than undoing
 * their change; a file without one replaces whatever is there. A class that does not exist is
 * created (POST).
 */
async function setFromFile(client: PacerClient, nameArg: string | undefined, o: SetOptions): Promise<SetOutcome> {
  const file = o.file === '-' ? 'stdin' : o.file!;
  const flags = FIELD_OPTIONS.filter((k) => o[k] !== undefined).concat(o.tcp === false ? (['tcp'] as never[]) : []);
  if (flags.length > 0) throw new CliError(`-f replaces the whole class with the file; do not combine it with field flags (given: ${flags.join(', ')}); edit the file instead`);
  const body = await readClassFile(o.file!);
  const inFile = body.name;
  if (nameArg !== undefined && inFile !== undefined && inFile !== nameArg) {
    throw new CliError(`${file} describes class ${JSON.stringify(inFile)} but the command names ${nameArg}; a class cannot be renamed: fix one of them`);
  }
  const name = nameArg ?? inFile;
  if (typeof name !== 'string') throw new CliError(`${file} has no "name" field: give the class name, e.g. pacer class set web -f ${file}`);
  const read = typeof body.revision === 'number' ? `"${body.revision}"` : undefined;
  return readThenWrite(client, name, async (current) => {
    if (!current) return created(client, { ...body, name });
    try {
      const result = (await client.request<WrittenJson>('PUT', `/v1/classes/${seg(name)}`, { body: { ...body, name }, headers: { 'if-match': read ?? current.etag } })).body;
      return { action: 'updated', result };
    } catch (e) {
      // The file's own revision failed: someone changed the class after the file was read. Retrying would undo their change.
      if (read !== undefined && e instanceof ApiProblemError && e.status === 412) {
        throw new CliError(
          `class ${name} changed since ${file} was read: the file is at revision ${String(body.revision)}, the class at ${current.c.revision}.\n` +
            `Get it again (pacer class get ${name} --json) and redo the edit, or remove "revision" from the file to replace the class as it is now`,
        );
      }
      throw e;
    }
  });
}

function setCommand(): Command {
  return withGlobalOptions(new Command('set'))
    .description('create a class, or change only the given fields of an existing one; or, with -f, create or replace it whole from a file')
    .argument('[name]', 'class name: a-z, 0-9 and "-" (with -f, the file\'s "name" when not given)')
    .option('-f, --file <file>', 'the whole class from a JSON or YAML file, e.g. what pacer class get NAME --json prints ("-" = stdin); fields it leaves out take their defaults')
    .option('--rate <rate>', 'guaranteed rate, tc units: 2gbit, 500mbit, 100kbps (= kiloBYTES/s); needed to create')
    .option('--ceil <rate|none>', 'borrowing limit; none = no borrowing')
    .option('--burst <size|time>', 'idle credit spent at once: 64kb, 15000b or 1ms')
    .option('--horizon <duration>', 'longest a packet may wait before it is dropped: 200ms, 2s')
    .option('--parent <class|none>', 'parent class; none = a root class')
    .option('--weight <n>', 'weight, an integer from 1 to 1000', parseWeight)
    .option('--mark <n>', 'select sockets by mark, decimal or 0x hex (repeatable; replaces the list; none empties it)', collectMark)
    .option('--cgroup <path>', 'select sockets by cgroup v2 path (repeatable; replaces the list; none empties it)', collectString)
    .option('--dst <cidr>', 'select by destination prefix (repeatable; replaces the list; none empties it)', collectString)
    .option('--host-label <key=value>', 'apply only on hosts with these labels (repeatable; replaces the set; none = all hosts)', collectLabel)
    .option('--rto-min <duration|none>', 'TCP minimum retransmission timeout for sockets of this class')
    .option('--delack-max <duration|none>', 'TCP maximum delayed-ACK time for sockets of this class')
    .addOption(new Option('--no-tcp', 'remove the TCP tuning').conflicts(['rtoMin', 'delackMax']))
    .option('--ecn-threshold <duration|none>', 'mark CE on ECN-capable packets that wait longer than this (below the horizon): 1ms, 500us; none = no marking')
    .option('--description <text>', 'free text')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  pacer class set web --rate 2gbit --ceil 5gbit --dst 10.0.0.0/8\n' +
        '  pacer class set web --ceil none            # change one field, keep the others\n' +
        '  pacer class set bulk --rate 100mbit --parent web --mark 0x10 --mark 0x11\n' +
        '  pacer class set web --ecn-threshold 1ms    # ECN-capable TCP slows down before the horizon drops\n' +
        '  pacer class get web --json > web.json      # edit web.json, then:\n' +
        '  pacer class set -f web.json                # refused if web changed since web.json was read\n',
    )
    .action(
      run(async (nameArg: string | undefined, o: SetOptions) => {
        const client = PacerClient.fromOptions(o);
        if (o.file === undefined && nameArg === undefined) throw new CliError('class set needs a class name (pacer class set NAME --rate 2gbit), or a file (pacer class set -f FILE)');
        const { action, result } = o.file !== undefined ? await setFromFile(client, nameArg, o) : await setFields(client, nameArg!, o);
        printWritten(action, result, o);
      }),
    );
}

export function classCommand(): Command {
  return new Command('class')
    .description('traffic classes: list, show, create/change (tc units), delete, watch')
    .addCommand(lsCommand())
    .addCommand(getCommand())
    .addCommand(setCommand())
    .addCommand(rmCommand())
    .addCommand(watchCommand());
}
