// Concern: one loaded BPF program — its identity (fd, name, kernel id), running it in the
// kernel with BPF_PROG_TEST_RUN, building/reading the __sk_buff context that sched_cls
// (tc) programs get, and pinning.
import koffi from 'koffi';
import { check } from './errors.js';
import { closeFd, objInfo, openPinnedFd } from './info.js';
import { FdObject } from './fd-object.js';
import { lib, ProgInfoHead, TestRunOpts, type Ptr } from './native.js';

export interface TestRunOptions {
  /** Packet bytes (for sched_cls: an Ethernet frame, at least 14 bytes). */
  data: Buffer;
  /** Context in, e.g. skbContext(...) for sched_cls. */
  ctxIn?: Buffer;
  /** Bytes to reserve for the context out; defaults to ctxIn's length. */
  ctxOutSize?: number;
  /** Bytes to reserve for the packet out; defaults to data's length. */
  dataOutSize?: number;
  /** Runs; durationNs is the average per run. */
  repeat?: number;
  cpu?: number;
  flags?: number;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  dataOut: Buffer;
  ctxOut: Buffer | undefined;
}

interface ProgInfoStruct { type: number; id: number; tag: number[]; name: string }

export class BpfProgram extends FdObject {
  readonly name: string;
  /** struct bpf_program * when the program came from a BpfObject (needed by libbpf attach APIs). */
  readonly handle: Ptr | undefined;
  private info: ProgInfoStruct | undefined;

  constructor(fd: number, name: string, handle: Ptr | undefined, ownsFd: boolean) {
    super(fd, ownsFd);
    this.name = name;
    this.handle = handle;
  }

  /** Opens a program by its kernel id (e.g. the one a tc filter runs, when its pin is gone). */
  static openById(id: number): BpfProgram {
    return BpfProgram.fromFd(check(lib.bpf_prog_get_fd_by_id(id) as number, 'open program by id', `program id ${id}`), `program id ${id}`);
  }

  static openPinned(path: string): BpfProgram {
    return BpfProgram.fromFd(openPinnedFd(path, 'prog', 'program'), `program pinned at ${path}`);
  }

  /** Takes ownership of a program fd, learning its name from the kernel. */
  private static fromFd(fd: number, what: string): BpfProgram {
    try {
      const info = objInfo<ProgInfoStruct>(fd, ProgInfoHead, what);
      const prog = new BpfProgram(fd, info.name, undefined, true);
      prog.info = info;
      return prog;
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  protected get target(): string {
    return `program "${this.name}"`;
  }

  private kernelInfo(): ProgInfoStruct {
    this.info ??= objInfo<ProgInfoStruct>(this.fd, ProgInfoHead, this.target);
    return this.info;
  }

  /** Kernel program id (what `bpftool prog`, tc and cgroup listings show). */
  get id(): number {
    return this.kernelInfo().id;
  }

  /**
   * The kernel's tag of the program: a hash of its instructions with map references blanked
   * (bpf_prog_calc_tag), as hex. Two loads of the same object have the same tag; a program
   * built from other sources has another, which is how an agent tells an attached program from
   * an older build from its own.
   */
  get tag(): string {
    return Buffer.from(this.kernelInfo().tag).toString('hex');
  }

  /** enum bpf_prog_type value (3 = sched_cls, 13 = sock_ops). */
  get type(): number {
    return this.kernelInfo().type;
  }

  /** Runs the program once (or `repeat` times) in the kernel on a synthetic packet. */
  testRun(opts: TestRunOptions): TestRunResult {
    const dataOut = Buffer.alloc(opts.dataOutSize ?? opts.data.length);
    const ctxOutSize = opts.ctxOutSize ?? opts.ctxIn?.length ?? 0;
    const ctxOut = ctxOutSize > 0 ? Buffer.alloc(ctxOutSize) : undefined;
    // Buffers in void* fields are passed by address (no copy), so the kernel writes straight
    // into dataOut/ctxOut. They stay referenced by `run` for the duration of the call.
    const run = {
      sz: koffi.sizeof(TestRunOpts),
      data_in: opts.data,
      data_size_in: opts.data.length,
      data_out: dataOut,
      data_size_out: dataOut.length,
      ctx_in: opts.ctxIn ?? null,
      ctx_size_in: opts.ctxIn?.length ?? 0,
      ctx_out: ctxOut ?? null,
      ctx_size_out: ctxOut?.length ?? 0,
      repeat: opts.repeat ?? 1,
      flags: opts.flags ?? 0,
      cpu: opts.cpu ?? 0,
      retval: 0,
      duration: 0,
      batch_size: 0,
    };
    check(lib.bpf_prog_test_run_opts(this.fd, run) as number, 'test run', this.target);
    return {
      retval: run.retval,
      durationNs: run.duration,
      // data_size_out/ctx_size_out come back as the lengths the kernel actually wrote.
      dataOut: dataOut.subarray(0, run.data_size_out),
      ctxOut: ctxOut?.subarray(0, run.ctx_size_out),
    };
  }

}

// ---- struct __sk_buff as ctx_in/ctx_out of a sched_cls test run ----------------------------------

export const SKB_CONTEXT_SIZE = 192;
// Offsets in uapi struct __sk_buff (checked with offsetof on this machine).
const SKB = { len: 0, mark: 8, priority: 32, ifindex: 40, cb: 48, tcClassid: 72, tstamp: 152, wireLen: 160, gsoSegs: 164, gsoSize: 176 } as const;

/**
 * Fields the kernel lets a test run set in ctx_in (net/bpf/test_run.c convert___skb_to_skb
 * rejects any other non-zero byte with EINVAL). `ifindex` must name a device in the caller's
 * network namespace.
 */
export interface SkbContextIn {
  mark?: number;
  priority?: number;
  ifindex?: number;
  tstamp?: bigint;
  cb?: [number, number, number, number, number];
  wireLen?: number;
  gsoSegs?: number;
  gsoSize?: number;
}

export interface SkbContextOut {
  len: number;
  mark: number;
  priority: number;
  ifindex: number;
  tcClassid: number;
  tstamp: bigint;
  cb: number[];
}

export function skbContext(fields: SkbContextIn = {}): Buffer {
  const buf = Buffer.alloc(SKB_CONTEXT_SIZE);
  buf.writeUInt32LE(fields.mark ?? 0, SKB.mark);
  buf.writeUInt32LE(fields.priority ?? 0, SKB.priority);
  buf.writeUInt32LE(fields.ifindex ?? 0, SKB.ifindex);
  buf.writeBigUInt64LE(fields.tstamp ?? 0n, SKB.tstamp);
  (fields.cb ?? [0, 0, 0, 0, 0]).forEach((v, i) => buf.writeUInt32LE(v, SKB.cb + 4 * i));
  buf.writeUInt32LE(fields.wireLen ?? 0, SKB.wireLen);
  buf.writeUInt32LE(fields.gsoSegs ?? 0, SKB.gsoSegs);
  buf.writeUInt32LE(fields.gsoSize ?? 0, SKB.gsoSize);
  return buf;
}

export function readSkbContext(buf: Buffer): SkbContextOut {
  if (buf.length < SKB_CONTEXT_SIZE) throw new RangeError(`__sk_buff is ${SKB_CONTEXT_SIZE} bytes, got ${buf.length}`);
  return {
    len: buf.readUInt32LE(SKB.len),
    mark: buf.readUInt32LE(SKB.mark),
    priority: buf.readUInt32LE(SKB.priority),
    ifindex: buf.readUInt32LE(SKB.ifindex),
    tcClassid: buf.readUInt32LE(SKB.tcClassid),
    tstamp: buf.readBigUInt64LE(SKB.tstamp),
    cb: [0, 1, 2, 3, 4].map((i) => buf.readUInt32LE(SKB.cb + 4 * i)),
  };
}
