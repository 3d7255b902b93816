import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import fc from 'fast-check';
import {
  UnitError,
  parseRate,
  formatRate,
  parseSize,
  formatSize,
  parseDuration,
  formatDuration,
  parseBurst,
  formatBurst,
  type Burst,
} from '../../api/contract/units.js';

const MAX = Number.MAX_SAFE_INTEGER;
const BIG_MAX = BigInt(MAX);

/** Assert fn throws a UnitError for `input` whose message matches every pattern. */
function throwsUnit(fn: () => unknown, input: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UnitError, `expected a UnitError, got ${String(e)}`);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'UnitError');
    assert.equal(e.input, input);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** Run fn; it must return normally or throw a UnitError about `input`. */
function onlyUnitErrors(fn: () => unknown, input: string): { ok: true; value: unknown } | { ok: false; error: UnitError } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (!(e instanceof UnitError)) throw new Error(`threw a non-UnitError for ${JSON.stringify(input)}: ${String(e)}`);
    assert.equal(e.input, input);
    assert.ok(e.message.length > 0);
    return { ok: false, error: e };
  }
}

/** The characters tc itself could accept as a rate/size/time: digits, one dot, ASCII letters. */
const TC_SHAPE = /^([0-9]+\.?[0-9]*|\.[0-9]+)[A-Za-z]*$/;
const FORMATTED = /^[0-9]+[a-z]+$/;

// tc/tc_util.c suffixes[] copied verbatim (names as spelled there), scaled to bits/s.
const TC_RATE_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ['bit', 1n],
  ['Kibit', 1024n],
  ['kbit', 1000n],
  ['mibit', 1024n * 1024n],
  ['mbit', 1000000n],
  ['gibit', 1024n * 1024n * 1024n],
  ['gbit', 1000000000n],
  ['tibit', 1024n * 1024n * 1024n * 1024n],
  ['tbit', 1000000000000n],
  ['Bps', 8n],
  ['KiBps', 8n * 1024n],
  ['KBps', 8000n],
  ['MiBps', 8n * 1024n * 1024n],
  ['MBps', 8000000n],
  ['GiBps', 8n * 1024n * 1024n * 1024n],
  ['GBps', 8000000000n],
  ['TiBps', 8n * 1024n * 1024n * 1024n * 1024n],
  ['TBps', 8000000000000n],
];

// tc/tc_util.c get_size(), in bytes.
const TC_SIZE_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ['b', 1n],
  ['k', 1024n],
  ['kb', 1024n],
  ['m', 1024n * 1024n],
  ['mb', 1024n * 1024n],
  ['g', 1024n * 1024n * 1024n],
  ['gb', 1024n * 1024n * 1024n],
  ['kbit', 1024n / 8n],
  ['mbit', (1024n * 1024n) / 8n],
  ['gbit', (1024n * 1024n * 1024n) / 8n],
];

// get_time64() (lib/utils.c), in ns.
const TC_TIME_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ['s', 1000000000n],
  ['sec', 1000000000n],
  ['secs', 1000000000n],
  ['ms', 1000000n],
  ['msec', 1000000n],
  ['msecs', 1000000n],
  ['us', 1000n],
  ['usec', 1000n],
  ['usecs', 1000n],
  ['ns', 1n],
  ['nsec', 1n],
  ['nsecs', 1n],
];

/** A decimal number string "int[.frac]" together with its exact value num / 10^scale. */
const decimalArb = fc
  .record({
    int: fc.oneof(fc.bigInt({ min: 0n, max: 2000n }), fc.bigInt({ min: 0n, max: 10n ** 17n })),
    frac: fc.oneof(
      fc.constant(''),
      fc.constantFrom('0', '5', '25', '125', '0625', '1', '01', '001', '000001', '000000001', '0009765625'),
      fc.stringMatching(/^[0-9]{1,14}$/),
    ),
  })
  .map(({ int, frac }) => ({
    text: frac === '' ? `${int}` : `${int}.${frac}`,
    num: BigInt(`${int}${frac}`),
    scale: 10n ** BigInt(frac.length),
  }));

function suffixArb(table: ReadonlyArray<readonly [string, bigint]>): fc.Arbitrary<readonly [string, bigint]> {
  return fc
    .constantFrom(...table)
    .chain(([name, factor]) => fc.mixedCase(fc.constant(name)).map((n) => [n, factor] as const));
}

/**
 * Check parse(`${decimal}${suffix}`) against an exact BigInt oracle: equal when the
 * value is a whole number within range, otherwise the matching UnitError.
 */
function oracleProperty(
  parse: (s: string) => unknown,
  table: ReadonlyArray<readonly [string, bigint]>,
  unwrap: (v: unknown) => number = (v) => v as number,
): void {
  fc.assert(
    fc.property(decimalArb, suffixArb(table), (d, [suffix, factor]) => {
      const input = `${d.text}${suffix}`;
      const total = d.num * factor;
      if (total % d.scale !== 0n) {
        throwsUnit(() => parse(input), input, /understood as/, /whole number/);
      } else if (total / d.scale > BIG_MAX) {
        throwsUnit(() => parse(input), input, /largest supported/, /MAX_SAFE_INTEGER/);
      } else {
        assert.equal(unwrap(parse(input)), Number(total / d.scale));
      }
    }),
    { numRuns: 2000 },
  );
}

/** Safe integers, biased towards multiples of the given unit steps so every unit gets formatted. */
function quantityArb(steps: readonly number[]): fc.Arbitrary<number> {
  return fc.oneof(
    fc.maxSafeNat(),
    fc.nat({ max: 100000 }),
    fc.constantFrom(...steps).chain((f) => fc.nat({ max: Math.floor(MAX / f) }).map((n) => n * f)),
    fc.constantFrom(...steps).chain((f) => fc.nat({ max: Math.min(100000, Math.floor(MAX / f)) }).map((n) => n * f)),
    fc.constantFrom(0, 1, MAX, ...steps),
  );
}

const RATE_STEPS = [1, 1e3, 1e6, 1e9, 1e12];
const SIZE_STEPS = [1, 1024, 1024 ** 2, 1024 ** 3];
const TIME_STEPS = [1, 1e3, 1e6, 1e9];

/** Every exact spelling of n with the given units, to check that format picks the shortest. */
function exactSpellings(n: number, units: ReadonlyArray<readonly [string, number]>): string[] {
  return units.filter(([, f]) => n % f === 0).map(([u, f]) => `${n / f}${u}`);
}

/** Strings built from tc-ish tokens: much likelier than random text to be almost valid. */
const tokenSoup = fc
  .array(
    fc.constantFrom(
      '0', '1', '5', '9', '00', '12', '.', '..', '-', '+', 'e', 'E', 'x', '0x', ' ', '\t', '\n', '\u00a0',
      'bit', 'kbit', 'Kibit', 'mbit', 'gbit', 'tbit', 'bps', 'KBps', 'kbps', 'MiBps', 'tibps',
      'b', 'k', 'kb', 'm', 'mb', 'g', 'gb', 't', 's', 'sec', 'ms', 'msecs', 'us', 'usec', 'ns', 'nsecs',
      '%', '/', 'inf', 'nan', 'NaN', 'Infinity', '\u212a', '\u00b5', '\u0130', '\u{1F600}', '\u0000',
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''));

const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary-ascii' }),
  tokenSoup,
);

describe('api/contract/units (tc conventions)', () => {
  it('module imports nothing but Node built-ins', () => {
    const js = readFileSync(new URL('../../api/contract/units.js', import.meta.url), 'utf8');
    const patterns = [
      /^\s*import\b[^;]*?['"]([^'"]+)['"]/gm, // import x from 'y'; import 'y'
      /^\s*export\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm, // export * from 'y'
      /\bimport\s*\(\s*['"]([^'"]*)['"]/g, // import('y')
      /\brequire\s*\(\s*['"]([^'"]*)['"]/g, // require('y')
    ];
    const specifiers = patterns.flatMap((p) => [...js.matchAll(p)].map((m) => m[1] ?? ''));
    for (const s of specifiers) assert.ok(isBuiltin(s), `units.js imports '${s}', which is not a Node built-in`);
  });

  it('UnitError is an Error carrying the input', () => {
    const e = new UnitError('boom', '5m');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'UnitError');
    assert.equal(e.input, '5m');
    assert.equal(e.message, 'boom');
  });

  describe('parseRate', () => {
    const table: ReadonlyArray<readonly [string | number, number]> = [
      ['0', 0],
      ['1', 1],
      ['12345', 12345],
      ['0bit', 0],
      ['1bit', 1],
      ['1kbit', 1000],
      ['1mbit', 1000000],
      ['1gbit', 1000000000],
      ['1tbit', 1000000000000],
      ['1Kibit', 1024],
      ['1kibit', 1024],
      ['1mibit', 1048576],
      ['1gibit', 1073741824],
      ['1tibit', 1099511627776],
      ['1bps', 8], // "bps" is BYTES per second in tc
      ['1Bps', 8],
      ['100bps', 800],
      ['1kbps', 8000], // kilobytes/s
      ['1KBps', 8000],
      ['1KiBps', 8192],
      ['1kibps', 8192],
      ['1mbps', 8000000],
      ['1MBps', 8000000],
      ['1MiBps', 8388608],
      ['1gbps', 8000000000],
      ['1GiBps', 8589934592],
      ['1tbps', 8000000000000],
      ['1TiBps', 8796093022208],
      ['100MBIT', 100000000],
      ['100MbIt', 100000000],
      ['100mBiT', 100000000],
      ['2GBIT', 2000000000],
      ['1.5mbit', 1500000],
      ['0.1mbit', 100000],
      ['1.005kbps', 8040], // 1.005 * 8000 is 8039.999999999999 in floating point
      ['1.005mbit', 1005000], // 1.005 * 1e6 is 1004999.9999999999 in floating point
      ['0.125bps', 1],
      ['1.125Bps', 9],
      ['0.0009765625kibit', 1],
      ['.5kbit', 500],
      ['5.kbit', 5000],
      ['007kbit', 7000],
      ['1.000000000000000000000000kbit', 1000],
      ['9007199254740991', MAX],
      ['9007199254740991bit', MAX],
      ['9007.199254740991tbit', MAX],
      [0, 0],
      [1000, 1000],
      [MAX, MAX],
    ];
    for (const [input, expected] of table) {
      it(`${JSON.stringify(input)} -> ${expected} bit/s`, () => {
        assert.equal(parseRate(input), expected);
      });
    }

    it('-0 parses to +0', () => {
      assert.ok(Object.is(parseRate(-0), 0));
    });

    describe('rejections say what was meant', () => {
      const cases: ReadonlyArray<readonly [string, ...RegExp[]]> = [
        ['5m', /unknown rate unit 'm' in '5m'/, /use mbit \(megabits\/s\) or mbps \(megabytes\/s, as tc reads it\)/],
        ['5M', /unknown rate unit 'M'/, /mbit \(megabits\/s\)/, /mbps/],
        ['5mb', /'mb'/, /mbit \(megabits\/s\) or mbps \(megabytes\/s/],
        ['5MB', /mbit.*mbps/],
        ['5gb', /'gb'/, /gbit \(gigabits\/s\) or gbps \(gigabytes\/s/],
        ['5k', /kbit \(kilobits\/s\) or kbps \(kilobytes\/s/],
        ['5kb', /kbit.*kbps/],
        ['5t', /tbit \(terabits\/s\) or tbps/],
        ['5mi', /mibit \(mebibits\/s\) or mibps \(mebibytes\/s/],
        ['5kib', /kibit.*kibps/],
        ['5bits', /use bit \(bits\/s\) or bps \(bytes\/s, as tc reads it\)/],
        ['5b/s', /use bit \(bits\/s\) or bps/],
        ['5%', /percentages/],
        ['5xyz', /unknown rate unit 'xyz'/, /kbit/, /kbps/, /BYTES\/s/],
        ['1.2.3mbit', /unknown rate unit '\.3mbit'/],
        ['5\u212abit', /unknown rate unit/], // KELVIN SIGN: not a "k" for strcasecmp
        ['1.5bit', /understood as 1\.5 bit\/s/, /whole number of bits\/s/],
        ['0.0001kbit', /understood as 0\.1 bit\/s/, /whole number of bits\/s/],
        ['1.5', /understood as 1\.5 bit\/s/, /whole number/],
        ['0.1bps', /understood as 0\.8 bit\/s/],
        ['1e9', /exponent/],
        ['1E9mbit', /exponent/],
        ['1e+9', /exponent/],
        ['0x10', /hexadecimal/],
        ['0X1Fmbit', /hexadecimal/],
        ['', /empty rate/, /mbit/],
        [' 5mbit', /leading or trailing whitespace/, /'5mbit'/],
        ['5mbit ', /leading or trailing whitespace/],
        ['5mbit\n', /leading or trailing whitespace/],
        ['5 mbit', /whitespace between number and unit/, /write '5mbit'/],
        ['5\tmbit', /whitespace between number and unit/],
        ['-1mbit', /negative rate/],
        ['-0', /negative/],
        ['+1mbit', /'\+' sign/, /write '1mbit'/],
        ['nan', /NaN/],
        ['NaN', /NaN/],
        ['inf', /infinity/],
        ['-inf', /infinity/],
        ['Infinity', /infinity/],
        ['mbit', /does not start with a number/],
        ['.', /does not start with a number/],
        ['.mbit', /does not start with a number/],
        ['10000tbps', /understood as 80000000000000000 bit\/s/, /largest supported rate/, /MAX_SAFE_INTEGER/],
        ['9007199254740992bit', /largest supported/],
        ['9007199254740992', /largest supported/],
      ];
      for (const [input, ...patterns] of cases) {
        it(`rejects ${JSON.stringify(input)}`, () => throwsUnit(() => parseRate(input), input, ...patterns));
      }

      const numbers: ReadonlyArray<readonly [number, ...RegExp[]]> = [
        [-1, /negative/],
        [1.5, /understood as 1\.5 bit\/s/, /whole number of bits\/s/],
        [NaN, /not a finite number/],
        [Infinity, /not a finite number/],
        [-Infinity, /not a finite number/],
        [2 ** 53, /largest supported rate/],
        [1e21, /largest supported rate/],
      ];
      for (const [input, ...patterns] of numbers) {
        it(`rejects the number ${input}`, () => throwsUnit(() => parseRate(input), String(input), ...patterns));
      }

      it('rejects values that are neither strings nor numbers', () => {
        throwsUnit(() => parseRate(null as unknown as string), 'null', /string or a number/);
        throwsUnit(() => parseRate(undefined as unknown as string), 'undefined', /string or a number/);
        throwsUnit(() => parseRate(10n as unknown as string), '10', /string or a number, got bigint/);
        throwsUnit(() => parseRate({} as unknown as string), '[object Object]', /got object/);
      });
    });
  });

  describe('formatRate', () => {
    const table: ReadonlyArray<readonly [number, string]> = [
      [2000000000, '2gbit'],
      [1500000, '1500kbit'],
      [12345, '12345bit'],
      [0, '0bit'],
      [1, '1bit'],
      [1000, '1kbit'],
      [1024, '1024bit'],
      [8000, '8kbit'],
      [100000, '100kbit'],
      [1e12, '1tbit'],
      [1e15, '1000tbit'],
      [MAX, '9007199254740991bit'],
    ];
    for (const [n, s] of table) {
      it(`${n} -> ${s}`, () => assert.equal(formatRate(n), s));
    }
    it('rejects non-integers, negatives and unsafe numbers', () => {
      throwsUnit(() => formatRate(-1), '-1', /non-negative safe integer/);
      throwsUnit(() => formatRate(1.5), '1.5', /non-negative safe integer/);
      throwsUnit(() => formatRate(NaN), 'NaN', /non-negative safe integer/);
      throwsUnit(() => formatRate(2 ** 53), '9007199254740992', /non-negative safe integer/);
      throwsUnit(() => formatRate('5mbit' as unknown as number), '5mbit', /non-negative safe integer/);
    });
  });

  describe('parseSize', () => {
    const table: ReadonlyArray<readonly [string | number, number]> = [
      ['0', 0],
      ['1', 1],
      ['1500', 1500],
      ['1b', 1],
      ['1B', 1],
      ['1k', 1024],
      ['1K', 1024],
      ['1kb', 1024],
      ['1KB', 1024],
      ['1kB', 1024],
      ['1Kb', 1024], // tc prints sizes as "Kb"
      ['1m', 1048576],
      ['1M', 1048576],
      ['1mb', 1048576],
      ['1MB', 1048576],
      ['1g', 1073741824],
      ['1gb', 1073741824],
      ['1GB', 1073741824],
      ['1kbit', 128], // 1024 bits, not 1000
      ['1KBIT', 128],
      ['1mbit', 131072],
      ['1gbit', 134217728],
      ['1.5kb', 1536],
      ['0.5k', 512],
      ['1.5mb', 1572864],
      ['0.0078125kbit', 1],
      ['.5kb', 512],
      ['8388607gb', 8388607 * 1073741824],
      [1500, 1500],
      [0, 0],
      [MAX, MAX],
    ];
    for (const [input, expected] of table) {
      it(`${JSON.stringify(input)} -> ${expected} bytes`, () => assert.equal(parseSize(input), expected));
    }

    describe('rejections', () => {
      const cases: ReadonlyArray<readonly [string, ...RegExp[]]> = [
        ['5t', /unknown size unit 't'/, /no terabyte size unit/],
        ['5tb', /no terabyte/],
        ['5kib', /use kb/, /1024 bytes/],
        ['5KiB', /use kb/],
        ['5MiB', /use mb/, /1048576 bytes/],
        ['5bytes', /use b \(bytes\)/],
        ['5bit', /no plain bit unit/],
        ['5kbits', /use kbit/],
        ['5ms', /time unit, not a size/],
        ['5mbps', /rate unit, not a size/],
        ['5x', /unknown size unit 'x'/, /kb \(1024 bytes\)/, /kbit \(1024 bits = 128 bytes\)/],
        ['1.5b', /understood as 1\.5 bytes/, /whole number of bytes/],
        ['0.1k', /understood as 102\.4 bytes/],
        ['1.5', /understood as 1\.5 bytes/],
        ['1e3', /exponent/],
        ['0x10', /hexadecimal/],
        ['', /empty size/],
        [' 1k', /leading or trailing whitespace/],
        ['1 k', /whitespace between number and unit/],
        ['-1k', /negative size/],
        ['+1k', /'\+' sign/],
        ['kb', /does not start with a number/],
        ['9007199254740992b', /largest supported size/],
        ['8388608gb', /largest supported size/], // 2^53 bytes
      ];
      for (const [input, ...patterns] of cases) {
        it(`rejects ${JSON.stringify(input)}`, () => throwsUnit(() => parseSize(input), input, ...patterns));
      }
      it('rejects bad numbers', () => {
        throwsUnit(() => parseSize(-1), '-1', /negative/);
        throwsUnit(() => parseSize(1.5), '1.5', /whole number of bytes/);
        throwsUnit(() => parseSize(NaN), 'NaN', /not a finite number/);
        throwsUnit(() => parseSize(2 ** 53), '9007199254740992', /largest supported size/);
      });
    });
  });

  describe('formatSize', () => {
    const table: ReadonlyArray<readonly [number, string]> = [
      [1024, '1kb'],
      [1536, '1536b'],
      [0, '0b'],
      [1, '1b'],
      [128, '128b'],
      [3145728, '3mb'],
      [1048576 + 1024, '1025kb'],
      [1073741824, '1gb'],
      [1099511627776, '1024gb'],
      [MAX, '9007199254740991b'],
    ];
    for (const [n, s] of table) {
      it(`${n} -> ${s}`, () => assert.equal(formatSize(n), s));
    }
    it('rejects bad input', () => {
      throwsUnit(() => formatSize(-1), '-1', /non-negative safe integer/);
      throwsUnit(() => formatSize(0.5), '0.5', /non-negative safe integer/);
    });
  });

  describe('parseDuration', () => {
    const table: ReadonlyArray<readonly [string, number]> = [
      ['0ns', 0],
      ['1ns', 1],
      ['1nsec', 1],
      ['1nsecs', 1],
      ['1NS', 1],
      ['1us', 1000],
      ['1usec', 1000],
      ['1usecs', 1000],
      ['1US', 1000],
      ['1ms', 1000000],
      ['1msec', 1000000],
      ['1msecs', 1000000],
      ['1MSec', 1000000],
      ['1s', 1000000000],
      ['1sec', 1000000000],
      ['1secs', 1000000000],
      ['1SECS', 1000000000],
      ['1.5ms', 1500000],
      ['0.5us', 500],
      ['2.000000001s', 2000000001],
      ['.25s', 250000000],
      ['9007199.254740991s', MAX],
    ];
    for (const [input, expected] of table) {
      it(`${JSON.stringify(input)} -> ${expected} ns`, () => assert.equal(parseDuration(input), expected));
    }

    describe('rejections', () => {
      const bare = [/has no time unit/, /tc reads a bare number as microseconds/, /pacer asks for an explicit unit/];
      const cases: ReadonlyArray<readonly [string, ...RegExp[]]> = [
        ['100', ...bare, /'100us'/],
        ['0', ...bare],
        ['1.5', ...bare],
        ['1.5ns', /understood as 1\.5 ns/, /whole number of nanoseconds/],
        ['0.0001us', /understood as 0\.1 ns/],
        ['5m', /no minute/, /ms for milliseconds/],
        ['5min', /no minute/],
        ['5h', /hour/],
        ['5\u00b5s', /use us/],
        ['5\u03bcs', /use us/],
        ['5seconds', /use s \(seconds\)/],
        ['5kb', /unknown duration unit 'kb'/, /ns\/nsec\/nsecs/],
        ['5 ms', /whitespace between number and unit/, /'5ms'/],
        ['5ms ', /leading or trailing whitespace/],
        ['-1ms', /negative duration/],
        ['+1ms', /'\+' sign/],
        ['1e3ms', /exponent/],
        ['0x10ms', /hexadecimal/],
        ['', /empty duration/],
        ['ms', /does not start with a number/],
        ['10000000s', /understood as 10000000000000000 ns/, /largest supported duration/],
      ];
      for (const [input, ...patterns] of cases) {
        it(`rejects ${JSON.stringify(input)}`, () => throwsUnit(() => parseDuration(input), input, ...patterns));
      }
      it('rejects JS numbers like bare numbers', () => {
        for (const n of [0, 100, 1.5, MAX]) throwsUnit(() => parseDuration(n), String(n), ...bare);
        throwsUnit(() => parseDuration(100), '100', /'100us'/);
        throwsUnit(() => parseDuration(-1), '-1', /negative/);
        throwsUnit(() => parseDuration(NaN), 'NaN', /not a finite number/);
      });
    });
  });

  describe('formatDuration', () => {
    const table: ReadonlyArray<readonly [number, string]> = [
      [2000000000, '2s'],
      [1500000, '1500us'],
      [200, '200ns'],
      [0, '0s'], // shortest: '0s' beats '0ns'
      [1000, '1us'],
      [1000000, '1ms'],
      [60000000000, '60s'],
      [1001, '1001ns'],
      [MAX, '9007199254740991ns'],
    ];
    for (const [n, s] of table) {
      it(`${n} -> ${s}`, () => assert.equal(formatDuration(n), s));
    }
    it('rejects bad input', () => {
      throwsUnit(() => formatDuration(-5), '-5', /non-negative safe integer/);
      throwsUnit(() => formatDuration(Infinity), 'Infinity', /non-negative safe integer/);
    });
  });

  describe('parseBurst', () => {
    const table: ReadonlyArray<readonly [string | number, Burst]> = [
      ['64kb', { bytes: 65536 }],
      ['1500', { bytes: 1500 }],
      [1500, { bytes: 1500 }],
      ['1500b', { bytes: 1500 }],
      ['1kbit', { bytes: 128 }],
      ['1m', { bytes: 1048576 }], // a size (MiB), not minutes or ms
      ['1M', { bytes: 1048576 }],
      ['10ms', { ns: 10000000 }],
      ['10MS', { ns: 10000000 }],
      ['2usec', { ns: 2000 }],
      ['1s', { ns: 1000000000 }],
      ['1.5ms', { ns: 1500000 }],
      ['0ns', { ns: 0 }],
    ];
    for (const [input, expected] of table) {
      it(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () => assert.deepEqual(parseBurst(input), expected));
    }

    describe('rejections name both a size and a duration', () => {
      const both = [/size \(b, k\/kb/, /duration \(ns, us, ms, s/];
      const cases: ReadonlyArray<readonly [string, ...RegExp[]]> = [
        ['5x', /unknown burst unit 'x'/],
        ['5min', /no minute/],
        ['5kib', /use kb/],
        ['5mbps', /unknown burst unit 'mbps'/, /rate unit, not a size/],
        ['1.5ns', /understood as 1\.5 ns/, /whole number of nanoseconds/],
        ['1.5b', /understood as 1\.5 bytes/, /whole number of bytes/],
        ['', /empty burst/],
        ['5 ms', /whitespace between number and unit/],
        ['-1ms', /negative/],
        ['1e3', /exponent/],
        ['10000000s', /largest supported duration/],
      ];
      for (const [input, ...patterns] of cases) {
        it(`rejects ${JSON.stringify(input)}`, () => throwsUnit(() => parseBurst(input), input, ...both, ...patterns));
      }
      it('rejects bad numbers and non-strings', () => {
        throwsUnit(() => parseBurst(-1), '-1', ...both, /negative/);
        throwsUnit(() => parseBurst(0.5), '0.5', ...both, /whole number of bytes/);
        throwsUnit(() => parseBurst(null as unknown as string), 'null', ...both, /string or a number/);
      });
    });
  });

  describe('formatBurst', () => {
    it('formats sizes and durations', () => {
      assert.equal(formatBurst({ bytes: 65536 }), '64kb');
      assert.equal(formatBurst({ bytes: 1500 }), '1500b');
      assert.equal(formatBurst({ bytes: 0 }), '0b');
      assert.equal(formatBurst({ ns: 10000000 }), '10ms');
      assert.equal(formatBurst({ ns: 0 }), '0s');
    });
    it('rejects malformed bursts', () => {
      throwsUnit(() => formatBurst({} as Burst), '{}', /exactly one of/);
      throwsUnit(() => formatBurst({ bytes: 1, ns: 1 } as unknown as Burst), '{"bytes":1,"ns":1}', /exactly one of/);
      throwsUnit(() => formatBurst(null as unknown as Burst), 'null', /exactly one of/);
      throwsUnit(() => formatBurst({ bytes: -1 }), '-1', /non-negative safe integer/);
      throwsUnit(() => formatBurst({ ns: 0.5 }), '0.5', /non-negative safe integer/);
    });
  });

  describe('properties', () => {
    const kinds = [
      {
        name: 'rate',
        parse: parseRate,
        format: formatRate,
        steps: RATE_STEPS,
        units: [['tbit', 1e12], ['gbit', 1e9], ['mbit', 1e6], ['kbit', 1e3], ['bit', 1]] as const,
      },
      {
        name: 'size',
        parse: parseSize,
        format: formatSize,
        steps: SIZE_STEPS,
        units: [['gb', 1024 ** 3], ['mb', 1024 ** 2], ['kb', 1024], ['b', 1]] as const,
      },
      {
        name: 'duration',
        parse: parseDuration,
        format: formatDuration,
        steps: TIME_STEPS,
        units: [['s', 1e9], ['ms', 1e6], ['us', 1e3], ['ns', 1]] as const,
      },
    ];

    for (const k of kinds) {
      it(`${k.name}: parse(format(x)) === x, output is /^[0-9]+[a-z]+$/ and the shortest exact spelling`, () => {
        fc.assert(
          fc.property(quantityArb(k.steps), (x) => {
            const s = k.format(x);
            assert.match(s, FORMATTED);
            assert.equal(k.parse(s), x);
            const shortest = Math.min(...exactSpellings(x, k.units).map((c) => c.length));
            assert.equal(s.length, shortest, `${s} is not the shortest spelling of ${x}`);
          }),
          { numRuns: 3000 },
        );
      });
    }

    it('burst: parseBurst(formatBurst(b)) deep-equals b', () => {
      const burstArb: fc.Arbitrary<Burst> = fc.oneof(
        quantityArb(SIZE_STEPS).map((bytes) => ({ bytes })),
        quantityArb(TIME_STEPS).map((ns) => ({ ns })),
      );
      fc.assert(
        fc.property(burstArb, (b) => {
          const s = formatBurst(b);
          assert.match(s, FORMATTED);
          assert.deepEqual(parseBurst(s), b);
        }),
        { numRuns: 2000 },
      );
    });

    it('`${n}kbit` === n * 1000 and `${n}kbps` === n * 8000 (kilobytes!)', () => {
      fc.assert(
        fc.property(fc.nat({ max: Math.floor(MAX / 1000) }), (n) => {
          assert.equal(parseRate(`${n}kbit`), n * 1000);
        }),
      );
      fc.assert(
        fc.property(fc.nat({ max: Math.floor(MAX / 8000) }), (n) => {
          assert.equal(parseRate(`${n}kbps`), n * 8000);
          assert.equal(parseRate(`${n}KBps`), n * 8000);
        }),
      );
    });

    it('`${n}kbit` beyond Number.MAX_SAFE_INTEGER is rejected, not rounded', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: BIG_MAX / 1000n + 1n, max: BIG_MAX }), (n) => {
          throwsUnit(() => parseRate(`${n}kbit`), `${n}kbit`, /largest supported rate/);
        }),
      );
    });

    it('rate: every tc suffixes[] entry, any case, exact decimal arithmetic (BigInt oracle)', () => {
      oracleProperty(parseRate, TC_RATE_SUFFIXES);
    });

    it('size: every get_size() unit, any case, exact decimal arithmetic (BigInt oracle)', () => {
      oracleProperty(parseSize, TC_SIZE_SUFFIXES);
    });

    it('duration: every get_time64() unit, any case, exact decimal arithmetic (BigInt oracle)', () => {
      oracleProperty(parseDuration, TC_TIME_SUFFIXES);
    });

    it('burst: time units give { ns }, size units give { bytes } (BigInt oracle)', () => {
      oracleProperty(parseBurst, TC_TIME_SUFFIXES, (v) => (v as { ns: number }).ns);
      oracleProperty(parseBurst, TC_SIZE_SUFFIXES, (v) => (v as { bytes: number }).bytes);
    });

    it('bare numbers are bits/s for rates and bytes for sizes (BigInt oracle)', () => {
      oracleProperty(parseRate, [['', 1n]]);
      oracleProperty(parseSize, [['', 1n]]);
    });

    it('whitespace anywhere in a valid quantity is rejected', () => {
      const valid = fc.oneof(
        quantityArb(RATE_STEPS).map(formatRate),
        quantityArb(SIZE_STEPS).map(formatSize),
        quantityArb(TIME_STEPS).map(formatDuration),
      );
      fc.assert(
        fc.property(valid, fc.nat(), fc.constantFrom(' ', '\t', '\n', '\u00a0', '\u2003'), (s, at, ws) => {
          const pos = at % (s.length + 1);
          const input = s.slice(0, pos) + ws + s.slice(pos);
          for (const parse of [parseRate, parseSize, parseDuration, parseBurst]) {
            throwsUnit(() => parse(input), input, /whitespace|unknown/);
          }
        }),
      );
    });

    it('random strings never throw anything but UnitError, and only tc-shaped strings are accepted', () => {
      fc.assert(
        fc.property(anyString, (s) => {
          for (const parse of [parseRate, parseSize, parseDuration]) {
            const r = onlyUnitErrors(() => parse(s), s);
            if (r.ok) {
              assert.match(s, TC_SHAPE);
              assert.ok(Number.isSafeInteger(r.value) && (r.value as number) >= 0);
            }
          }
          const b = onlyUnitErrors(() => parseBurst(s), s);
          if (b.ok) {
            assert.match(s, TC_SHAPE);
            const v = b.value as Record<string, unknown>;
            assert.equal(Object.keys(v).length, 1);
            assert.ok(Number.isSafeInteger(v.bytes ?? v.ns));
          } else {
            assert.match(b.error.message, /size/);
            assert.match(b.error.message, /duration/);
          }
        }),
        { numRuns: 3000 },
      );
    });

    it('random JS numbers never throw anything but UnitError', () => {
      fc.assert(
        fc.property(fc.oneof(fc.double(), fc.integer(), fc.maxSafeInteger()), (n) => {
          const shown = String(n);
          const rate = onlyUnitErrors(() => parseRate(n), shown);
          assert.equal(rate.ok, Number.isSafeInteger(n) && n >= 0);
          const size = onlyUnitErrors(() => parseSize(n), shown);
          assert.equal(size.ok, Number.isSafeInteger(n) && n >= 0);
          const dur = onlyUnitErrors(() => parseDuration(n), shown);
          assert.equal(dur.ok, false);
          onlyUnitErrors(() => parseBurst(n), shown);
          onlyUnitErrors(() => formatRate(n), shown);
          onlyUnitErrors(() => formatSize(n), shown);
          onlyUnitErrors(() => formatDuration(n), shown);
        }),
        { numRuns: 2000 },
      );
    });

    it('case never matters (strcasecmp)', () => {
      const valid = fc.oneof(
        fc.tuple(fc.nat({ max: 1000 }), suffixArb(TC_RATE_SUFFIXES)).map(([n, [u]]) => ({ parse: parseRate, n, u })),
        fc.tuple(fc.nat({ max: 1000 }), suffixArb(TC_SIZE_SUFFIXES)).map(([n, [u]]) => ({ parse: parseSize, n, u })),
        fc.tuple(fc.nat({ max: 1000 }), suffixArb(TC_TIME_SUFFIXES)).map(([n, [u]]) => ({ parse: parseDuration, n, u })),
      );
      fc.assert(
        fc.property(valid, ({ parse, n, u }) => {
          const v = parse(`${n}${u}`);
          assert.equal(parse(`${n}${u.toUpperCase()}`), v);
          assert.equal(parse(`${n}${u.toLowerCase()}`), v);
        }),
      );
    });
  });
});
