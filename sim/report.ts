/**
 * Self-contained HTML reports for `pacer sim run` and `pacer sim sweep`: vega-lite specs rendered
 * to SVG on the server (vega's headless View, renderer 'none', no browser or canvas) and inlined.
 * The file loads nothing: no scripts, no fonts, no stylesheets from elsewhere, and no http(s) URL
 * at all — the SVG namespace attributes are dropped, since an HTML parser puts <svg> in the SVG
 * namespace by itself.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { SimResult } from './run.js';
import type { SweepResult } from './sweep.js';
import { COMPARED_METRICS, ratio, type Comparison } from './compare.js';

type Spec = vl.TopLevelSpec;

/** Renders one vega-lite spec to an inline <svg> element. */
export async function svg(spec: Spec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const out = await view.toSVG();
    return out.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '');
  } finally {
    view.finalize();
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}h2{margin-top:2em}.warn{color:#a00}`;

function page(title: string, body: string[]): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head>\n<body>\n${body.join('\n')}\n</body></html>\n`;
}

function htmlTable(head: string[], rows: Array<Array<string | number | null>>): string {
  const cell = (v: string | number | null) => `<td>${v === null ? '-' : esc(String(v))}</td>`;
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>\n${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n')}</table>`;
}

const mbit = (bps: number | null) => (bps === null ? null : Math.round(bps / 1e4) / 100);
const us = (ns: number | null) => (ns === null ? null : Math.round(ns / 10) / 100);
const ms = (ns: number | null) => (ns === null ? null : Math.round(ns / 1e3) / 1e3);

/** `pacer sim run`: per-class throughput over time, queueing delay percentiles per port. */
export async function runReport(r: SimResult): Promise<string> {
  const throughput = await throughputChart('Throughput per class (host egress, per bin)', classSeries(r));
  const ports = [
    ...r.hosts.map((p) => ({ ...p, shaperP99: p.shaperDelay?.p99Ns ?? null, kind: 'host NIC' })),
    ...r.switchPorts.map((p) => ({ ...p, shaperP99: null, kind: 'switch port' })),
  ].filter((p) => p.sentPackets > 0);
  const delays = ports.flatMap((p) => [
    { port: `${p.name} (${p.kind})`, pct: 'p50', us: p.queueDelay.p50Ns / 1e3 },
    { port: `${p.name} (${p.kind})`, pct: 'p99', us: p.queueDelay.p99Ns / 1e3 },
    { port: `${p.name} (${p.kind})`, pct: 'max', us: p.queueDelay.maxNs / 1e3 },
  ]);
  const delay = await delayChart('Queueing delay per port (ports that sent packets)', 'queueing delay (µs)', delays, 'pct', 'percentile', ['p50', 'p99', 'max']);
  const drops = Object.entries(r.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const rpc = r.rpc.length > 0 ? await rpcSection(r) : [];
  const overTime = await seriesSection(r);
  return page(`pacer sim run: ${r.scenario}`, [
    `<h1>pacer sim run: ${esc(r.scenario)}</h1>`,
    `<p>seed ${r.seed}; ${(r.simulatedNs / 1e9).toFixed(3)} s simulated of ${(r.durationNs / 1e9).toFixed(3)} s; ${r.events} events${r.complete ? '' : ' <b class="warn">(interrupted: partial result)</b>'}. Drops: ${esc(drops)}; retransmits ${r.retransmits}; RTO timeouts ${r.timeouts}.</p>`,
    '<h2>Classes</h2>',
    ...(r.classesFrom ? [`<p>The classes in force at ${esc(r.classesFrom.url)} (revision ${r.classesFrom.revision}), not the scenario file's.</p>`] : []),
    htmlTable(['class', 'budget per host', 'sending hosts', 'budget × hosts', 'throughput (Mbit/s)', 'goodput (Mbit/s)', 'measured from (s)'], r.classes.map((c) => [c.name, c.rate, c.sendingHosts, c.rateTimesHosts, mbit(c.throughputBps), mbit(c.goodputBps), c.startNs / 1e9])),
    '<p>A budget is per host: the class total is the budget times the hosts that sent. Throughput counts the bytes leaving the hosts (headers included), goodput the application bytes delivered; both over the same span, from the class\'s first packet to the end of the run.</p>',
    throughput,
    ...overTime,
    '<h2>Queueing delay</h2>',
    delay,
    htmlTable(['port', 'sent', 'drops', 'max queue (B)', 'p50 (µs)', 'p99 (µs)', 'max (µs)', 'shaper p99 (µs)'], ports.map((p) => [
      `${p.name} (${p.kind})`, p.sentPackets, p.drops, p.maxQueueBytes, us(p.queueDelay.p50Ns), us(p.queueDelay.p99Ns), us(p.queueDelay.maxNs), us(p.shaperP99),
    ])),
    ...(r.incast.length > 0
      ? ['<h2>Incast</h2>', htmlTable(['workload', 'servers', 'rounds', 'goodput (Mbit/s)', 'round p50 (ms)', 'round p99 (ms)', 'retransmits', 'RTO'], r.incast.map((i) => [i.workload, i.servers, `${i.roundsCompleted}/${i.rounds}`, mbit(i.goodputBps), ms(i.roundNs.p50), ms(i.roundNs.p99), i.retransmits, i.timeouts]))]
      : []),
    ...rpc,
    ...(r.onoff.length > 0
      ? ['<h2>On/off sources</h2>', htmlTable(['workload', 'from', 'to', 'class', 'rate', 'on / off', 'duty expected', 'duty measured', 'goodput (Mbit/s)'], r.onoff.map((w) => [w.workload, w.from, w.to, w.class, w.rate, `${w.on} / ${w.off} (${w.periods})`, w.dutyCycleExpected, w.flows.map((f) => f.dutyCycle).join(' '), mbit(w.goodputBps)]))]
      : []),
    ...(r.switch ? [`<p>Shared buffer ${r.switch.sharedBufferBytes} B, alpha ${r.switch.alpha ?? 'none'}: max used ${r.switch.maxUsedBytes} B, mean ${r.switch.meanUsedBytes} B, ${r.switch.drops} drops.</p>`] : []),
    ...(r.fct.completed > 0 ? [`<p>FCT p50 ${us(r.fct.p50Ns)} µs, p99 ${us(r.fct.p99Ns)} µs; slowdown p50 ${r.fct.slowdownP50}, p99 ${r.fct.slowdownP99} (${r.fct.completed} flows).</p>`] : []),
  ]);
}

/** Each class's throughput per bin, Mbit/s at the end of the bin. */
function classSeries(r: SimResult): Array<{ class: string; t: number; mbit: number }> {
  return r.classes.flatMap((c) => c.throughputSeriesBps.map((bps, b) => ({ class: c.name, t: ((b + 1) * r.binNs) / 1e9, mbit: bps / 1e6 })));
}

/** Throughput per class over time, a line per class (and per whatever `extra` encodes, such as the plan). */
function throughputChart(title: string, values: object[], extra: Record<string, unknown> = {}): Promise<string> {
  return svg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 640,
    height: 260,
    data: { values },
    mark: { type: 'line', point: values.length <= 200, interpolate: 'step-before' },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'simulated time (s, end of bin)' },
      y: { field: 'mbit', type: 'quantitative', title: 'Mbit/s' },
      color: { field: 'class', type: 'nominal', title: 'class' },
      ...extra,
    },
  } as Spec);
}

/** Bars of queueing delay (µs) per port, one bar per value of `group` (a percentile, or a plan). */
function delayChart(title: string, xTitle: string, values: Array<{ port: string; us: number }>, group: string, groupTitle: string, order: string[]): Promise<string> {
  return svg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 560,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'port', type: 'nominal', title: null, sort: null },
      yOffset: { field: group, sort: order },
      x: { field: 'us', type: 'quantitative', title: xTitle },
      color: { field: group, type: 'nominal', title: groupTitle, sort: order },
    },
  });
}

const MAX_LINES = 10;

/**
 * Over time: goodput of flows and RPC workloads (at most MAX_LINES, the busiest), and the mean
 * queue of the ports that queued most.
 */
async function seriesSection(r: SimResult): Promise<string[]> {
  const t = (b: number) => Math.min((b + 1) * r.binNs, r.simulatedNs) / 1e9;
  const busiest = <T>(xs: T[], weight: (x: T) => number) => [...xs].sort((a, b) => weight(b) - weight(a)).slice(0, MAX_LINES);
  const flows = busiest(
    [
      ...r.flows.map((f) => ({ name: `flow ${f.id} ${f.from}→${f.to} (${f.class})`, series: f.goodputSeriesBps, weight: f.bytes })),
      ...r.onoff.flatMap((w) => w.flows.map((f) => ({ name: `on/off ${f.id} ${w.from}→${w.to} (${w.class})`, series: f.goodputSeriesBps, weight: f.goodputBps }))),
      ...r.rpc.map((w) => ({ name: `RPCs ${w.workload}: ${w.sizes} (${w.class})`, series: w.goodputSeriesBps, weight: w.goodputBps })),
    ],
    (x) => x.weight,
  );
  const ports = busiest([...r.hosts, ...r.switchPorts].filter((p) => p.queueSeriesBytes), (p) => p.meanQueueBytes);
  const out: string[] = [];
  if (flows.length > 0) {
    out.push(
      await svg({
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: 'Goodput over time (delivered, per bin)',
        width: 640,
        height: 240,
        data: { values: flows.flatMap((f) => f.series.map((bps, b) => ({ what: f.name, t: t(b), mbit: bps / 1e6 }))) },
        mark: { type: 'line', interpolate: 'step-before' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'simulated time (s, end of bin)' },
          y: { field: 'mbit', type: 'quantitative', title: 'Mbit/s' },
          color: { field: 'what', type: 'nominal', title: null },
        },
      }),
    );
  }
  if (ports.length > 0) {
    out.push(
      '<h2>Queues over time</h2>',
      await svg({
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: 'Mean queue per bin (ports that queued most)',
        width: 640,
        height: 240,
        data: { values: ports.flatMap((p) => p.queueSeriesBytes!.map((q, b) => ({ port: p.name, t: t(b), kb: q / 1e3 }))) },
        mark: { type: 'line', interpolate: 'step-before' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'simulated time (s, end of bin)' },
          y: { field: 'kb', type: 'quantitative', title: 'queue (KB)' },
          color: { field: 'port', type: 'nominal', title: 'port' },
        },
      }),
    );
  }
  return out;
}

/** RPCs: slowdown per size bucket (mean and p99, as pFabric and HOMA plot), and the table. */
async function rpcSection(r: SimResult): Promise<string[]> {
  const values = r.rpc.flatMap((w) =>
    w.buckets.filter((b) => b.count > 0).flatMap((b) => [
      { rpc: `${w.workload}: ${w.sizes} (${w.class})`, bucket: b.label, stat: 'mean', slowdown: b.slowdownMean },
      { rpc: `${w.workload}: ${w.sizes} (${w.class})`, bucket: b.label, stat: 'p99', slowdown: b.slowdownP99 },
    ]),
  );
  const chart = await svg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'RPC slowdown (FCT / ideal) per response size',
    width: 520,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'bucket', type: 'nominal', title: null, sort: null },
      yOffset: { field: 'stat', sort: ['mean', 'p99'] },
      x: { field: 'slowdown', type: 'quantitative', title: 'slowdown', scale: { type: 'log' } },
      color: { field: 'stat', type: 'nominal', title: 'statistic', sort: ['mean', 'p99'] },
      row: { field: 'rpc', type: 'nominal', title: null },
    },
  });
  const rows = r.rpc.flatMap((w) => [
    [w.workload, w.sizes, w.class, w.load, w.offeredLoad, `${w.completed}/${w.arrivals}`, 'all', w.fct.count, us(w.fct.fctP50Ns), us(w.fct.fctP99Ns), w.fct.slowdownMean, w.fct.slowdownP99],
    ...w.buckets.map((b) => ['', '', '', '', '', '', b.label, b.count, us(b.fctP50Ns), us(b.fctP99Ns), b.slowdownMean, b.slowdownP99]),
  ]);
  return ['<h2>RPCs</h2>', chart, htmlTable(['workload', 'sizes', 'class', 'load asked', 'load offered', 'done', 'size', 'count', 'FCT p50 (µs)', 'FCT p99 (µs)', 'slowdown mean', 'slowdown p99'], rows)];
}

/** Sweep metrics that can be plotted, with their axis titles and scale. */
const SWEEP_METRICS = [
  { key: 'goodputBps', title: 'goodput (Mbit/s)', scale: 1e-6 },
  { key: 'incastGoodputOverRoundsBps', title: 'incast goodput over the rounds, round-time-weighted (Mbit/s)', scale: 1e-6 },
  { key: 'fctP99Ns', title: 'FCT p99 (ms)', scale: 1e-6 },
  { key: 'slowdownP99', title: 'slowdown p99 (FCT / ideal)', scale: 1 },
  { key: 'timeouts', title: 'RTO timeouts', scale: 1 },
] as const;

/**
 * `pacer sim sweep`: each metric against each axis, one line per combination of the other axes'
 * values. An axis whose values are all numbers is a quantitative x; otherwise the values are
 * ordinal, in the order given on the command line.
 */
export async function sweepReport(s: SweepResult): Promise<string> {
  const done = s.points.filter((p) => p.metrics !== null);
  const plots: string[] = [];
  for (const metric of SWEEP_METRICS) {
    if (done.every((p) => p.metrics![metric.key] === null)) continue;
    plots.push(`<h2>${esc(metric.title)}</h2>`);
    for (const axis of s.axes) {
      const others = s.axes.filter((a) => a !== axis);
      const numeric = axis.values.every((v) => /^-?\d+(\.\d+)?$/.test(v));
      const values = done.map((p) => ({
        x: numeric ? Number(p.params[axis.name]) : p.params[axis.name],
        series: others.map((o) => `${o.name}=${p.params[o.name]}`).join(' ') || 'all',
        y: p.metrics![metric.key] === null ? null : p.metrics![metric.key]! * metric.scale,
        partial: p.status === 'partial',
      }));
      plots.push(
        await svg({
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: `${metric.title} vs ${axis.name}`,
          width: 520,
          height: 240,
          data: { values },
          mark: { type: 'line', point: true },
          encoding: {
            x: numeric ? { field: 'x', type: 'quantitative', title: axis.name } : { field: 'x', type: 'ordinal', title: axis.name, sort: axis.values },
            y: { field: 'y', type: 'quantitative', title: metric.title },
            color: { field: 'series', type: 'nominal', title: others.map((o) => o.name).join(', ') || ' ', sort: null },
          },
        }),
      );
    }
  }
  const rows = s.points.map((p) => [
    ...s.axes.map((a) => p.params[a.name] ?? null),
    p.status,
    mbit(p.metrics?.goodputBps ?? null),
    mbit(p.metrics?.incastGoodputOverRoundsBps ?? null),
    ms(p.metrics?.fctP50Ns ?? null),
    ms(p.metrics?.fctP99Ns ?? null),
    p.metrics?.slowdownP99 ?? null,
    p.metrics?.drops ?? null,
    p.metrics?.retransmits ?? null,
    p.metrics?.timeouts ?? null,
  ]);
  return page(`pacer sim sweep: ${s.scenario}`, [
    `<h1>pacer sim sweep: ${esc(s.scenario)}</h1>`,
    `<p>${s.points.length} points (${s.axes.map((a) => `${esc(a.name)} = ${esc(a.values.join(', '))}`).join(' × ')}), seed ${s.seed}${s.complete ? '' : '; <b class="warn">interrupted: partial sweep</b>'}. FCT is of ${s.fctOf}.</p>`,
    ...plots,
    '<h2>Points</h2>',
    htmlTable([...s.axes.map((a) => a.name), 'status', 'goodput (Mbit/s)', 'incast goodput over rounds (Mbit/s)', 'FCT p50 (ms)', 'FCT p99 (ms)', 'slowdown p99', 'drops', 'retransmits', 'RTO'], rows),
  ]);
}

/**
 * `pacer sim compare`: the metrics and classes of two plans side by side (B / A beside them), then
 * the run report's charts with both plans on the same axes: throughput per class over time (solid
 * A, dashed B) and queueing delay per port (A and B bars side by side).
 */
export async function compareReport(c: Comparison): Promise<string> {
  const [la, lb] = c.labels;
  const [ra, rb] = c.results;
  const show = (unit: string, v: number | boolean | null) => (v === null || typeof v === 'boolean' ? null : unit === 'bps' ? mbit(v) : unit === 'ns' ? ms(v) : v);
  const unitText = (unit: string) => (unit === 'bps' ? ' (Mbit/s)' : unit === 'ns' ? ' (ms)' : '');
  const metricRows = COMPARED_METRICS.map((m) => {
    const [a, b] = [c.metrics[0][m.key], c.metrics[1][m.key]];
    return [`${m.label}${unitText(m.unit)}`, show(m.unit, a), show(m.unit, b), ratio(a, b)];
  });
  const classRows = c.classes.map(({ name, a, b }) => [
    name, a?.rateTimesHosts ?? null, b?.rateTimesHosts ?? null,
    mbit(a?.throughputBps ?? null), mbit(b?.throughputBps ?? null), ratio(a?.throughputBps ?? null, b?.throughputBps ?? null),
    mbit(a?.goodputBps ?? null), mbit(b?.goodputBps ?? null), ratio(a?.goodputBps ?? null, b?.goodputBps ?? null),
  ]);
  const throughput = await throughputChart(
    'Throughput per class (host egress, per bin): A solid, B dashed',
    [ra, rb].flatMap((r, i) => classSeries(r).map((x) => ({ ...x, plan: c.labels[i]! }))),
    { strokeDash: { field: 'plan', type: 'nominal', title: 'plan', sort: [la, lb] } },
  );
  const delays = [ra, rb].flatMap((r, i) =>
    [...r.hosts, ...r.switchPorts].filter((p) => p.sentPackets > 0).map((p) => ({ plan: c.labels[i]!, port: p.name, us: p.queueDelay.p99Ns / 1e3 })),
  );
  const delay = await delayChart('Queueing delay p99 per port (ports that sent packets)', 'queueing delay p99 (µs)', delays, 'plan', 'plan', [la, lb]);
  const partial = ra.complete && rb.complete ? '' : ' <b class="warn">(interrupted: partial results)</b>';
  return page(`pacer sim compare: ${la} vs ${lb}`, [
    `<h1>pacer sim compare: ${esc(la)} vs ${esc(lb)}</h1>`,
    `<p>A = ${esc(c.files[0])}, B = ${esc(c.files[1])}; seeds ${ra.seed} and ${rb.seed}; ${(ra.simulatedNs / 1e9).toFixed(3)} s and ${(rb.simulatedNs / 1e9).toFixed(3)} s simulated${partial}. B / A is the ratio of B's figure to A's.</p>`,
    '<h2>Key metrics</h2>',
    htmlTable(['metric', la, lb, 'B / A'], metricRows),
    '<h2>Classes</h2>',
    '<p>Budget × hosts: the per-host budget times the hosts that sent in the class. Throughput and goodput are over the same span, from the class\'s first packet to the end of the run.</p>',
    htmlTable(['class', `budget × hosts, A`, `budget × hosts, B`, 'throughput A (Mbit/s)', 'throughput B (Mbit/s)', 'B / A', 'goodput A (Mbit/s)', 'goodput B (Mbit/s)', 'B / A'], classRows),
    throughput,
    '<h2>Queueing delay</h2>',
    delay,
  ]);
}
