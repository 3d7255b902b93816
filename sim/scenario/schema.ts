/**
 * The scenario file format: what a capacity planner writes to ask the simulator a question.
 * zod checks the shape and units here; cross-references (a flow between unknown hosts, a class
 * that does not exist, conflicting budgets) are checked in load.ts, where YAML positions are known.
 *
 * Quantities use the API's tc-style units (api/contract/units.ts), so "1gbit", "32kb" and "25us"
 * mean exactly what they mean to `pacer class create` and to tc. Classes are the API's own class
 * spec (classCreateSchema), so a scenario cannot hold a budget the API would refuse — except that
 * a scenario's own `tcp` defaults may go below the API's 1 ms floor, for RTOmin sweeps.
 */
import { z } from 'zod';
import { classCreateSchema, labelsSchema, canonicalCidr, matchInputSchema } from '../../api/contract/class.js';
import { splitReadOnly } from '../../api/contract/class-read-only.js';
import { UnitError, parseDuration, parseRate, parseSize } from '../../api/contract/units.js';

/** A tc-style quantity parsed by one of the API's unit parsers; UnitError becomes a field error. */
function parsed(parse: (v: string | number) => number, min: number, what: string, unit: (n: number) => string) {
  return (v: string | number, ctx: z.RefinementCtx): number => {
    try {
      const n = parse(v);
      if (n < min) {
        // With the unit: "at least 1; understood 0" leaves a planner guessing 1 what.
        ctx.addIssue({ code: 'custom', message: `${what} must be at least ${unit(min)}; understood ${JSON.stringify(v)} as ${unit(n)}` });
        return z.NEVER;
      }
      return n;
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: e instanceof UnitError ? e.message : String(e) });
      return z.NEVER;
    }
  };
}

const quantity = (parse: (v: string | number) => number, min: number, what: string, unit: (n: number) => string, description: string) =>
  z.union([z.string(), z.number()]).describe(description).transform(parsed(parse, min, what, unit));

/** Durations refuse bare numbers (as the API does): "25" could be ns, us or ms. */
const duration = (min: number, what: string) =>
  z
    .string({ error: `${what} needs a unit, e.g. "25us", "200ms", "2s"` })
    .describe('a duration with a unit (ns, us, ms, s), e.g. "25us", "200ms", "2s"')
    .transform(parsed(parseDuration, min, what, (ns) => `${ns}ns`));
const rate = (what: string) => quantity(parseRate, 1, what, (bps) => `${bps} bit/s`, 'a tc rate, e.g. "1gbit", "400mbit" (bit/s; "mbps" is megaBYTES/s, as in tc)');
/** tc sizes: "32kb" is 32 × 1024 = 32,768 bytes (tc's get_size), a bare number is bytes. */
const size = (what: string, min = 1) => quantity(parseSize, min, what, (b) => `${b} bytes`, 'a tc size: "32kb" = 32,768 bytes (k = 1024), "1mb" = 1,048,576 bytes; a bare number is bytes');
const count = (what: string, min = 1) => z.number().int(`${what} is a whole number`).min(min, `${what} must be at least ${min}`);

const hostName = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/, 'a host name is a letter then letters, digits, "_", "." or "-" (at most 63)');

const address = z.string().transform((v, ctx) => {
  try {
    // A host address is a /32 (or /128) prefix: reusing canonicalCidr keeps one parser for addresses.
    const bits = v.includes(':') ? 128 : 32;
    return canonicalCidr(`${v}/${bits}`).replace(/\/\d+$/, '');
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not an IPv4 or IPv6 address` });
    return z.NEVER;
  }
});

const link = z.strictObject({
  rate: rate('link.rate'),
  delay: duration(0, 'link.delay'),
  /** Framing bytes per packet beyond the IP datagram; Ethernet is 38. */
  overhead: count('link.overhead', 0).optional(),
});

const host = z.strictObject({
  /** Lets dst-prefix selectors find the host; a `count` group takes consecutive addresses. */
  address: address.optional(),
  labels: labelsSchema.optional(),
  link,
  /** A group: hosts <name>1 … <name>N with the same link and labels. */
  count: count('count').optional(),
});

const switchSpec = z
  .strictObject({
    /** Per-port drop-tail buffer as a tc size: "32kb" = 32,768 bytes (k = 1024, as tc reads it); a bare number is bytes … */
    buffer: size('switch.buffer').optional(),
    /** … or in packets. Exactly one of the two, unless a shared buffer is given (then at most one: a per-port cap). */
    bufferPackets: count('switch.bufferPackets').optional(),
    ecnThreshold: size('switch.ecnThreshold').optional(),
    /** One pool of packet memory for all ports (sim/net/shared-buffer.ts). */
    sharedBuffer: size('switch.sharedBuffer').optional(),
    /** The pool's dynamic threshold α (Choudhury–Hahne); "none" = complete sharing. Default 1. */
    alpha: z.union([z.number().positive('switch.alpha must be above 0').max(1024, 'switch.alpha must be at most 1024'), z.literal('none')]).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.buffer !== undefined && s.bufferPackets !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'give one of buffer (bytes) and bufferPackets, not both' });
    } else if (s.sharedBuffer === undefined && s.buffer === undefined && s.bufferPackets === undefined) {
      ctx.addIssue({ code: 'custom', message: 'the switch needs a per-port buffer (buffer or bufferPackets), a sharedBuffer, or both' });
    }
    if (s.alpha !== undefined && s.sharedBuffer === undefined) ctx.addIssue({ code: 'custom', path: ['alpha'], message: 'alpha is the shared buffer\'s dynamic threshold: it needs sharedBuffer' });
  });

const tcp = z.strictObject({
  /** Congestion control: NewReno (RFC 6582) or CUBIC (RFC 9438). Default newreno. */
  variant: z.enum(['newreno', 'cubic'], { error: 'tcp.variant is "newreno" or "cubic"' }).optional(),
  /** Selective acknowledgments (RFC 2018) with RFC 6675 loss recovery. Default false. */
  sack: z.boolean({ error: 'tcp.sack is true or false' }).optional(),
  /** TCP's own pacing (Linux sk_pacing_rate): cwnd·mss/srtt × pacingSsRatio% in slow start, × pacingCaRatio% after. Default false. */
  pacing: z.boolean({ error: 'tcp.pacing is true or false' }).optional(),
  pacingSsRatio: count('tcp.pacingSsRatio').max(10_000, 'tcp.pacingSsRatio is a percentage, at most 10000').optional(),
  pacingCaRatio: count('tcp.pacingCaRatio').max(10_000, 'tcp.pacingCaRatio is a percentage, at most 10000').optional(),
  rtoMin: duration(1, 'tcp.rtoMin').optional(),
  rtoForm: z.enum(['rfc6298', 'linux']).optional(),
  timerGranularity: duration(1, 'tcp.timerGranularity').optional(),
  /**
   * false = ACK every segment; true = delayed ACKs with Linux's default timer (40 ms); a duration
   * = delayed ACKs with that delack_max (the timer is min(40 ms, delack_max), as in Linux).
   */
  delayedAck: z.union([z.boolean(), duration(1, 'tcp.delayedAck')]).optional(),
  initialWindow: count('tcp.initialWindow').optional(),
  mss: count('tcp.mss', 64).max(65_000, 'tcp.mss must be at most 65000').optional(),
});

/** How a workload's traffic finds its class: the API's selectors, or the class by name. */
const selectors = {
  mark: z.number().int().min(1).max(0xffffffff).optional(),
  /** Checked with the API's own rule for a class's match.cgroups entry (an absolute cgroup v2 path). */
  cgroup: z
    .string()
    .superRefine((v, ctx) => {
      const r = matchInputSchema.safeParse({ cgroups: [v] });
      if (!r.success) ctx.addIssue({ code: 'custom', message: r.error.issues[0]!.message });
    })
    .optional(),
  class: z.string().optional(),
  start: duration(0, 'start').optional(),
  /** Start uniformly at random in [start, start + jitter), drawn from the scenario's seed. */
  jitter: duration(0, 'jitter').optional(),
};

const bulk = z.strictObject({
  from: hostName,
  to: hostName,
  /** Parallel connections. */
  flows: count('flows').optional(),
  /** Bytes per flow; without it the flow is long-lived (always has data). */
  bytes: size('bytes').optional(),
  ...selectors,
});

const incast = z
  .strictObject({
    client: hostName,
    /** Host names; a group's name stands for all its hosts. */
    servers: z.array(hostName).min(1),
    /** A block per round split across the servers … */
    blockBytes: size('blockBytes').optional(),
    /** … or a fixed response per server. Exactly one. */
    responseBytes: size('responseBytes').optional(),
    rounds: count('rounds'),
    ...selectors,
  })
  .superRefine((w, ctx) => {
    if ((w.blockBytes === undefined) === (w.responseBytes === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'incast needs exactly one of blockBytes (split across servers) and responseBytes (per server)' });
    }
  });

/** A fraction of a link's rate: 0.6 or "60%". */
const fraction = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : /^\d+(\.\d+)?%$/.test(v.trim()) ? Number(v.trim().slice(0, -1)) / 100 : NaN;
  if (!(n > 0 && n <= 10)) {
    ctx.addIssue({ code: 'custom', message: `load is a fraction of the link rate above 0 (0.6 or "60%"; at most 10 for overload), got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

/**
 * Request/response RPCs with open-loop Poisson arrivals (sim/workload/rpc.ts): each arrival, a
 * client picked at random sends a request to a server picked at random, which answers with a
 * response whose size is drawn from the CDF.
 */
const rpc = z
  .strictObject({
    clients: z.array(hostName).min(1),
    servers: z.array(hostName).min(1),
    /** A built-in distribution (web-search, data-mining) or a CDF file (a path with "/" or ending .cdf, relative to the scenario). */
    sizes: z.string().min(1),
    /** Offered load: mean response bytes per second as a fraction of the clients' total link rate … */
    load: fraction.optional(),
    /** … or the arrival rate, RPCs per second over all clients. Exactly one. */
    arrivalsPerSecond: z.number().positive('arrivalsPerSecond must be above 0').optional(),
    /** Request bytes (default 64); 0 = no request: the response starts at the arrival. */
    requestBytes: size('requestBytes', 0).optional(),
    /** Stop after this many arrivals (the run may then end before its duration). */
    count: count('count').optional(),
    /** Upper bounds of the FCT size buckets (default 100000 and 10000000 bytes, as the pFabric and HOMA papers bucket). */
    buckets: z.array(size('buckets')).min(1).optional(),
    ...selectors,
  })
  .superRefine((w, ctx) => {
    if ((w.load === undefined) === (w.arrivalsPerSecond === undefined)) ctx.addIssue({ code: 'custom', message: 'rpc needs exactly one of load (a fraction of the clients\' link rate) and arrivalsPerSecond' });
    if (w.buckets?.some((b, i) => i > 0 && b <= w.buckets![i - 1]!)) ctx.addIssue({ code: 'custom', path: ['buckets'], message: 'bucket bounds must increase' });
  });

/** On/off sources (sim/workload/onoff.ts): a TCP flow whose application writes at `rate` while on and nothing while off. */
const onoff = z.strictObject({
  from: hostName,
  to: hostName,
  flows: count('flows').optional(),
  /** Application rate while on (payload bits per second). */
  rate: rate('onoff.rate'),
  /** Mean on and off period lengths. */
  on: duration(1, 'onoff.on'),
  off: duration(0, 'onoff.off'),
  /** exponential (default; ns-2's Exponential On/Off) or fixed periods. */
  periods: z.enum(['exponential', 'fixed']).optional(),
  ...selectors,
});

const WORKLOAD_KINDS = ['bulk', 'incast', 'rpc', 'onoff'] as const;

/** One key says the kind (`- bulk: {...}`, `- rpc: {...}` …); a union would blur the errors. */
const workload = z.strictObject({ bulk: bulk.optional(), incast: incast.optional(), rpc: rpc.optional(), onoff: onoff.optional() }).superRefine((w, ctx) => {
  if (WORKLOAD_KINDS.filter((k) => w[k] !== undefined).length !== 1) ctx.addIssue({ code: 'custom', message: `a workload is exactly one of ${WORKLOAD_KINDS.join(', ')}` });
});

/**
 * Fields `pacer class get --json` adds that are the API's, not the planner's (id, revision, etag,
 * timestamps…): dropped before validation, so a class pasted from the API runs as it is.
 */
const apiClass = z.preprocess((v) => splitReadOnly(v).spec, classCreateSchema);

export const scenarioSchema = z.strictObject({
  description: z.string().optional(),
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  /** Simulated time; the run ends earlier when every finite workload is done. */
  duration: duration(1, 'duration'),
  /** Width of the throughput time-series bins. */
  bin: duration(1_000, 'bin').optional(),
  topology: z.strictObject({
    switch: switchSpec,
    hosts: z.record(hostName, host),
  }),
  classes: z.array(apiClass).optional(),
  tcp: tcp.optional(),
  workloads: z.array(workload).min(1, 'a scenario needs at least one workload'),
});

export type ScenarioInput = z.output<typeof scenarioSchema>;
export type BulkInput = z.output<typeof bulk>;
export type IncastInput = z.output<typeof incast>;
export type RpcInput = z.output<typeof rpc>;
export type OnoffInput = z.output<typeof onoff>;
