/**
 * A sweep worker: runs one point at a time (the scenario text the sweep built and validated) and
 * answers with its key metrics. `stop` ends the running point early (complete: false); the run
 * loop yields to the event loop every 50 ms of wall time, so the message is seen promptly.
 */
import { parentPort } from 'node:worker_threads';
import { loadScenario } from './scenario/load.js';
import { Simulation } from './run.js';
import { metricsOf, type FromWorker, type ToWorker } from './sweep.js';

const port = parentPort;
if (!port) throw new Error('sweep-worker.js runs as a worker thread');
let stop = false;
port.on('message', (m: ToWorker) => {
  if (m.kind === 'stop') {
    stop = true;
    return;
  }
  void (async () => {
    let reply: FromWorker;
    try {
      const result = await new Simulation(loadScenario(m.text, m.file), m.seed).run({ shouldStop: () => stop });
      reply = { kind: 'result', index: m.index, metrics: metricsOf(result) };
    } catch (e) {
      reply = { kind: 'error', index: m.index, message: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply);
  })();
});
