/**
 * One bulk TCP transfer between two test namespaces whose sending socket stays open afterwards, so
 * `ss -ti` can still read its state (ECN negotiated, ssthresh, retransmissions):
 *
 *   sink HOST BYTES     listens on port 0, prints `listening PORT`; on each connection, once BYTES
 *                       have arrived, answers one byte.
 *   send HOST PORT BYTES  connects, writes BYTES, prints `done LOCAL_PORT` when the answer arrives
 *                       (every byte was received), and keeps the socket open until killed.
 *
 * Each runs as `nsenter --net=/run/netns/NS node tcp-bulk.js …`: the sockets belong to that
 * namespace, and so do its sysctls (net.ipv4.tcp_ecn).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { killed } from './api-process.js';

/** Spawns sinks and senders; killAll() in after/afterEach so no process outlives a test. */
export class TcpBulk {
  private readonly live = new Set<ChildProcess>();

  /** A sink in `ns` listening on `host`; resolves with its port. */
  async sink(ns: string, host: string, bytes: number): Promise<number> {
    return Number(await this.start(ns, ['sink', host, String(bytes)], 'listening'));
  }

  /** Sends `bytes` from `ns` to host:port; resolves with the sender's local port once all arrived. */
  async send(ns: string, host: string, port: number, bytes: number, timeoutMs = 60_000): Promise<number> {
    return Number(await this.start(ns, ['send', host, String(port), String(bytes)], 'done', timeoutMs));
  }

  private start(ns: string, args: string[], word: string, timeoutMs = 20_000): Promise<string> {
    const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, process.execPath, fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.live.add(child);
    child.on('exit', () => this.live.delete(child));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcp-bulk ${args.join(' ')}: no "${word}" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`tcp-bulk ${args.join(' ')} exited (${code ?? signal}) before "${word}": ${stderr.trim()}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const [w, value = ''] = line.split(' ');
        if (w !== word) return;
        clearTimeout(timer);
        resolve(value);
      });
    });
  }

  /** SIGKILLs every process still running and waits until each has exited. */
  async killAll(): Promise<void> {
    await Promise.all([...this.live].map((child) => killed(child)));
    this.live.clear();
  }
}

function sink(host: string, bytes: number): void {
  const server = net.createServer((sock) => {
    let got = 0;
    sock.on('data', (d) => {
      const before = got;
      got += d.length;
      if (before < bytes && got >= bytes) sock.write('k');
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen(0, host, () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}

function send(host: string, port: number, bytes: number): void {
  const sock = net.connect({ host, port }, () => sock.write(Buffer.alloc(bytes, 0x61)));
  sock.once('data', () => console.log(`done ${sock.localPort}`));
  sock.on('error', (err) => {
    console.error(err.message);
    process.exit(1);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, host = '', a, b] = process.argv.slice(2);
  if (mode === 'sink') sink(host, Number(a));
  else if (mode === 'send') send(host, Number(a), Number(b));
  else throw new Error('usage: tcp-bulk.js sink HOST BYTES | send HOST PORT BYTES');
}
