/**
 * Unit parsing and formatting for pacer: rates, sizes, durations and bursts,
 * written the way Linux `tc` (iproute2) writes them.
 *
 * Every accepted string means exactly what it means to `tc`; pacer is only
 * stricter (it rejects some spellings `tc` tolerates). The conventions come
 * from iproute2's tc/tc_util.c (`get_rate64` with its `suffixes[]` table,
 * `get_size`) and `get_time` / `get_time64` (tc/tc_util.c in older releases,
 * lib/utils.c in newer ones). `tc` compares units with strcasecmp(3), so all
 * units are case-insensitive, ASCII-only ("KBPS" == "kbps", but the Kelvin
 * sign U+212A is not a "k").
 *
 * THE BIT/BYTE TRAP. In a `tc` rate, a unit ending in "bit" counts BITS per
 * second and a unit ending in "bps" counts BYTES per second:
 *
 *   bit   = 1 bit/s           bps   = 1 BYTE/s  =  8 bit/s  (tc's "Bps")
 *   kbit  = 1000 bit/s        kbps  = 1000 BYTES/s = 8000 bit/s  ("KBps")
 *   mbit  = 10^6 bit/s        mbps  = 10^6 BYTES/s = 8 * 10^6 bit/s
 *   gbit, tbit likewise       gbps, tbps likewise
 *   kibit = 1024 bit/s        kibps = 1024 BYTES/s = 8192 bit/s ("KiBps")
 *   mibit, gibit, tibit       mibps, gibps, tibps   (powers of 1024)
 *
 * So "100kbps" is 800 kbit/s, not 100 kbit/s, and a bare number is bit/s.
 * There is no one-letter rate unit ("5m" is an error, not 5 Mbit/s).
 *
 * Sizes (`get_size`) are different again and always binary: a bare number or
 * "b" is bytes, "k"/"kb" = 1024 bytes, "m"/"mb" = 1024^2, "g"/"gb" = 1024^3,
 * and "kbit"/"mbit"/"gbit" are 1024/1024^2/1024^3 BITS (128, 131072 and
 * 134217728 bytes) - unlike the rate "kbit", which is 1000 bits.
 *
 * Times: "s"/"sec"/"secs", "ms"/"msec"/"msecs", "us"/"usec"/"usecs" and (from
 * get_time64) "ns"/"nsec"/"nsecs". `tc`'s get_time reads a bare number as
 * microseconds (get_time64 as nanoseconds); pacer refuses bare durations.
 *
 * Where pacer is stricter than `tc` (whose strtod() accepts all of these):
 * no leading/trailing whitespace, no whitespace between number and unit,
 * no sign ("+" or "-"), no exponent ("1e9"), no hex ("0x10"), no "inf"/"nan".
 * Arithmetic is exact (BigInt, never floating point) and the result must be a
 * whole number of the base unit (bit/s, bytes, ns) no larger than
 * Number.MAX_SAFE_INTEGER. (`tc` itself then truncates rates to bytes/s and
 * stores get_size/get_time results in 32 bits; pacer keeps bits/s and
 * 53-bit integers.)
 *
 * Formatting always produces the shortest exact lower-case form
 * (`^[0-9]+[a-z]+$`) that parses back to the same value.
 *
 * This module imports nothing (not even Node built-ins).
 */

/** Thrown for any unparseable or out-of-range quantity. message says what was given, what was understood (if anything), and what would be accepted. */
export class UnitError extends Error {
  /** The input as given (numbers converted with String()). */
  readonly input: string;
  /**
   * `negative` and `too large`: a well-formed quantity outside what this module can hold. A field
   * with a narrower range (a class's rate) says its own range instead of this module's.
   */
  readonly reason: 'negative' | 'too large' | 'invalid';

  constructor(message: string, input: string, reason: UnitError['reason'] = 'invalid') {
    super(message);
    this.name = 'UnitError';
    this.input = input;
    this.reason = reason;
  }
}

/** Burst may be a size ({ bytes }) or a duration ({ ns }). */
export type Burst = { bytes: number } | { ns: number };

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** strcasecmp(3) folds ASCII only; String.prototype.toLowerCase would also fold e.g. U+212A KELVIN SIGN to "k". */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** Quote an input for an error message: printable ASCII in single quotes, anything else JSON-escaped; long inputs shortened. */
function q(s: string): string {
  const short = s.length > 80 ? `${s.slice(0, 80)}...` : s;
  return /^[\x20-\x7e]*$/.test(short) ? `'${short}'` : JSON.stringify(short);
}

/** Exact decimal rendering of n / 10^scale. */
function decimal(n: bigint, scale: number): string {
  const s = n.toString().padStart(scale + 1, '0');
  const int = s.slice(0, s.length - scale);
  const frac = s.slice(s.length - scale).replace(/0+$/, '');
  return frac === '' ? int : `${int}.${frac}`;
}

function describe(x: unknown): string {
  try {
    return String(x);
  } catch {
    return `[${typeof x}]`;
  }
}

interface Kind {
  /** "rate", "size", "duration". */
  readonly noun: string;
  /** Unit of the result, for messages: "bit/s", "bytes", "ns". */
  readonly base: string;
  /** "a whole number of bits/s". */
  readonly whole: string;
  /** A valid example, e.g. "100mbit". */
  readonly example: string;
  /** Human description of every accepted unit. */
  readonly accepted: string;
  /** Lower-case unit -> multiplier to the base unit. */
  readonly units: ReadonlyMap<string, bigint>;
  /** Best guess at what an unknown unit was meant to be. */
  readonly hint: (lowerUnit: string) => string | undefined;
  /** Largest accepted result. */
  readonly max: bigint;
  readonly maxText: string;
}

// ---------------------------------------------------------------------------
// Unit tables (tc/tc_util.c)
// ---------------------------------------------------------------------------

const K2 = 1024n;

/** tc_util.c suffixes[] (used by get_rate/get_rate64), scaled to bits/s. */
const RATE_UNITS: ReadonlyMap<string, bigint> = new Map<string, bigint>([
  ['bit', 1n],
  ['kibit', K2],
  ['kbit', 1000n],
  ['mibit', K2 ** 2n],
  ['mbit', 1000n ** 2n],
  ['gibit', K2 ** 3n],
  ['gbit', 1000n ** 3n],
  ['tibit', K2 ** 4n],
  ['tbit', 1000n ** 4n],
  ['bps', 8n],
  ['kibps', 8n * K2],
  ['kbps', 8n * 1000n],
  ['mibps', 8n * K2 ** 2n],
  ['mbps', 8n * 1000n ** 2n],
  ['gibps', 8n * K2 ** 3n],
  ['gbps', 8n * 1000n ** 3n],
  ['tibps', 8n * K2 ** 4n],
  ['tbps', 8n * 1000n ** 4n],
]);

/** tc_util.c get_size(), in bytes. */
const SIZE_UNITS: ReadonlyMap<string, bigint> = new Map<string, bigint>([
  ['b', 1n],
  ['k', K2],
  ['kb', K2],
  ['m', K2 ** 2n],
  ['mb', K2 ** 2n],
  ['g', K2 ** 3n],
  ['gb', K2 ** 3n],
  ['kbit', K2 / 8n],
  ['mbit', K2 ** 2n / 8n],
  ['gbit', K2 ** 3n / 8n],
]);

/** get_time64() (lib/utils.c), in nanoseconds; get_time() has the same names minus ns. */
const TIME_UNITS: ReadonlyMap<string, bigint> = new Map<string, bigint>([
  ['ns', 1n],
  ['nsec', 1n],
  ['nsecs', 1n],
  ['us', 1000n],
  ['usec', 1000n],
  ['usecs', 1000n],
  ['ms', 1000n ** 2n],
  ['msec', 1000n ** 2n],
  ['msecs', 1000n ** 2n],
  ['s', 1000n ** 3n],
  ['sec', 1000n ** 3n],
  ['secs', 1000n ** 3n],
]);

const DECIMAL_NAMES: Readonly<Record<string, string>> = { k: 'kilo', m: 'mega', g: 'giga', t: 'tera' };
const BINARY_NAMES: Readonly<Record<string, string>> = { k: 'kibi', m: 'mebi', g: 'gibi', t: 'tebi' };

function rateHint(u: string): string | undefined {
  const m = /^([kmgt])(i?)/.exec(u);
  if (m) {
    const p = m[1] ?? '';
    const i = m[2] ?? '';
    const name = (i ? BINARY_NAMES : DECIMAL_NAMES)[p] ?? '';
    return `use ${p}${i}bit (${name}bits/s) or ${p}${i}bps (${name}bytes/s, as tc reads it)`;
  }
  if (u.startsWith('b')) return 'use bit (bits/s) or bps (bytes/s, as tc reads it)';
  if (u.startsWith('%')) return 'percentages of the link speed are not supported; give an absolute rate such as 100mbit';
  return undefined;
}

function sizeHint(u: string): string | undefined {
  if (/^t/.test(u)) return 'tc has no terabyte size unit; use gb (e.g. 1024gb)';
  if (/^bytes?$/.test(u)) return 'use b (bytes)';
  if (/^bits?$/.test(u)) {
    return 'tc sizes have no plain bit unit; use b (bytes), or kbit/mbit/gbit (1024/1048576/1073741824 bits)';
  }
  const bits = /^([kmg])i?bits?$/.exec(u);
  if (bits) {
    const p = bits[1] ?? '';
    return `use ${p}bit (in tc sizes ${p}bit already means ${p === 'k' ? '1024' : p === 'm' ? '1048576' : '1073741824'} bits)`;
  }
  const bytes = /^([kmg])i?(b|byte|bytes)?$/.exec(u);
  if (bytes) {
    const p = bytes[1] ?? '';
    return `use ${p}b (in tc sizes ${p}b already means ${p === 'k' ? '1024' : p === 'm' ? '1048576' : '1073741824'} bytes)`;
  }
  if (TIME_UNITS.has(u)) return `'${u}' is a time unit, not a size`;
  if (RATE_UNITS.has(u)) return `'${u}' is a rate unit, not a size`;
  return undefined;
}

function timeHint(u: string): string | undefined {
  if (/^(m|mins?|minutes?|h|hrs?|hours?|d|days?)$/.test(u)) {
    return 'tc has no minute, hour or day units; use s (e.g. 60s for one minute), or ms for milliseconds';
  }
  if (/^(\u00b5|\u03bc)s/.test(u) || /^micro/.test(u)) return 'use us (microseconds)';
  if (/^nano/.test(u)) return 'use ns (nanoseconds)';
  if (/^milli/.test(u)) return 'use ms (milliseconds)';
  if (/^seconds?$/.test(u)) return 'use s (seconds)';
  return undefined;
}

const RATE: Kind = {
  noun: 'rate',
  base: 'bit/s',
  whole: 'a whole number of bits/s',
  example: '100mbit',
  accepted:
    'tc rate units (case-insensitive) are bit kbit mbit gbit tbit (bits/s, powers of 1000), ' +
    'kibit mibit gibit tibit (bits/s, powers of 1024), ' +
    'bps kbps mbps gbps tbps (BYTES/s, powers of 1000), kibps mibps gibps tibps (BYTES/s, powers of 1024); ' +
    'a bare number is bits/s',
  units: RATE_UNITS,
  hint: rateHint,
  max: MAX,
  maxText: `${MAX} bit/s (Number.MAX_SAFE_INTEGER)`,
};

const SIZE: Kind = {
  noun: 'size',
  base: 'bytes',
  whole: 'a whole number of bytes',
  example: '64kb',
  accepted:
    'tc size units (case-insensitive) are b or a bare number (bytes), k or kb (1024 bytes), ' +
    'm or mb (1048576 bytes), g or gb (1073741824 bytes), ' +
    'kbit (1024 bits = 128 bytes), mbit (131072 bytes), gbit (134217728 bytes)',
  units: SIZE_UNITS,
  hint: sizeHint,
  max: MAX,
  maxText: `${MAX} bytes (Number.MAX_SAFE_INTEGER)`,
};

const DURATION: Kind = {
  noun: 'duration',
  base: 'ns',
  whole: 'a whole number of nanoseconds',
  example: '10ms',
  accepted:
    'tc time units (case-insensitive) are ns/nsec/nsecs, us/usec/usecs, ms/msec/msecs, s/sec/secs',
  units: TIME_UNITS,
  hint: timeHint,
  max: MAX,
  maxText: `${MAX} ns (Number.MAX_SAFE_INTEGER)`,
};

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

interface Lexed {
  /** Integer digits (may be empty when the number starts with "."). */
  readonly int: string;
  /** Fraction digits (may be empty). */
  readonly frac: string;
  /** Everything after the number, as given. */
  readonly unit: string;
}

const NUMBER_PREFIX = /^([+-]?)([0-9]*)(?:\.([0-9]*))?/;

/** Split "1.5mbit" into number and unit, rejecting everything pacer is stricter about than strtod(). */
function lex(kind: Kind, input: string): Lexed {
  const { noun, example } = kind;
  if (input === '') {
    throw new UnitError(`empty ${noun}: expected a decimal number and a unit, e.g. '${example}'; ${kind.accepted}`, input);
  }
  if (/^\s|\s$/.test(input)) {
    throw new UnitError(
      `${noun} ${q(input)} has leading or trailing whitespace, which is not accepted; write ${q(input.trim())}`,
      input,
    );
  }
  const m = NUMBER_PREFIX.exec(input);
  const sign = m?.[1] ?? '';
  const int = m?.[2] ?? '';
  const frac = m?.[3] ?? '';
  const unit = input.slice(m?.[0].length ?? 0);
  if (int === '' && frac === '') {
    if (/^[+-]?(nan|inf)/i.test(input)) {
      throw new UnitError(`${noun} ${q(input)} is not a number: NaN and infinity are not accepted; expected e.g. '${example}'`, input);
    }
    throw new UnitError(
      `${noun} ${q(input)} does not start with a number: expected a non-negative decimal number followed by a unit, e.g. '${example}'`,
      input,
    );
  }
  if (sign === '-') {
    throw new UnitError(`negative ${noun} ${q(input)} is not accepted: a ${noun} must be zero or more, e.g. '${example}'`, input, 'negative');
  }
  if (sign === '+') {
    throw new UnitError(`${noun} ${q(input)} has a '+' sign, which is not accepted; write ${q(input.slice(1))}`, input);
  }
  if (int === '0' && m?.[3] === undefined && /^[xX]/.test(unit)) {
    throw new UnitError(
      `hexadecimal ${noun} ${q(input)} is not accepted: write a decimal number followed by a unit, e.g. '${example}'`,
      input,
    );
  }
  if (/^[eE][+-]?[0-9]/.test(unit)) {
    throw new UnitError(
      `exponent notation in ${noun} ${q(input)} is not accepted: write the digits out or use a larger unit, e.g. '${example}'`,
      input,
    );
  }
  if (/^\s/.test(unit)) {
    const joined = input.slice(0, input.length - unit.length) + unit.trimStart();
    throw new UnitError(
      `whitespace between number and unit in ${noun} ${q(input)} is not accepted (tc does not accept it either); write ${q(joined)}`,
      input,
    );
  }
  return { int, frac, unit };
}

function unknownUnit(kind: Kind, unit: string, input: string): UnitError {
  const hint = kind.hint(asciiLower(unit));
  return new UnitError(
    `unknown ${kind.noun} unit ${q(unit)} in ${q(input)}: ${hint ? `${hint}; ` : ''}${kind.accepted}`,
    input,
  );
}

/** Exact value of int.frac * factor, checked to be whole and in range. */
function scale(kind: Kind, input: string, lexed: Lexed, factor: bigint): number {
  const digits = BigInt(`${lexed.int}${lexed.frac}` || '0');
  const total = digits * factor;
  const den = 10n ** BigInt(lexed.frac.length);
  const whole = total / den;
  if (total % den !== 0n) {
    const lo = whole.toString();
    const hi = (whole + 1n).toString();
    throw new UnitError(
      `${kind.noun} ${q(input)} was understood as ${decimal(total, lexed.frac.length)} ${kind.base}, ` +
        `but a ${kind.noun} must be ${kind.whole} (e.g. ${lo} or ${hi} ${kind.base})`,
      input,
    );
  }
  if (whole > kind.max) {
    throw new UnitError(
      `${kind.noun} ${q(input)} was understood as ${whole} ${kind.base}, which is more than the largest supported ${kind.noun}, ${kind.maxText}`,
      input,
      'too large',
    );
  }
  return Number(whole);
}

function fromNumber(kind: Kind, n: number): number {
  const input = String(n);
  if (!Number.isFinite(n)) {
    throw new UnitError(`${kind.noun} ${input} is not a finite number; expected e.g. '${kind.example}'`, input);
  }
  if (n < 0) {
    throw new UnitError(`negative ${kind.noun} ${input} is not accepted: a ${kind.noun} must be zero or more`, input, 'negative');
  }
  if (!Number.isInteger(n)) {
    throw new UnitError(
      `${kind.noun} ${input} was understood as ${input} ${kind.base}, but a ${kind.noun} must be ${kind.whole} ` +
        `(e.g. ${Math.floor(n)} or ${Math.ceil(n)} ${kind.base})`,
      input,
    );
  }
  if (n > Number.MAX_SAFE_INTEGER) {
    throw new UnitError(
      `${kind.noun} ${input} ${kind.base} is more than the largest supported ${kind.noun}, ${kind.maxText}`,
      input,
      'too large',
    );
  }
  return n + 0; // -0 -> 0
}

function notStringOrNumber(kind: Kind, x: unknown): UnitError {
  return new UnitError(
    `${kind.noun} must be a string or a number, got ${x === null ? 'null' : typeof x}; expected e.g. '${kind.example}'`,
    describe(x),
  );
}

/** Parse a rate or size: a bare number is in the base unit. */
function parseWithBare(kind: Kind, input: unknown): number {
  if (typeof input === 'number') return fromNumber(kind, input);
  if (typeof input !== 'string') throw notStringOrNumber(kind, input);
  const lexed = lex(kind, input);
  let factor = 1n;
  if (lexed.unit !== '') {
    const f = kind.units.get(asciiLower(lexed.unit));
    if (f === undefined) throw unknownUnit(kind, lexed.unit, input);
    factor = f;
  }
  return scale(kind, input, lexed, factor);
}

/**
 * Bits per second, an exact integer (Number.isSafeInteger).
 *
 * Accepts a non-negative JS integer (bits/s, like tc's bare number) or a
 * string: a decimal number (fractions allowed: "1.5mbit") and an optional tc
 * rate unit, case-insensitive: bit (or none), kbit mbit gbit tbit (x1000),
 * kibit mibit gibit tibit (x1024), and the BYTES/s units bps kbps mbps gbps
 * tbps, kibps mibps gibps tibps (x8). "kbps" is 8000 bit/s.
 *
 * @throws UnitError for anything else, with a message naming what was meant.
 */
export function parseRate(input: string | number): number {
  return parseWithBare(RATE, input);
}

/**
 * Bytes, an exact integer. tc get_size() units, case-insensitive: b (or
 * none), k/kb = 1024, m/mb = 1024^2, g/gb = 1024^3 bytes, and kbit/mbit/gbit
 * = 1024/1024^2/1024^3 bits. Fractions allowed if the result is whole bytes.
 *
 * @throws UnitError
 */
export function parseSize(input: string | number): number {
  return parseWithBare(SIZE, input);
}

function bareDuration(shown: string, asNumber: boolean, input: string): UnitError {
  const what = asNumber ? `${shown} (a JS number)` : q(shown);
  return new UnitError(
    `duration ${what} has no time unit: tc reads a bare number as microseconds (tc would take ${shown}us), ` +
      `but pacer asks for an explicit unit; write e.g. '${shown}us' or '${shown}ms' (${DURATION.accepted})`,
    input,
  );
}

/**
 * Nanoseconds, an exact integer. tc time units, case-insensitive: ns/nsec/nsecs,
 * us/usec/usecs, ms/msec/msecs, s/sec/secs. A bare number (string or JS
 * number) is rejected: tc reads it as microseconds, pacer wants the unit
 * spelled out. Fractions allowed when the result is whole ns ("1.5ms").
 *
 * @throws UnitError
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) fromNumber(DURATION, input); // throws: not finite / negative
    throw bareDuration(String(input), true, String(input));
  }
  if (typeof input !== 'string') throw notStringOrNumber(DURATION, input);
  const lexed = lex(DURATION, input);
  if (lexed.unit === '') throw bareDuration(input, false, input);
  const factor = TIME_UNITS.get(asciiLower(lexed.unit));
  if (factor === undefined) throw unknownUnit(DURATION, lexed.unit, input);
  return scale(DURATION, input, lexed, factor);
}

const BURST_NOTE =
  'a burst is either a size (b, k/kb, m/mb, g/gb, kbit, mbit, gbit; a bare number is bytes) ' +
  'or a duration (ns, us, ms, s and their nsec/usec/msec/sec spellings)';

const BURST: Kind = {
  noun: 'burst',
  base: 'bytes',
  whole: 'a whole number of bytes',
  example: '64kb',
  accepted: BURST_NOTE,
  units: new Map<string, bigint>([...SIZE_UNITS, ...TIME_UNITS]),
  hint: (u) => sizeHint(u) ?? timeHint(u),
  max: MAX,
  maxText: `${MAX}`,
};

function withBurstNote(e: unknown, input: string, prefix: string): unknown {
  if (!(e instanceof UnitError)) return e;
  const body = e.message.includes(BURST_NOTE) ? e.message : `${e.message}; ${BURST_NOTE}`;
  return new UnitError(`${prefix}${body}`, input, e.reason);
}

/**
 * A size ({ bytes }) or a duration ({ ns }): a string with a time unit is a
 * duration, anything else (including bare numbers and JS numbers) a size.
 *
 * @throws UnitError whose message names both possibilities
 */
export function parseBurst(input: string | number): Burst {
  if (typeof input === 'number') {
    try {
      return { bytes: parseSize(input) };
    } catch (e) {
      throw withBurstNote(e, String(input), 'burst: ');
    }
  }
  if (typeof input !== 'string') throw withBurstNote(notStringOrNumber(BURST, input), describe(input), '');
  let lexed: Lexed;
  try {
    lexed = lex(BURST, input);
  } catch (e) {
    throw withBurstNote(e, input, '');
  }
  const unit = asciiLower(lexed.unit);
  if (unit !== '' && !BURST.units.has(unit)) throw unknownUnit(BURST, lexed.unit, input);
  try {
    return TIME_UNITS.has(unit) ? { ns: parseDuration(input) } : { bytes: parseSize(input) };
  } catch (e) {
    throw withBurstNote(e, input, 'burst: ');
  }
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

/** Units largest first; the last one has factor 1. */
type Ladder = ReadonlyArray<readonly [unit: string, factor: number]>;

const RATE_LADDER: Ladder = [
  ['tbit', 1e12],
  ['gbit', 1e9],
  ['mbit', 1e6],
  ['kbit', 1e3],
  ['bit', 1],
];
const SIZE_LADDER: Ladder = [
  ['gb', 1024 ** 3],
  ['mb', 1024 ** 2],
  ['kb', 1024],
  ['b', 1],
];
const DURATION_LADDER: Ladder = [
  ['s', 1e9],
  ['ms', 1e6],
  ['us', 1e3],
  ['ns', 1],
];

/**
 * Largest unit that divides n exactly. Every step up the ladder divides by
 * at least 1000 (3 fewer digits) and lengthens the unit by at most one
 * character, so the largest exact unit is also the shortest string.
 */
function format(kind: Kind, n: unknown, ladder: Ladder): string {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    const shown = describe(n);
    throw new UnitError(
      `cannot format ${kind.noun} ${shown}: expected a non-negative safe integer number of ${kind.base}`,
      shown,
    );
  }
  if (n === 0) {
    // Zero is exact in every unit: take the shortest name ("0bit", "0b", "0s").
    const names = ladder.map(([unit]) => unit);
    return `0${names.reduce((a, b) => (b.length < a.length ? b : a))}`;
  }
  for (const [unit, factor] of ladder) {
    if (n % factor === 0) return `${n / factor}${unit}`;
  }
  return `${n}${ladder[ladder.length - 1]?.[0] ?? ''}`; // unreachable: the last factor is 1
}

/** Shortest exact tc string with decimal bit units: 2000000000 -> "2gbit", 1500000 -> "1500kbit", 0 -> "0bit". */
export function formatRate(bitsPerSecond: number): string {
  return format(RATE, bitsPerSecond, RATE_LADDER);
}

/** Shortest exact tc size string: 1024 -> "1kb", 1536 -> "1536b", 0 -> "0b", 3145728 -> "3mb". */
export function formatSize(bytes: number): string {
  return format(SIZE, bytes, SIZE_LADDER);
}

/** Shortest exact tc time string: 2000000000 -> "2s", 1500000 -> "1500us", 200 -> "200ns", 0 -> "0s". */
export function formatDuration(ns: number): string {
  return format(DURATION, ns, DURATION_LADDER);
}

/** formatSize for { bytes }, formatDuration for { ns }. */
export function formatBurst(b: Burst): string {
  const o: unknown = b;
  if (typeof o === 'object' && o !== null) {
    const hasBytes = 'bytes' in o;
    const hasNs = 'ns' in o;
    if (hasBytes && !hasNs) return formatSize((o as { bytes: number }).bytes);
    if (hasNs && !hasBytes) return formatDuration((o as { ns: number }).ns);
  }
  const shown = (() => {
    try {
      return JSON.stringify(o) ?? describe(o);
    } catch {
      return describe(o);
    }
  })();
  throw new UnitError(`cannot format burst ${shown}: expected exactly one of { bytes } or { ns }`, shown);
}

// ---------------------------------------------------------------------------
// Likely mistakes: accepted, but worth a warning
// ---------------------------------------------------------------------------

/** A rate in a BYTES/s unit spelled with a lower-case "b", as people write megabits ("100Mbps"). */
const BYTES_RATE_WRITTEN_AS_BITS = /^([0-9]*(?:\.[0-9]*)?)([kmgt]?)(i?)bps$/i;

/** "800 Mbit/s": an exact rate the way people say it (formatRate's unit, with a capital prefix). */
function rateForPeople(bitsPerSecond: number): string {
  const m = /^([0-9]+)([kmgt]?)bit$/.exec(formatRate(bitsPerSecond));
  if (!m) return `${bitsPerSecond} bit/s`;
  const prefix = m[2] === 'k' || m[2] === '' ? (m[2] ?? '') : (m[2] ?? '').toUpperCase();
  return `${m[1]} ${prefix}bit/s`;
}

/**
 * The warning for a rate written in one of tc's BYTES/s units with a lower-case "b" ("100mbps",
 * "1Gbps"): in networking "Mbps" means megabits per second, and tc reads it as megabytes, 8 times
 * more. The rate is accepted as tc reads it; the warning says what that is and how to write
 * bits. A capital B ("100MBps", "64KiBps") says bytes on purpose and gets no warning. Undefined
 * for every other rate, and for a string parseRate refuses (its error says enough).
 *
 *   bytesRateWarning('rate', '100mbps')
 *   → 'rate 100mbps read as 100 megabytes/s = 800 Mbit/s, as tc reads it; write 100mbit for 100 megabits/s'
 */
export function bytesRateWarning(what: string, input: string): string | undefined {
  const m = BYTES_RATE_WRITTEN_AS_BITS.exec(input);
  if (!m || input[input.length - 3] !== 'b') return undefined;
  let bitsPerSecond: number;
  try {
    bitsPerSecond = parseRate(input);
  } catch {
    return undefined;
  }
  const number = m[1] ?? '';
  const prefix = asciiLower(m[2] ?? '');
  const binary = (m[3] ?? '') !== '';
  const name = prefix === '' ? '' : ((binary ? BINARY_NAMES : DECIMAL_NAMES)[prefix] ?? '');
  const bitUnit = `${prefix}${binary ? 'i' : ''}bit`;
  return (
    `${what} ${input} read as ${number} ${name}bytes/s = ${rateForPeople(bitsPerSecond)}, as tc reads it; ` +
    `write ${number}${bitUnit} for ${number} ${name}bits/s`
  );
}
