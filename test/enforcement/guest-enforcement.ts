/**
 * Runs INSIDE the VM (test/enforcement/enforcement.spec.ts boots it): the six scenarios of the
 * enforcement tier on a kernel with fq, with pacer's API and agent as real processes and iperf3
 * as the traffic. It asserts nothing: it records what it measured in $RESULTS/result.json,
 * rewritten after every scenario so a late crash still reports the earlier ones, and the spec
 * judges on the host. Not a *.spec file, so mocha never runs it on the host.
 *
 * Order: 1, 2, 3, 4, 6, 7, 5. The pfifo control (5) goes last because the agent does not put fq
 * back, and the SIGKILL (6) and ECN (7) scenarios need fq.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { killed, until } from '../support/agent-processes.js';
import { GUEST_WAIT_MS, Lab, labMs, now, RECEIVERS, type IperfRun } from './guest-lab.js';
import { statsDelta, type EnforcementReport } from './report.js';
import { StallMonitor } from './stall-monitor.js';
import { counterGrowth, netCounters } from '../support/nstat.js';

const resultsDir = process.env.RESULTS;
if (!resultsDir) throw new Error('guest-enforcement: RESULTS is not set (run it through runInVm)');
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').trim();
// Started first: it covers the lab's set-up too, and its stalls are the only reason a rate
// sample is ever left unjudged.
const monitor = new StallMonitor(labMs);
monitor.start();
const report: EnforcementReport = { kernel: release(), loadStart: loadavg(), scenarios: {}, stalls: monitor.stalls };
const save = (): void => {
  report.stallMonitorError = monitor.error;
  writeFileSync(join(resultsDir, 'result.json'), JSON.stringify(report, null, 2));
};
const log = (msg: string): void => console.log(`[guest ${(now() / 1000).toFixed(1)} s] ${msg}`);

const PORTS = [5201, 5202] as const;
const mbit = (m: number): number => m * 1_000_000;
/** Lab time `ms` after a run's spawn, for timed actions during traffic. */
const at = async (run: { spawnedAtMs: number }, ms: number): Promise<void> => {
  const wait = run.spawnedAtMs + ms - now();
  if (wait > 0) await sleep(wait);
};
/** Starts an iperf3 run and gives its spawn time at once (the promise resolves at its end). */
function traffic(lab: Lab, to: string, port: number, seconds: number): { spawnedAtMs: number; done: Promise<IperfRun> } {
  const spawnedAtMs = now();
  const done = lab.iperf(to, port, seconds);
  done.catch(() => {}); // awaited by the scenario; an early failure must not crash the process
  return { spawnedAtMs, done };
}

async function scenario(name: string, body: () => Promise<Record<string, unknown>>): Promise<void> {
  const t = now();
  log(`scenario ${name}: start (load ${loadavg()})`);
  try {
    report.scenarios[name] = { ok: true, ms: now() - t, ...(await body()) };
    report.scenarios[name]!.ms = now() - t;
  } catch (err) {
    report.scenarios[name] = { ok: false, ms: now() - t, error: (err as Error).stack ?? String(err) };
  }
  log(`scenario ${name}: ${report.scenarios[name]!.ok ? 'done' : `FAILED: ${report.scenarios[name]!.error}`}`);
  save();
}

const lab = new Lab();
save();
try {
  const t = now();
  await lab.start(log);
  for (const port of PORTS) await lab.iperfServer(port);
  report.setupMs = now() - t;
  log(`lab ready in ${report.setupMs} ms`);
  save();

  // 1. A class at 50 Mbit/s through REST; TCP for 12 s (10 steady seconds: on a busy host the
  // judge leaves out each second in which the guest stalled, and needs 5).
  let single = 0;
  await scenario('rate50', async () => {
    const created = await lab.createClass({ name: 'single', rate: '50mbit', match: { dst: [`${RECEIVERS[0]}/32`] } });
    single = created.id;
    const appliedAtMs = await lab.kernelRateIs(single, mbit(50));
    const before = lab.stats(single);
    const wireBefore = await lab.sentWireBytes();
    const run = await lab.iperf(RECEIVERS[0], PORTS[0], 12);
    const wireBytes = (await lab.sentWireBytes()) - wireBefore;
    const host = await lab.host();
    return { classId: single, budgetMbps: 50, appliedAtMs, run, wireBytes, stats: statsDelta(before, lab.stats(single)), hostMode: host.status?.mode, hostModeDetail: host.status?.modeDetail };
  });

  // 2. 50 → 20 Mbit/s through REST while traffic runs.
  await scenario('rateChange', async () => {
    const programBefore = lab.programId();
    const readyLines = lab.agent!.lines.filter((l) => l.msg === 'interface ready').length;
    const before = lab.stats(single);
    const t = traffic(lab, RECEIVERS[0], PORTS[0], 14);
    await at(t, 5_000);
    const patchAtMs = now();
    await lab.patchClass('single', { rate: '20mbit' });
    const appliedAtMs = await lab.kernelRateIs(single, mbit(20));
    const run = await t.done;
    return {
      classId: single,
      fromMbps: 50,
      toMbps: 20,
      patchAtMs,
      appliedAtMs,
      run,
      stats: statsDelta(before, lab.stats(single)),
      programBefore,
      programAfter: lab.programId(),
      installsDuring: lab.agent!.lines.filter((l) => l.msg === 'interface ready').length - readyLines,
    };
  });

  // 3. Two classes by destination prefix, 30 and 10 Mbit/s, sending at once for 12 s (8 s once
  // left 3 seconds to judge after four stalled ones were left out, with two engineers' builds on the host).
  await scenario('twoClasses', async () => {
    const budgets = [30, 10];
    const ids: number[] = [];
    for (const [i, budget] of budgets.entries()) {
      const c = await lab.createClass({ name: `pair-${budget}`, rate: `${budget}mbit`, match: { dst: [`${RECEIVERS[1 + i]}/32`] } });
      ids.push(c.id);
      await lab.kernelRateIs(c.id, mbit(budget));
    }
    const before = ids.map((id) => lab.stats(id));
    const runs = await Promise.all(budgets.map((_, i) => lab.iperf(RECEIVERS[1 + i]!, PORTS[i]!, 12)));
    return { flows: budgets.map((budgetMbps, i) => ({ classId: ids[i], budgetMbps, run: runs[i], stats: statsDelta(before[i]!, lab.stats(ids[i]!)) })) };
  });

  // 4. Borrowing: parent 40, children 10 guaranteed / ceil 40; one alone, then both.
  await scenario('borrowing', async () => {
    const parent = await lab.createClass({ name: 'parent-40', rate: '40mbit' });
    const kids: number[] = [];
    for (const [i, name] of ['child-a', 'child-b'].entries()) {
      const c = await lab.createClass({ name, rate: '10mbit', ceil: '40mbit', parent: 'parent-40', match: { dst: [`${RECEIVERS[3 + i]}/32`] } });
      kids.push(c.id);
      await lab.kernelRateIs(c.id, mbit(10));
    }
    // The effective rates the agent's borrowing loop writes, sampled while traffic runs.
    const rates: Array<{ atMs: number; a?: number; b?: number }> = [];
    const sampler = setInterval(() => rates.push({ atMs: now(), a: lab.kernelRate(kids[0]!), b: lab.kernelRate(kids[1]!) }), 500);
    try {
      const a = traffic(lab, RECEIVERS[3], PORTS[0], 18);
      await at(a, 8_000);
      const b = traffic(lab, RECEIVERS[4], PORTS[1], 10);
      const [runA, runB] = await Promise.all([a.done, b.done]);
      return { parentId: parent.id, childIds: kids, parentMbps: 40, guaranteeMbps: 10, ceilMbps: 40, runA, runB, bSpawnedAtMs: b.spawnedAtMs, effectiveRates: rates };
    } finally {
      clearInterval(sampler);
    }
  });

  // 6. SIGKILL of the agent during traffic; a new agent adopts the pinned state.
  await scenario('agentKill', async () => {
    const budgetMbps = lab.kernelRate(single)! / 1e6;
    const programBefore = lab.programId();
    const slotStateBefore = lab.kernelRate(single);
    const t = traffic(lab, RECEIVERS[0], PORTS[0], 18);
    await at(t, 4_000);
    const killedAtMs = now();
    await killed(lab.agent!.child, 'SIGKILL');
    const killedAgentOutput = lab.agent!.tail(5);
    // Pinned state keeps enforcing with no agent: measured for six whole seconds before the restart
    // (a fresh-clone run once had three of four such seconds excluded for guest stalls of 24–51 ms,
    // leaving one to judge; the spec needs three).
    await at(t, 11_000);
    const programWhileDead = lab.programId();
    const restartedAtMs = now();
    const agent = lab.startAgent();
    const ready = await lab.withAgentLog(until('the restarted agent to install', () => agent.find('interface ready'), GUEST_WAIT_MS, 100));
    const applied = await lab.withAgentLog(until('the restarted agent to apply', () => agent.find('applied'), GUEST_WAIT_MS, 100));
    const run = await t.done;
    const host = await lab.withAgentLog(until('a heartbeat from the restarted agent', async () => {
      const h = await lab.host();
      return h?.status && Date.parse(h.lastSeenAt) >= Date.now() - 2_000 && h.status.appliedRevision > 0 ? h : undefined;
    }, GUEST_WAIT_MS, 200));
    return {
      classId: single,
      budgetMbps,
      run,
      killedAtMs,
      restartedAtMs,
      killedAgentOutput,
      programBefore,
      programWhileDead,
      programAfter: lab.programId(),
      rateBefore: slotStateBefore,
      rateAfter: lab.kernelRate(single),
      adopted: ready.adopted,
      appliedChanges: applied.changes,
      hostMode: host.status.mode,
    };
  });

  // 7. ECN at the shaper on fq: two 20 Mbit/s classes at once, one with ecn.threshold 5ms, both
  // Reno with ECN negotiated (tcp_ecn=1 in the sender: request it; the receiver's default 2 accepts).
  await scenario('ecn', async () => {
    const budgets = [{ name: 'ecn-20', ecn: { threshold: '5ms' } }, { name: 'plain-20' }];
    const ids: number[] = [];
    for (const [i, b] of budgets.entries()) {
      const c = await lab.createClass({ ...b, rate: '20mbit', match: { dst: [`${RECEIVERS[5 + i]}/32`] } });
      ids.push(c.id);
      await lab.kernelRateIs(c.id, mbit(20));
    }
    const ecnBefore = (await lab.inSender('sysctl', ['-n', 'net.ipv4.tcp_ecn'])).trim();
    await lab.inSender('sysctl', ['-qw', 'net.ipv4.tcp_ecn=1', 'net.ipv4.tcp_no_metrics_save=1']);
    try {
      const counters = async () => ({ sender: await netCounters(lab.sender), receiver: await netCounters(lab.receiver) });
      const before = { stats: ids.map((id) => lab.stats(id)), hist: ids.map((id) => lab.delayHistogram(id)), net: await counters() };
      // Reno answers CE as RFC 3168 says (half the window); the guest's default may be anything.
      const runs = await Promise.all(ids.map((_, i) => lab.iperf(RECEIVERS[5 + i]!, PORTS[i]!, 8, ['-C', 'reno'])));
      const net = await counters();
      return {
        flows: ids.map((id, i) => ({
          classId: id,
          name: budgets[i]!.name,
          run: runs[i],
          stats: statsDelta(before.stats[i]!, lab.stats(id)),
          delayCounts: lab.delayHistogram(id).buckets.map((b, k) => b.count - before.hist[i]!.buckets[k]!.count),
        })),
        sender: counterGrowth(before.net.sender, net.sender),
        receiver: counterGrowth(before.net.receiver, net.receiver),
      };
    } finally {
      await lab.inSender('sysctl', ['-qw', `net.ipv4.tcp_ecn=${ecnBefore}`]);
    }
  });

  // 5. Control: fq replaced by pfifo while traffic runs; pacer must notice and say so.
  await scenario('pfifo', async () => {
    const before = lab.stats(single);
    const hostBefore = await lab.host();
    const horizonBefore = lab.kernelClass(single)?.horizon_ns;
    const t = traffic(lab, RECEIVERS[0], PORTS[0], 12);
    await at(t, 3_000);
    const linesBefore = lab.agent!.lines.length;
    const replacedAtMs = now();
    await lab.inSender('tc', ['qdisc', 'replace', 'dev', 'pe0', 'root', 'pfifo']);
    const rootAfter = (await lab.inSender('tc', ['qdisc', 'show', 'dev', 'pe0', 'root'])).trim();
    let noticedAtMs: number | undefined;
    let hostAfter: any;
    let noticeError: string | undefined;
    try {
      hostAfter = await until('the host status to say policing', async () => {
        const h = await lab.host();
        return h?.status?.mode === 'policing' ? h : undefined;
      }, 20_000, 200);
      noticedAtMs = now();
    } catch (err) {
      noticeError = (err as Error).message;
      hostAfter = await lab.host();
    }
    const run = await t.done;
    const warnings = lab.agent!.lines.slice(linesBefore).filter((l) => l.level >= 40).map((l) => l.msg);
    return {
      classId: single,
      budgetMbps: lab.kernelRate(single)! / 1e6,
      modeBefore: hostBefore.status?.mode,
      rootAfter,
      replacedAtMs,
      noticedAtMs,
      noticeError,
      hostMode: hostAfter?.status?.mode,
      hostModeDetail: hostAfter?.status?.modeDetail,
      settingsFlags: lab.kernelSettingsFlags(),
      horizonNsBefore: horizonBefore,
      horizonNsAfter: lab.kernelClass(single)?.horizon_ns,
      run,
      stats: statsDelta(before, lab.stats(single)),
      agentWarnings: warnings,
    };
  });
} catch (err) {
  report.setupError = (err as Error).stack ?? String(err);
  process.exitCode = 1;
  log(`lab failed: ${report.setupError}`);
} finally {
  report.agentLog = lab.agent?.tail(60);
  report.loadEnd = loadavg();
  save();
  monitor.stop();
  await lab.stop().catch((err: Error) => log(`lab stop: ${err.message}`));
}
