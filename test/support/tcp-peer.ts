/**
 * TCP endpoints for the sock_ops kernel tests, each a node process that is moved into a cgroup
 * v2 directory BEFORE it creates a socket (sock_ops classifies a socket by the cgroup it was
 * created in) and then enters a test network namespace:
 *
 *   sh -c 'echo $$ > CG/cgroup.procs && exec nsenter --net=/run/netns/NS node tcp-peer.js …'
 *
 * (nsenter --net only calls setns and execs, so the pid stays the one we spawned.)
 *
 * As a script: `server HOST` echoes every byte back on port 0 and prints `listening PORT`;
 * `client HOST PORT ROUNDS [--local=ADDR] [--mark=N] [--stop]` connects (with SO_MARK set before
 * connect() when --mark is given: node has no option for it, so that socket is made through libc), then ping-pongs one byte every PING_MS and prints
 * `ready LOCAL_PORT` after ROUNDS rounds (it goes on until killed; with --stop it sends nothing more,
 * so what the sockets hold afterwards does not depend on how long the test takes to look). The steady exchange keeps RTT samples small on
 * both ends (each side's data is acknowledged by the other's next byte, not by a delayed ACK),
 * and gives a passive socket, tuned only after its handshake RTT sample, enough rounds for its
 * RTO to converge (rttvar moves a quarter of the way to rto_min per round).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import koffi from 'koffi';
import { fileURLToPath } from 'node:url';
import { netnsPath, runIn } from '../../shaper-bpf/src/exec.js';
import { killed } from './api-process.js';

const PING_MS = 5;

export interface Peer {
  pid: number;
  /** The port the server listens on, or the client's local port. */
  port: number;
}

/** Spawns and kills peers; killAll() in afterEach/after so no process outlives a test. */
export class TcpPeers {
  private readonly live = new Set<ChildProcess>();

  /** An echo server in `cgroup`, inside `ns`, listening on host (e.g. '::' for dual-stack). */
  server(ns: string, cgroup: string, host: string): Promise<Peer> {
    return this.start(ns, cgroup, ['server', host], 'listening');
  }

  /** A client in `cgroup`, inside `ns`, connected and past `rounds` ping-pongs (default 60). */
  client(ns: string, cgroup: string, host: string, port: number, opts: { rounds?: number; localAddress?: string; mark?: number; stop?: boolean } = {}): Promise<Peer> {
    const { rounds = 60, localAddress, mark, stop } = opts;
    const extra = [...(localAddress ? [`--local=${localAddress}`] : []), ...(mark !== undefined ? [`--mark=${mark}`] : []), ...(stop ? ['--stop'] : [])];
    return this.start(ns, cgroup, ['client', host, String(port), String(rounds), ...extra], 'ready');
  }

  private start(ns: string, cgroup: string, args: string[], word: string): Promise<Peer> {
    const script = 'echo $$ > "$1/cgroup.procs" && ns=$2 && shift 2 && exec nsenter --net="$ns" "$@"';
    const child = spawn('sh', ['-c', script, 'sh', cgroup, netnsPath(ns), process.execPath, fileURLToPath(import.meta.url), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.live.add(child);
    child.on('exit', () => this.live.delete(child));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcp-peer ${args.join(' ')}: no "${word}" within 10 s; stderr: ${stderr}`)), 10_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`tcp-peer ${args.join(' ')} exited (${code ?? signal}) before "${word}": ${stderr.trim()}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const [w, port] = line.split(' ');
        if (w !== word) return;
        clearTimeout(timer);
        resolve({ pid: child.pid!, port: Number(port) });
      });
    });
  }

  /** SIGKILLs every peer still running and waits until each has exited (so its cgroup empties). */
  async killAll(): Promise<void> {
    await Promise.all([...this.live].map((child) => killed(child)));
    this.live.clear();
  }
}

/**
 * The RTO (ms) of the one established connection in `ns` matching an ss filter such as
 * `sport = :40000`, from `ss -tin` (iproute2 6.1 prints rto: but not minrto:).
 */
export async function rtoMs(ns: string, filter: string): Promise<number> {
  const result = await runIn(ns, 'ss', ['-tinH', 'state', 'established', filter]);
  if (result.code !== 0) throw new Error(`ss in ${ns} exited ${result.code}: ${result.stderr.trim()}`);
  const rtos = [...result.stdout.matchAll(/\brto:([\d.]+)/g)].map((m) => Number(m[1]));
  if (rtos.length !== 1) throw new Error(`expected one connection matching "${filter}" in ${ns}, ss shows ${rtos.length}:\n${result.stdout}`);
  return rtos[0]!;
}

function serve(host: string): void {
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d) => sock.write(d));
    sock.on('error', () => sock.destroy());
  });
  server.listen(0, host, () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}

const SOL_SOCKET = 1;
const SO_MARK = 36; // asm-generic/socket.h

/**
 * A TCP socket to an IPv4 host:port with SO_MARK set before connect(), so the mark is on the socket
 * when sock_ops sees it connect (TCP_CONNECT_CB). connect() blocks: the peer is on a veth.
 */
function markedSocket(host: string, port: number, mark: number): net.Socket {
  const libc = koffi.load('libc.so.6');
  const socket = libc.func('int socket(int, int, int)');
  const setsockopt = libc.func('int setsockopt(int, int, int, const void *, uint32_t)');
  const connectFd = libc.func('int connect(int, const void *, uint32_t)');
  const fd = socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0) as number;
  if (fd < 0) throw new Error('socket() failed');
  const value = Buffer.alloc(4);
  value.writeUInt32LE(mark);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, value, 4) !== 0) throw new Error(`setsockopt(SO_MARK ${mark}) failed`);
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(2, 0);
  addr.writeUInt16BE(port, 2);
  Buffer.from(ipaddr.IPv4.parse(host).toByteArray()).copy(addr, 4);
  if (connectFd(fd, addr, 16) !== 0) throw new Error(`connect(${host}:${port}) failed`);
  const sock = new net.Socket({ fd, readable: true, writable: true });
  sock.setNoDelay(true);
  return sock;
}

/** A socket wrapped from an fd may not know its address in node's API: ask the handle. */
function localPortOf(sock: net.Socket): number {
  const out: { port?: number } = {};
  (sock as unknown as { _handle: { getsockname(o: object): void } })._handle.getsockname(out);
  return out.port ?? 0;
}

function connect(host: string, port: number, readyAfter: number, localAddress: string | undefined, mark: number | undefined, stop: boolean): void {
  let sock: net.Socket;
  if (mark === undefined) {
    sock = net.connect({ host, port, localAddress, noDelay: true }, () => sock.write('x'));
  } else {
    sock = markedSocket(host, port, mark);
    sock.write('x');
  }
  let rounds = 0;
  sock.on('data', () => {
    if (++rounds === readyAfter) console.log(`ready ${sock.localPort ?? localPortOf(sock)}`);
    if (stop && rounds >= readyAfter) return;
    setTimeout(() => sock.write('x'), PING_MS);
  });
  sock.on('error', (err) => {
    console.error(err.message);
    process.exit(1);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, host = '', port] = process.argv.slice(2);
  if (mode === 'server') serve(host);
  else if (mode === 'client') {
    const flags = process.argv.slice(6);
    const flag = (name: string) => flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
    const mark = flag('mark');
    connect(host, Number(port), Number(process.argv[5]), flag('local'), mark === undefined ? undefined : Number(mark), flags.includes('--stop'));
  } else throw new Error(`usage: tcp-peer.js server HOST | client HOST PORT ROUNDS [--local=ADDR] [--mark=N] [--stop]`);
}
