/**
 * The VM runner of the enforcement tier: boots Debian 12's own kernel (linux-image-amd64, 6.1,
 * which has sch_fq) under qemu with software emulation and runs a shell script inside it, as
 * root, on this host's root filesystem. This host's kernel has no fq qdisc and no KVM
 * (../shared/notes/machine.md, "Enforcement tier"), so this is how pacer proves what only a
 * kernel with fq can show.
 *
 *   const vm = await prepareVm();                       // installs/downloads/builds, cached
 *   const r = await runInVm({ script: 'cd "$REPO" && node dist/x.js', timeoutMs: 300_000 }, vm);
 *   r.exitCode; r.results['result.json']; r.console; r.bootMs
 *
 * How a run works (docs/vm-tier.md has more, and how to debug a boot):
 *  - the initramfs holds only busybox-static and the handful of the kernel's .ko files it needs
 *    for virtio + 9p (+ sch_fq, sch_ingress, cls_bpf, veth for the tests), loaded with insmod;
 *  - the host's `/` is shared read-only over 9p and becomes the guest's root (chroot), so the
 *    guest runs the host's node, libbpf, tc, ... and the repo at its host path: everything the
 *    script uses must be installed on the host;
 *  - a second, writable 9p share (a fresh temp dir) carries the script in and the results out;
 *    the guest writes its exit code there, because qemu's own exit code says nothing about it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repo root (this file runs as dist/vm/runner.js). */
export const REPO = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
/** Kernel packages and initramfs images; `.cache/` is in .gitignore. Delete it to start over. */
export const CACHE_DIR = join(REPO, '.cache', 'vm');

/**
 * Modules to insmod, in dependency order (insmod does not resolve dependencies; measured in
 * machine.md): virtio transport, then 9p over virtio, then the qdiscs/classifier/veth tests use,
 * and the socket diagnostics `ss -ti` reads TCP info through (`pacer demo` reads bytes_acked).
 */
export const MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci',
  '9pnet', '9pnet_virtio', 'netfs', 'fscache', '9p',
  'sch_fq', 'sch_ingress', 'cls_bpf', 'veth',
  'inet_diag', 'tcp_diag',
] as const;

/** In the share: the repository's path, which /init needs before the chroot. */
const REPO_FILE = '.repo-path';
/** Where the writable share appears inside the guest (on the guest's own tmpfs /run). */
export const GUEST_RESULTS = '/run/pacer-results';
/** Files of the share that are the runner's, not the script's results. */
const SCRIPT_FILE = '.script.sh';
const EXIT_FILE = '.exit-code';
/** The guest prints this on the console just before the script starts: the host times boot by it. */
export const START_MARKER = 'pacer-vm: script starting';
/** /init prints this with the guest's uptime every CLOCK_TICK_S guest seconds: the host's measure of progress. */
const CLOCK_MARKER = 'pacer-vm: clock';
const CLOCK_TICK_S = 5;

export interface Vm {
  kernelVersion: string; // e.g. 6.1.0-56-amd64
  kernel: string; // path of vmlinuz
  initrd: string; // path of the cached initramfs
}

export interface RunOptions {
  /** A shell script run by /bin/sh as root inside the guest, in the chroot, from $REPO. */
  script: string;
  /**
   * qemu is killed after this long on the host's clock (boot included): the ceiling, whatever the
   * guest's progress. With `guestTimeoutS` it is only the backstop for a guest that never ends.
   */
  timeoutMs: number;
  /**
   * Budget on the GUEST's clock (its uptime, s): qemu is killed once the guest has run this long.
   * A host that is slow or busy makes the guest's clock advance slowly, so this timeout scales
   * with the guest's measured progress instead of the host's wall clock.
   */
  guestTimeoutS?: number;
  /**
   * qemu is killed when the guest's clock has not advanced for this long on the host's clock
   * (a hung guest: no tick on the console). Default: no such check.
   */
  stallTimeoutMs?: number;
  /**
   * How the guest's clock runs. 'host' (default): TCG with one host thread per vCPU, and the
   * guest's clock is the host's, so every moment the host does not run qemu is time the guest
   * loses. `{ icountShift }`: qemu's `-icount shift=N,sleep=on`: while the guest runs, its clock
   * advances 2^N ns per instruction executed, so a host too busy to run qemu stops the guest's
   * clock instead of stealing its time (docs/vm-tier.md, "A busy host").
   */
  clock?: 'host' | { icountShift: number };
  /** Called with everything qemu prints, as it prints it (the console: kernel, /init, the script). */
  onConsole?: (text: string) => void;
  /** Extra environment for the script (RESULTS, REPO, PATH and HOME are set already). */
  env?: Record<string, string>;
  /**
   * nice value for qemu (-20..19; default 0). Timing-sensitive runs (the enforcement tier) use a
   * negative one: TCG starved of CPU by other work on the host paces below budget.
   */
  nice?: number;
}

export interface RunResult {
  /** The script's exit status, as the guest wrote it to the results share. */
  exitCode: number;
  /** Every file the script wrote under $RESULTS, by path relative to it, as UTF-8 text. */
  results: Record<string, string>;
  /** Everything qemu printed: the kernel's console, /init's messages and the script's stdout/stderr. */
  console: string;
  /** From spawning qemu to the script starting (host clock). */
  bootMs: number;
  /** From spawning qemu to qemu exiting (host clock). */
  totalMs: number;
  /** The guest's uptime at its last clock tick (s): how far the guest's own clock got. */
  guestUptimeS: number;
}

// ---- prepareVm: packages, kernel, initramfs ----------------------------------------------------

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
  if (r.error) return { code: -1, stdout: '', stderr: String(r.error) };
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const tail = (text: string, lines = 15): string => text.trimEnd().split('\n').slice(-lines).join('\n');

/**
 * Installs a Debian package if it is missing; throws saying which one and why when it cannot.
 * Also for what a guest script runs from the host's root (e.g. iperf3 for the enforcement tier).
 */
export function ensurePackage(pkg: string, file: string, why: string): void {
  const status = sh('dpkg-query', ['-W', '-f=${Status}', pkg]);
  if (status.code === 0 && status.stdout.includes('install ok installed') && existsSync(file)) return;
  let r = sh('apt-get', ['install', '-y', '--no-install-recommends', pkg]);
  if (r.code !== 0) {
    // A stale package list is the usual reason; refresh once and retry.
    sh('apt-get', ['update']);
    r = sh('apt-get', ['install', '-y', '--no-install-recommends', pkg]);
  }
  if (r.code !== 0 || !existsSync(file)) {
    throw new Error(
      `VM tier: the Debian package ${pkg} is missing (${why}) and \`apt-get install -y ${pkg}\` failed ` +
        `(exit ${r.code}${existsSync(file) ? '' : `, ${file} absent`}):\n${tail(r.stderr || r.stdout)}`,
    );
  }
}

/** The versioned kernel package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64. */
function kernelPackageName(): string {
  const r = sh('apt-cache', ['depends', 'linux-image-amd64']);
  const name = /Depends:\s*(linux-image-\d\S*-amd64)/.exec(r.stdout)?.[1];
  if (!name) {
    throw new Error(`VM tier: cannot tell which kernel package linux-image-amd64 depends on (apt-cache depends exit ${r.code}):\n${tail(r.stderr || r.stdout)}`);
  }
  return name;
}

/** Downloads and unpacks (never installs) the kernel package into the cache; reused if present. */
function ensureKernel(pkg: string): { version: string; root: string } {
  const version = pkg.replace(/^linux-image-/, '');
  const root = join(CACHE_DIR, pkg);
  const vmlinuz = join(root, 'boot', `vmlinuz-${version}`);
  if (existsSync(vmlinuz) && existsSync(join(root, 'lib', 'modules', version))) return { version, root };
  const dl = mkdtempSync(join(CACHE_DIR, 'download-'));
  try {
    const r = sh('apt-get', ['download', pkg], { cwd: dl });
    const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
    if (r.code !== 0 || !deb) throw new Error(`VM tier: \`apt-get download ${pkg}\` failed (exit ${r.code}):\n${tail(r.stderr || r.stdout)}`);
    // Unpack beside the final place, then rename: an interrupted unpack is never mistaken for a cache hit.
    const staging = join(dl, 'root');
    const x = sh('dpkg-deb', ['-x', join(dl, deb), staging]);
    if (x.code !== 0) throw new Error(`VM tier: dpkg-deb -x ${deb} failed (exit ${x.code}):\n${tail(x.stderr)}`);
    rmSync(root, { recursive: true, force: true });
    renameSync(staging, root);
    // A kernel that linux-image-amd64 no longer depends on is never booted again (~400 MB each).
    for (const f of readdirSync(CACHE_DIR)) if (/^linux-image-/.test(f) && f !== pkg) rmSync(join(CACHE_DIR, f), { recursive: true, force: true });
  } finally {
    rmSync(dl, { recursive: true, force: true });
  }
  if (!existsSync(vmlinuz)) throw new Error(`VM tier: ${pkg} unpacked but has no ${relative(root, vmlinuz)}`);
  return { version, root };
}

function findFiles(dir: string, out: Map<string, string> = new Map()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) findFiles(path, out);
    else out.set(entry.name, path);
  }
  return out;
}

/**
 * /init of the initramfs (busybox sh). Mounts the two shares, prepares the chroot, runs the
 * script there, records its exit status in the share, and powers off. It never exits: if PID 1
 * exits the kernel panics instead of powering off.
 */
function initScript(modules: readonly string[]): string {
  return `#!/bin/busybox sh
# Generated by vm/runner.ts. Messages go to the serial console (qemu's stdout).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The guest's clock on the console every ${CLOCK_TICK_S} guest seconds, from here to power-off: the host
# judges progress by it (runInVm's guestTimeoutS and stallTimeoutMs), not by its own wall clock.
( while :; do echo "${CLOCK_MARKER} $(cut -d' ' -f1 /proc/uptime)"; sleep ${CLOCK_TICK_S}; done ) &
say() { echo "pacer-vm: $*"; }
halt_now() { sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
# insmod resolves nothing by itself: the order is the dependency order (machine.md).
for m in ${modules.join(' ')}; do
  [ -f /modules/$m.ko ] || continue   # built into this kernel
  insmod /modules/$m.ko || say "insmod $m failed"
done
R=/newroot
mkdir -p $R
# The host's / read-only. msize 512 KiB and cache=loose (safe: nothing changes it during a run)
# cut node's start-up in the guest from 7.9 s to 0.8 s, measured: 9p round trips are what is slow.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose,ro hostroot $R || { say "mounting the host root over 9p failed"; halt_now; }
# Fresh kernel filesystems inside the chroot (the host's would be the host's, read-only).
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm && mount -t devpts devpts $R/dev/pts && mount -t tmpfs tmpfs $R/dev/shm
# The writable share first: it also says where the repository is (${REPO_FILE}).
mkdir -p /results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /results || { say "mounting the results share failed"; halt_now; }
repo=$(cat /results/${REPO_FILE})
# A checkout under /tmp or /run (CI clones anywhere) would vanish under the fresh tmpfs below:
# hold it with a bind mount first (9p allows one mount per share), and put it back after.
case "$repo" in /tmp/*|/run/*) mkdir -p /keep && mount -o bind $R$repo /keep || say "holding $repo failed" ;; esac
mount -t tmpfs tmpfs $R/tmp
mount -t tmpfs tmpfs $R/run
case "$repo" in /tmp/*|/run/*) mkdir -p $R$repo && mount -o bind /keep $R$repo || say "showing $repo in the guest failed" ;; esac
mount -t bpf bpf $R/sys/fs/bpf
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mkdir -p $R${GUEST_RESULTS}
mount -o bind /results $R${GUEST_RESULTS} || { say "binding the results share failed"; halt_now; }
echo "${START_MARKER} (uptime $(cut -d' ' -f1 /proc/uptime) s)"
# A clean environment: only what the script's prelude exports (RESULTS, REPO, its env).
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \\
  /bin/sh ${GUEST_RESULTS}/${SCRIPT_FILE}
code=$?
echo $code > $R${GUEST_RESULTS}/${EXIT_FILE}
say "script exited $code (uptime $(cut -d' ' -f1 /proc/uptime) s)"
umount $R${GUEST_RESULTS}
halt_now
`;
}

/**
 * Ensures qemu and busybox-static are installed, the kernel package is downloaded and unpacked,
 * and the initramfs is built; all cached under CACHE_DIR and reused. Throws (never skips) when
 * something cannot be had, saying what.
 */
export function prepareVm(): Vm {
  ensurePackage('qemu-system-x86', '/usr/bin/qemu-system-x86_64', 'qemu-system-x86_64 boots the 6.1 kernel');
  ensurePackage('busybox-static', '/bin/busybox', 'the initramfs needs a static shell, mount and insmod');
  mkdirSync(CACHE_DIR, { recursive: true });
  const { version, root } = ensureKernel(kernelPackageName());

  // The initramfs is cached by what goes in it: kernel version, module list, /init, busybox.
  const init = initScript(MODULES);
  const busybox = readFileSync('/bin/busybox');
  const key = createHash('sha256').update(version).update(MODULES.join(',')).update(init).update(busybox).digest('hex').slice(0, 16);
  const initrd = join(CACHE_DIR, `initrd-${version}-${key}.cpio.gz`);
  if (!existsSync(initrd)) buildInitrd(initrd, root, version, init);
  return { kernelVersion: version, kernel: join(root, 'boot', `vmlinuz-${version}`), initrd };
}

function buildInitrd(out: string, kernelRoot: string, version: string, init: string): void {
  const work = mkdtempSync(join(CACHE_DIR, 'initrd-'));
  try {
    for (const d of ['bin', 'proc', 'sys', 'dev', 'modules', 'newroot']) mkdirSync(join(work, d));
    copyFileSync('/bin/busybox', join(work, 'bin', 'busybox'));
    writeFileSync(join(work, 'init'), init);
    chmodSync(join(work, 'init'), 0o755);
    const modDir = join(kernelRoot, 'lib', 'modules', version);
    const files = findFiles(join(modDir, 'kernel'));
    const builtin = existsSync(join(modDir, 'modules.builtin')) ? readFileSync(join(modDir, 'modules.builtin'), 'utf8') : '';
    for (const m of MODULES) {
      // Module files may use - where the module name has _ (and may be xz-compressed).
      const names = [m, m.replace(/_/g, '-')].flatMap((n) => [`${n}.ko`, `${n}.ko.xz`]);
      const found = names.map((n) => files.get(n)).find((p) => p !== undefined);
      const dest = join(work, 'modules', `${m}.ko`);
      if (found?.endsWith('.xz')) {
        const r = spawnSync('xz', ['-dc', found], { maxBuffer: 64 << 20 });
        if (r.status !== 0) throw new Error(`VM tier: xz -dc ${found} failed: ${r.stderr}`);
        writeFileSync(dest, r.stdout);
      } else if (found) {
        copyFileSync(found, dest);
      } else if (!new RegExp(`/${m.replace(/_/g, '[-_]')}\\.ko`).test(builtin)) {
        throw new Error(`VM tier: kernel ${version} has no module ${m} (neither a .ko file nor built in)`);
      }
    }
    // newc cpio of the tree, gzip'd (Debian's kernel unpacks gzip initramfs images).
    const list = sh('find', ['.', '-mindepth', '1'], { cwd: work }).stdout;
    const cpio = spawnSync('/bin/busybox', ['cpio', '-o', '-H', 'newc'], { cwd: work, input: list, maxBuffer: 256 << 20 });
    if (cpio.status !== 0) throw new Error(`VM tier: building the initramfs (busybox cpio) failed: ${cpio.stderr}`);
    const gz = spawnSync('gzip', ['-9n'], { input: cpio.stdout, maxBuffer: 256 << 20 });
    if (gz.status !== 0) throw new Error(`VM tier: gzip of the initramfs failed: ${gz.stderr}`);
    writeFileSync(`${out}.part`, gz.stdout);
    renameSync(`${out}.part`, out);
    // Images built from an older /init, module list or kernel are never used again.
    for (const f of readdirSync(CACHE_DIR)) if (/^initrd-.*\.cpio\.gz$/.test(f) && join(CACHE_DIR, f) !== out) rmSync(join(CACHE_DIR, f));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- runInVm ------------------------------------------------------------------------------------

/**
 * The guest never reported an exit code (boot failure, timeout). Whatever the script had written
 * under $RESULTS by then is kept, so a tier that writes as it goes still reports its early steps.
 */
export class VmRunError extends Error {
  override name = 'VmRunError';
  constructor(
    message: string,
    readonly results: Record<string, string>,
    readonly console: string,
  ) {
    super(message);
  }
}

/** qemu processes alive now; killed when this process exits however it exits (mocha abort too). */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Removes shares left by runs whose process died without its `finally` (SIGINT, SIGKILL): their
 * qemu is gone already (--pdeathsig), so a share whose pid is not alive is garbage.
 */
function sweepStaleShares(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(/^pacer-vm-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

const CLOCK_TICK_RE = new RegExp(`${CLOCK_MARKER} (\\d+(?:\\.\\d+)?)`, 'g');

/**
 * qemu's CPU and clock arguments. With icount, qemu runs every vCPU in one host thread (no MTTCG)
 * and, in qemu 7.2, a 2-vCPU guest hung bringing up its second CPU (measured), so an icount guest
 * has one vCPU: it gets one host thread either way. `sleep=on`: while the guest is idle its clock
 * follows the host's, as a real idle machine's does. With sleep=off it jumps to the next timer at
 * once, and every wait for a 9p read jumped too: one `cat` after boot took the guest's clock from
 * 2.3 s to 269 s (measured), which would make every guest-side wait on I/O time out.
 */
export function clockArgs(clock: 'host' | { icountShift: number }): string[] {
  if (clock === 'host') return ['-smp', '2'];
  const { icountShift } = clock;
  if (!Number.isInteger(icountShift) || icountShift < 0 || icountShift > 10) throw new RangeError(`icountShift must be an integer from 0 to 10 (qemu's MAX_ICOUNT_SHIFT), got ${icountShift}`);
  return ['-smp', '1', '-icount', `shift=${icountShift},sleep=on`];
}

const shellQuote = (v: string): string => `'${v.replace(/'/g, `'\\''`)}'`;

/** Every file under the share except the runner's own two, by relative path. */
function readResults(share: string, dir = share, out: Record<string, string> = {}): Record<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) readResults(share, path, out);
    else if (entry.isFile() && !(dir === share && (entry.name === SCRIPT_FILE || entry.name === EXIT_FILE))) out[relative(share, path)] = readFileSync(path, 'utf8');
  }
  return out;
}

/**
 * Boots the VM, runs `script` inside, and returns its exit code, result files and the console.
 * Throws if the guest never reported an exit code (boot failure, timeout), with the console's
 * end in the message. qemu never outlives this call: it is killed on timeout and in `finally`.
 */
export async function runInVm(options: RunOptions, vm: Vm = prepareVm()): Promise<RunResult> {
  sweepStaleShares();
  const share = mkdtempSync(join(tmpdir(), `pacer-vm-${process.pid}-`));
  let child: ChildProcess | undefined;
  try {
    // The script's environment goes in a prelude, not on the kernel command line (whose unknown
    // k=v words would become /init's environment, and which cannot carry spaces safely).
    const env = { RESULTS: GUEST_RESULTS, REPO, ...options.env };
    const prelude = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join('');
    writeFileSync(join(share, SCRIPT_FILE), `${prelude}cd "$REPO" || exit 97\n${options.script}\n`);
    writeFileSync(join(share, REPO_FILE), REPO);
    const append = [
      'console=ttyS0', // the serial port is qemu's stdout (-nographic)
      'panic=-1', // a panic reboots at once, and -no-reboot turns that into qemu exiting
      'loglevel=4',
      'tsc=reliable', // precaution: no clocksource watchdog switching clocks mid-run under TCG's uneven timing
    ].join(' ');
    const args = [
      '-accel', 'tcg', '-cpu', 'max', '-m', '2G', ...clockArgs(options.clock ?? 'host'),
      '-nographic', '-no-reboot', '-nic', 'none',
      '-kernel', vm.kernel, '-initrd', vm.initrd, '-append', append,
      // multidevs=remap: the host's / spans several filesystems; without it inode numbers collide.
      '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
      '-virtfs', `local,path=${share},mount_tag=results,security_model=none`,
    ];
    const started = Date.now();
    // setpriv --pdeathsig: the kernel SIGKILLs qemu if this process dies without running its
    // exit handlers (SIGKILL of mocha), so no qemu is ever left running.
    const nice = options.nice ?? 0;
    if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new RangeError(`nice must be an integer from -20 to 19, got ${nice}`);
    // nice execs setpriv, which execs qemu: the pid is qemu's and --pdeathsig still applies.
    child = spawn('nice', ['-n', String(nice), 'setpriv', '--pdeathsig', 'KILL', '--', 'qemu-system-x86_64', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let consoleText = '';
    let bootMs = NaN;
    let guestUptimeS = 0;
    let lastTickAt = Date.now();
    // One decoder per stream: a chunk may end inside a multi-byte character.
    const decoders = { out: new StringDecoder('utf8'), err: new StringDecoder('utf8') };
    const onData = (decoder: StringDecoder) => (chunk: Buffer): void => {
      const text = decoder.write(chunk);
      consoleText += text;
      options.onConsole?.(text);
      if (Number.isNaN(bootMs) && consoleText.includes(START_MARKER)) bootMs = Date.now() - started;
      for (const m of text.matchAll(CLOCK_TICK_RE)) {
        guestUptimeS = Number(m[1]);
        lastTickAt = Date.now();
      }
    };
    child.stdout!.on('data', onData(decoders.out));
    child.stderr!.on('data', onData(decoders.err));
    const proc = child;
    // Settles only once qemu is gone: on timeout it is SIGKILLed and then awaited, so no qemu
    // is still running when this returns or throws.
    let timedOut: string | undefined;
    const outcome = await new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
      const kill = (why: string): void => {
        timedOut ??= why;
        proc.kill('SIGKILL');
      };
      const timer = setTimeout(() => kill(`timed out after ${options.timeoutMs} ms on the host's clock`), options.timeoutMs);
      // The guest's own clock, checked once a second: the budget it is given, and whether it moves at all.
      const watch = setInterval(() => {
        if (options.guestTimeoutS !== undefined && guestUptimeS > options.guestTimeoutS) kill(`timed out: the guest's clock passed ${options.guestTimeoutS} s (uptime ${guestUptimeS} s, ${Date.now() - started} ms on the host's clock)`);
        else if (options.stallTimeoutMs !== undefined && Date.now() - lastTickAt > options.stallTimeoutMs) kill(`the guest's clock did not advance for ${Date.now() - lastTickAt} ms on the host's clock (last uptime ${guestUptimeS} s): hung`);
      }, 1000);
      const settle = (r: { code: number | null; signal: string | null; error?: Error }): void => {
        clearTimeout(timer);
        clearInterval(watch);
        resolve(r);
      };
      proc.once('error', (error) => settle({ code: null, signal: null, error }));
      proc.once('exit', (code, signal) => settle({ code, signal }));
    });
    const totalMs = Date.now() - started;
    const exitFile = join(share, EXIT_FILE);
    if (!existsSync(exitFile) || statSync(exitFile).size === 0) {
      const why = outcome.error
        ? `qemu could not be started: ${outcome.error.message}`
        : timedOut
          ? `${timedOut} (qemu killed)`
          : `qemu exited (code ${outcome.code}, signal ${outcome.signal}) without the guest writing an exit code`;
      const results = readResults(share);
      throw new VmRunError(`VM tier: ${why}; results so far: [${Object.keys(results).join(', ')}]. Console (end):\n${tail(consoleText, 40)}`, results, consoleText);
    }
    return { exitCode: Number(readFileSync(exitFile, 'utf8').trim()), results: readResults(share), console: consoleText, bootMs, totalMs, guestUptimeS };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (child) live.delete(child);
    rmSync(share, { recursive: true, force: true });
  }
}
