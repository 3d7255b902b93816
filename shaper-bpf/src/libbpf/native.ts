// Concern: the raw FFI layer. Loads the system libbpf.so.1 and libc with koffi,
// declares the C structs libbpf takes by pointer (sizes asserted at load time,
// so a libbpf with another layout fails loudly instead of corrupting memory),
// and captures libbpf's log output so load failures can carry the verifier log.
// Nothing here throws BpfError; callers in the other files interpret returns.
// Call these functions synchronously only (never koffi's `.async`): the log callback must run
// on the main thread while libbpf waits for it, and errno is read right after each call.
import koffi from 'koffi';

/** Sizes measured with sizeof() against libbpf-dev 1.1.2 / linux uapi headers on this machine (see machine.md). */
export const EXPECTED_SIZES = {
  bpf_tc_hook: 24,
  bpf_tc_opts: 32,
  bpf_test_run_opts: 80,
  bpf_map_batch_opts: 24,
  bpf_map_create_opts: 48,
  bpf_object_open_opts: 80,
  bpf_map_info: 88,
  bpf_prog_info_head: 80, // prefix of bpf_prog_info up to and including name[16]
} as const;

// A pointer to an opaque libbpf object (struct bpf_object *, ...). koffi 3 represents pointers as BigInt.
export type Ptr = bigint;
// koffi functions are untyped at the call site; each wrapper below narrows them.
type Fn = (...args: any[]) => any;

const libbpf = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('bpf_link');
koffi.opaque('btf');

// ---- structs (field names follow the C headers) ----------------------------------------------

export const TcHook = koffi.struct('bpf_tc_hook', {
  sz: 'size_t',
  ifindex: 'int',
  attach_point: 'int', // enum bpf_tc_attach_point
  parent: 'uint32_t',
  // `size_t :0` in C: koffi's 8-byte struct alignment reproduces the tail padding.
});

export const TcOpts = koffi.struct('bpf_tc_opts', {
  sz: 'size_t',
  prog_fd: 'int',
  flags: 'uint32_t',
  prog_id: 'uint32_t',
  handle: 'uint32_t',
  priority: 'uint32_t',
});

export const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *', // a Buffer here is passed by address, without a copy (checked in tests)
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

export const MapBatchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

export const MapCreateOpts = koffi.struct('bpf_map_create_opts', {
  sz: 'size_t',
  btf_fd: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  inner_map_fd: 'uint32_t',
  map_flags: 'uint32_t',
  map_extra: 'uint64_t',
  numa_node: 'uint32_t',
  map_ifindex: 'uint32_t',
});

export const ObjectOpenOpts = koffi.struct('bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  pin_root_path: 'const char *',
  _removed_attach_prog_fd: 'uint32_t',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'void *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
});

export const MapInfo = koffi.struct('bpf_map_info', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
  name: koffi.array('char', 16, 'String'),
  ifindex: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  netns_dev: 'uint64_t',
  netns_ino: 'uint64_t',
  btf_id: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  _pad: 'uint32_t',
  map_extra: 'uint64_t',
});

// BPF_OBJ_GET_INFO_BY_FD accepts an info_len shorter than the kernel's struct and fills
// only that prefix (kernel/bpf/syscall.c: bpf_prog_get_info_by_fd copies min(len, sizeof)),
// so we declare only the fields we read instead of all of bpf_prog_info's 232 bytes.
export const ProgInfoHead = koffi.struct('bpf_prog_info_head', {
  type: 'uint32_t',
  id: 'uint32_t',
  tag: koffi.array('uint8_t', 8),
  jited_prog_len: 'uint32_t',
  xlated_prog_len: 'uint32_t',
  jited_prog_insns: 'uint64_t',
  xlated_prog_insns: 'uint64_t',
  load_time: 'uint64_t',
  created_by_uid: 'uint32_t',
  nr_map_ids: 'uint32_t',
  map_ids: 'uint64_t',
  name: koffi.array('char', 16, 'String'),
});

/** Throws if the koffi layouts differ from what libbpf 1.1.2 was measured to use. */
export function assertStructLayouts(): void {
  const actual: Record<keyof typeof EXPECTED_SIZES, number> = {
    bpf_tc_hook: koffi.sizeof(TcHook),
    bpf_tc_opts: koffi.sizeof(TcOpts),
    bpf_test_run_opts: koffi.sizeof(TestRunOpts),
    bpf_map_batch_opts: koffi.sizeof(MapBatchOpts),
    bpf_map_create_opts: koffi.sizeof(MapCreateOpts),
    bpf_object_open_opts: koffi.sizeof(ObjectOpenOpts),
    bpf_map_info: koffi.sizeof(MapInfo),
    bpf_prog_info_head: koffi.sizeof(ProgInfoHead),
  };
  const wrong = Object.entries(EXPECTED_SIZES).filter(([k, v]) => actual[k as keyof typeof EXPECTED_SIZES] !== v);
  // Offsets the kernel ABI pins down and a wrong declaration would silently shift.
  const offsets: Array<[string, number, number]> = [
    ['bpf_test_run_opts.retval', koffi.offsetof(TestRunOpts, 'retval'), 56],
    ['bpf_test_run_opts.batch_size', koffi.offsetof(TestRunOpts, 'batch_size'), 76],
    ['bpf_object_open_opts.kernel_log_buf', koffi.offsetof(ObjectOpenOpts, 'kernel_log_buf'), 56],
    ['bpf_map_info.name', koffi.offsetof(MapInfo, 'name'), 24],
    ['bpf_prog_info.name', koffi.offsetof(ProgInfoHead, 'name'), 64],
  ];
  const problems = [
    ...wrong.map(([k, v]) => `sizeof(struct ${k}) is ${actual[k as keyof typeof EXPECTED_SIZES]}, expected ${v}`),
    ...offsets.filter(([, got, want]) => got !== want).map(([f, got, want]) => `offsetof(${f}) is ${got}, expected ${want}`),
  ];
  const major = lib.libbpf_major_version() as number;
  if (major !== 1) problems.push(`libbpf major version is ${major}, expected 1 (the -errno/NULL+errno conventions are 1.x)`);
  if (problems.length > 0) {
    throw new Error(`libbpf.so.1 struct layout mismatch (binding written for libbpf 1.1.2): ${problems.join('; ')}`);
  }
}

// ---- functions ---------------------------------------------------------------------------------

// The print callback receives a va_list; on x86-64 SysV that is a pointer to a 24-byte
// __va_list_tag, which we hand straight to libc's vsnprintf.
const PrintFn = koffi.proto('int libbpf_print_fn_t(int level, void *fmt, void *args)');

export const lib = {
  libbpf_major_version: libbpf.func('uint32_t libbpf_major_version(void)') as Fn,
  libbpf_minor_version: libbpf.func('uint32_t libbpf_minor_version(void)') as Fn,
  libbpf_set_print: libbpf.func('void *libbpf_set_print(libbpf_print_fn_t *fn)') as Fn,
  libbpf_strerror: libbpf.func('int libbpf_strerror(int err, void *buf, size_t size)') as Fn,
  libbpf_num_possible_cpus: libbpf.func('int libbpf_num_possible_cpus(void)') as Fn,

  bpf_object__open_file: libbpf.func('bpf_object *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)') as Fn,
  bpf_object__load: libbpf.func('int bpf_object__load(bpf_object *obj)') as Fn,
  bpf_object__close: libbpf.func('void bpf_object__close(bpf_object *obj)') as Fn,
  bpf_object__name: libbpf.func('const char *bpf_object__name(const bpf_object *obj)') as Fn,
  bpf_object__next_map: libbpf.func('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)') as Fn,
  bpf_object__find_program_by_name: libbpf.func('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)') as Fn,

  bpf_map__fd: libbpf.func('int bpf_map__fd(const bpf_map *map)') as Fn,
  bpf_map__name: libbpf.func('const char *bpf_map__name(const bpf_map *map)') as Fn,
  bpf_map__pin_path: libbpf.func('const char *bpf_map__pin_path(const bpf_map *map)') as Fn,
  bpf_map__type: libbpf.func('int bpf_map__type(const bpf_map *map)') as Fn,
  bpf_map__key_size: libbpf.func('uint32_t bpf_map__key_size(const bpf_map *map)') as Fn,
  bpf_map__value_size: libbpf.func('uint32_t bpf_map__value_size(const bpf_map *map)') as Fn,
  bpf_map__max_entries: libbpf.func('uint32_t bpf_map__max_entries(const bpf_map *map)') as Fn,

  bpf_program__fd: libbpf.func('int bpf_program__fd(const bpf_program *prog)') as Fn,
  bpf_program__name: libbpf.func('const char *bpf_program__name(const bpf_program *prog)') as Fn,
  bpf_program__section_name: libbpf.func('const char *bpf_program__section_name(const bpf_program *prog)') as Fn,
  bpf_program__type: libbpf.func('int bpf_program__type(const bpf_program *prog)') as Fn,
  bpf_program__expected_attach_type: libbpf.func('int bpf_program__expected_attach_type(const bpf_program *prog)') as Fn,
  bpf_program__attach_cgroup: libbpf.func('bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)') as Fn,

  bpf_link__open: libbpf.func('bpf_link *bpf_link__open(const char *path)') as Fn,
  bpf_link__fd: libbpf.func('int bpf_link__fd(const bpf_link *link)') as Fn,
  bpf_link__pin: libbpf.func('int bpf_link__pin(bpf_link *link, const char *path)') as Fn,
  bpf_link__unpin: libbpf.func('int bpf_link__unpin(bpf_link *link)') as Fn,
  bpf_link__detach: libbpf.func('int bpf_link__detach(bpf_link *link)') as Fn,
  bpf_link__destroy: libbpf.func('int bpf_link__destroy(bpf_link *link)') as Fn,

  // Low-level (bpf.h) wrappers: return -errno on failure in libbpf 1.x.
  bpf_map_create: libbpf.func('int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const bpf_map_create_opts *opts)') as Fn,
  bpf_object__btf: libbpf.func('btf *bpf_object__btf(const bpf_object *obj)') as Fn,
  bpf_object__btf_fd: libbpf.func('int bpf_object__btf_fd(const bpf_object *obj)') as Fn,
  btf__find_by_name_kind: libbpf.func('int32_t btf__find_by_name_kind(const btf *btf, const char *type_name, uint32_t kind)') as Fn,
  btf__load_vmlinux_btf: libbpf.func('btf *btf__load_vmlinux_btf(void)') as Fn,
  btf__type_by_id: libbpf.func('const void *btf__type_by_id(const btf *btf, uint32_t id)') as Fn,
  btf__name_by_offset: libbpf.func('const char *btf__name_by_offset(const btf *btf, uint32_t offset)') as Fn,
  btf__free: libbpf.func('void btf__free(btf *btf)') as Fn,
  libbpf_probe_bpf_helper: libbpf.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)') as Fn,
  bpf_prog_load: libbpf.func('int bpf_prog_load(int prog_type, const char *prog_name, const char *license, const void *insns, size_t insn_cnt, const void *opts)') as Fn,
  bpf_map_get_fd_by_id: libbpf.func('int bpf_map_get_fd_by_id(uint32_t id)') as Fn,
  bpf_prog_get_fd_by_id: libbpf.func('int bpf_prog_get_fd_by_id(uint32_t id)') as Fn,
  bpf_map_lookup_elem: libbpf.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)') as Fn,
  bpf_map_update_elem: libbpf.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)') as Fn,
  bpf_map_delete_elem: libbpf.func('int bpf_map_delete_elem(int fd, const void *key)') as Fn,
  bpf_map_get_next_key: libbpf.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)') as Fn,
  bpf_map_update_batch: libbpf.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count, const bpf_map_batch_opts *opts)') as Fn,
  bpf_map_delete_batch: libbpf.func('int bpf_map_delete_batch(int fd, const void *keys, uint32_t *count, const bpf_map_batch_opts *opts)') as Fn,
  bpf_obj_pin: libbpf.func('int bpf_obj_pin(int fd, const char *path)') as Fn,
  bpf_obj_get: libbpf.func('int bpf_obj_get(const char *path)') as Fn,
  bpf_obj_get_info_by_fd: libbpf.func('int bpf_obj_get_info_by_fd(int fd, void *info, uint32_t *info_len)') as Fn,
  bpf_prog_test_run_opts: libbpf.func('int bpf_prog_test_run_opts(int fd, _Inout_ bpf_test_run_opts *opts)') as Fn,
  bpf_prog_attach: libbpf.func('int bpf_prog_attach(int prog_fd, int target_fd, int type, unsigned int flags)') as Fn,
  bpf_prog_detach2: libbpf.func('int bpf_prog_detach2(int prog_fd, int target_fd, int type)') as Fn,

  bpf_tc_hook_create: libbpf.func('int bpf_tc_hook_create(bpf_tc_hook *hook)') as Fn,
  bpf_tc_hook_destroy: libbpf.func('int bpf_tc_hook_destroy(bpf_tc_hook *hook)') as Fn,
  bpf_tc_attach: libbpf.func('int bpf_tc_attach(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)') as Fn,
  bpf_tc_detach: libbpf.func('int bpf_tc_detach(const bpf_tc_hook *hook, const bpf_tc_opts *opts)') as Fn,
  bpf_tc_query: libbpf.func('int bpf_tc_query(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)') as Fn,
};

export const libcFns = {
  setns: libc.func('int setns(int fd, int nstype)') as Fn,
  if_nametoindex: libc.func('unsigned int if_nametoindex(const char *ifname)') as Fn,
  close: libc.func('int close(int fd)') as Fn,
  vsnprintf: libc.func('int vsnprintf(void *buf, size_t size, void *fmt, void *args)') as Fn,
  memcpy: libc.func('void *memcpy(void *dst, void *src, size_t n)') as Fn,
};

/** errno of the last failed libc/libbpf call made through koffi (koffi saves it right after the call). */
export function lastErrno(): number {
  return koffi.errno();
}

// ---- libbpf log capture ------------------------------------------------------------------------

export const LIBBPF_WARN = 0;
export const LIBBPF_INFO = 1;
export const LIBBPF_DEBUG = 2;

interface LogEntry { seq: number; level: number; text: string }
const LOG_KEEP_CHARS = 8 * 1024 * 1024;
const log: LogEntry[] = [];
let logChars = 0;
let logSeq = 0;
const debugEnabled = process.env.PACER_LIBBPF_DEBUG === '1';

function formatVaList(fmt: Ptr, args: Ptr): string {
  // vsnprintf consumes the va_list, so measure on a copy first. On x86-64 va_copy is a plain
  // copy of the 24-byte __va_list_tag (the register save area it points into is still live in
  // libbpf's frame while we run). Without this, a long verifier log would be cut, and the
  // error the verifier reports is at its END.
  if (process.arch === 'x64') {
    const copy = Buffer.alloc(24);
    libcFns.memcpy(copy, args, 24);
    const n = libcFns.vsnprintf(null, 0, fmt, copy) as number;
    if (n < 0) return '';
    const out = Buffer.alloc(n + 1);
    libcFns.vsnprintf(out, out.length, fmt, args);
    return out.toString('utf8', 0, n);
  }
  const out = Buffer.alloc(64 * 1024);
  const n = libcFns.vsnprintf(out, out.length, fmt, args) as number;
  return out.toString('utf8', 0, Math.max(0, Math.min(n, out.length - 1)));
}

function onLibbpfPrint(level: number, fmt: Ptr, args: Ptr): number {
  // An exception escaping a koffi callback would be swallowed (C sees 0); keep it contained.
  try {
    if (level === LIBBPF_DEBUG && !debugEnabled) return 0;
    const text = formatVaList(fmt, args);
    if (debugEnabled) process.stderr.write(text);
    log.push({ seq: ++logSeq, level, text });
    logChars += text.length;
    while (logChars > LOG_KEEP_CHARS && log.length > 1) logChars -= log.shift()!.text.length;
  } catch {
    /* never let a logging failure break a libbpf call */
  }
  return 0;
}

// Registered (not transient) because libbpf keeps the pointer in a global and calls it from
// any later libbpf function. libbpf_set_print is process-global: whoever sets it last wins,
// so nothing else in this process should call it.
const printCallback = koffi.register(onLibbpfPrint, koffi.pointer(PrintFn));
lib.libbpf_set_print(printCallback);

/** A position in the captured libbpf log; pass to logSince() after an operation. */
export function logMark(): number {
  return logSeq;
}

/** libbpf warnings/info printed after `mark` (e.g. the verifier log of a failed load). */
export function logSince(mark: number): string {
  return log.filter((e) => e.seq > mark).map((e) => e.text).join('');
}

// ---- misc --------------------------------------------------------------------------------------

let possibleCpus: number | undefined;
/** Number of *possible* CPUs: per-CPU maps hold one value slot per possible CPU. */
export function numPossibleCpus(): number {
  if (possibleCpus === undefined) {
    const n = lib.libbpf_num_possible_cpus() as number;
    if (n <= 0) throw new Error(`libbpf_num_possible_cpus failed: ${n}`);
    possibleCpus = n;
  }
  return possibleCpus;
}

/** libbpf's text for an errno, including its own LIBBPF_ERRNO__* codes (>= 4000). */
export function libbpfStrerror(errno: number): string {
  const buf = Buffer.alloc(256);
  lib.libbpf_strerror(errno, buf, buf.length);
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

assertStructLayouts();
