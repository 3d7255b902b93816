// Concern: the lifecycle of a BPF ELF object — open, load into the kernel (with the verifier
// log on rejection), find its maps and programs, close. Maps and programs returned here
// borrow the object's fds: they are valid until close().
import { constants } from 'node:os';
import { basename } from 'node:path';
import koffi from 'koffi';
import { BpfError, checkPtr } from './errors.js';
import { BpfMap, type MapBtf } from './map.js';
import { lib, logMark, logSince, ObjectOpenOpts, type Ptr } from './native.js';
import { BpfProgram } from './program.js';

export interface OpenOptions {
  /** Object name override; libbpf prefixes internal maps with it (".bss" → "<name>.bss"). */
  name?: string;
  /**
   * bpffs directory for maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`: load() pins
   * them there as <pinRoot>/<map name>, or reuses a compatible map already pinned at that path
   * (libbpf's default root is /sys/fs/bpf).
   */
  pinRoot?: string;
}

export class BpfObject {
  readonly path: string;
  private handle: Ptr | undefined;
  private loaded = false;
  private readonly maps = new Map<string, BpfMap>();
  private readonly programs = new Map<string, BpfProgram>();

  private constructor(path: string, handle: Ptr) {
    this.path = path;
    this.handle = handle;
  }

  static open(path: string, options: OpenOptions = {}): BpfObject {
    const mark = logMark();
    // libbpf copies both strings during open (pin paths are built then), so koffi's temporary copies suffice.
    const opts = { sz: koffi.sizeof(ObjectOpenOpts), object_name: options.name ?? null, pin_root_path: options.pinRoot ?? null };
    // libbpf 1.x: NULL + errno on failure (ENOENT for a missing file, EINVAL/LIBBPF_ERRNO__FORMAT for bad ELF).
    const handle = checkPtr<Ptr>(lib.bpf_object__open_file(path, opts), 'open', `BPF object ${path}`, () => logSince(mark));
    return new BpfObject(path, handle);
  }

  /** libbpf's object name: the `name` option, else the file name up to its first dot. */
  get name(): string {
    return lib.bpf_object__name(this.ptr()) as string;
  }

  /**
   * BTF of this loaded object for a map created outside it (BpfMap.create) with the same key and
   * value types as a map the object declares: the type ids by name and kind (BTF_KIND_*).
   */
  btfFor(key: { name: string; kind: number }, value: { name: string; kind: number }): MapBtf {
    if (!this.loaded) throw new Error(`BPF object ${this.path}: BTF is loaded with the object; load() first`);
    const fd = lib.bpf_object__btf_fd(this.ptr()) as number;
    const btf = lib.bpf_object__btf(this.ptr()) as Ptr | null;
    if (fd < 0 || !btf) throw new Error(`BPF object ${this.path} has no BTF loaded in the kernel`);
    const id = (t: { name: string; kind: number }): number => {
      const found = lib.btf__find_by_name_kind(btf, t.name, t.kind) as number;
      if (found <= 0) throw new Error(`BPF object ${this.path}: no BTF type ${t.name} of kind ${t.kind}`);
      return found;
    };
    return { fd, keyTypeId: id(key), valueTypeId: id(value) };
  }

  private ptr(): Ptr {
    if (this.handle === undefined) throw new Error(`BPF object ${this.path} is closed`);
    return this.handle;
  }

  /**
   * The maps this object pins by name (LIBBPF_PIN_BY_NAME), with the paths load() pins them at
   * or reuses them from; available before load().
   */
  pinnedMaps(): Array<{ name: string; path: string }> {
    const out: Array<{ name: string; path: string }> = [];
    for (let m = lib.bpf_object__next_map(this.ptr(), null) as Ptr | null; m; m = lib.bpf_object__next_map(this.ptr(), m) as Ptr | null) {
      const path = lib.bpf_map__pin_path(m) as string | null;
      if (path) out.push({ name: lib.bpf_map__name(m) as string, path });
    }
    return out;
  }

  /**
   * Creates the maps and loads every program. When the verifier rejects a program, libbpf
   * retries with logging on and prints the log through libbpf_set_print; that text becomes
   * the BpfError's detail.
   */
  load(): void {
    const mark = logMark();
    const ret = lib.bpf_object__load(this.ptr()) as number;
    if (ret < 0) {
      const log = logSince(mark);
      // libbpf 1.1 prints "prog 'NAME': BPF program load failed: ..." before the verifier log.
      const rejected = /prog '([^']+)': BPF program load failed/.exec(log)?.[1];
      const operation = rejected ? `load program "${rejected}"` : 'load';
      throw new BpfError({ operation, target: `BPF object ${basename(this.path)}`, errno: -ret, detail: log });
    }
    this.loaded = true;
  }

  /**
   * A map by its name, or an internal (global variable) map by its section: ".bss", ".data",
   * ".rodata". libbpf names those "<object name>.bss", truncating the object name so the whole
   * fits the kernel's 15 characters — the section suffix is always kept.
   */
  map(name: string): BpfMap {
    const cached = this.maps.get(name);
    if (cached) return cached;
    this.assertLoaded(`map "${name}"`);
    const all: Array<{ ptr: Ptr; name: string }> = [];
    for (let m = lib.bpf_object__next_map(this.ptr(), null) as Ptr | null; m; m = lib.bpf_object__next_map(this.ptr(), m) as Ptr | null) {
      all.push({ ptr: m, name: lib.bpf_map__name(m) as string });
    }
    const found = all.find((m) => m.name === name) ?? (name.startsWith('.') ? all.find((m) => m.name.endsWith(name)) : undefined);
    if (!found) {
      throw new BpfError({
        operation: `find map "${name}"`,
        target: `object ${basename(this.path)}`,
        errno: constants.errno.ENOENT,
        detail: `maps in this object: ${all.map((m) => m.name).join(', ') || '(none)'}`,
      });
    }
    const p = found.ptr;
    const map = new BpfMap(
      {
        fd: lib.bpf_map__fd(p) as number,
        name: found.name,
        type: lib.bpf_map__type(p) as number,
        keySize: lib.bpf_map__key_size(p) as number,
        valueSize: lib.bpf_map__value_size(p) as number,
        maxEntries: lib.bpf_map__max_entries(p) as number,
      },
      false,
    );
    this.maps.set(name, map);
    return map;
  }

  program(name: string): BpfProgram {
    const cached = this.programs.get(name);
    if (cached) return cached;
    this.assertLoaded(`program "${name}"`);
    const p = lib.bpf_object__find_program_by_name(this.ptr(), name) as Ptr | null;
    if (!p) throw new BpfError({ operation: `find program "${name}"`, target: `object ${basename(this.path)}`, errno: constants.errno.ENOENT });
    const prog = new BpfProgram(lib.bpf_program__fd(p) as number, name, p, false);
    this.programs.set(name, prog);
    return prog;
  }

  /** Frees the object and closes its fds. Pinned maps/programs and attached links stay in the kernel. */
  close(): void {
    if (this.handle === undefined) return;
    // Invalidate what we handed out first: their fds die with the object.
    for (const m of this.maps.values()) m.close();
    for (const p of this.programs.values()) p.close();
    this.maps.clear();
    this.programs.clear();
    lib.bpf_object__close(this.handle);
    this.handle = undefined;
  }

  private assertLoaded(what: string): void {
    this.ptr();
    // Before bpf_object__load there are no fds: bpf_map__fd/bpf_program__fd return -EINVAL.
    if (!this.loaded) throw new Error(`BPF object ${basename(this.path)}: load() it before asking for ${what}`);
  }
}
