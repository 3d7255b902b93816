/**
 * The tc egress object (shaper-bpf/obj/pacer_tc.o) loaded with typed views of its maps.
 *
 * Maps are pinned by name under `pinRoot` (e.g. /sys/fs/bpf/pacer/eth0). Loading again with the
 * same pinRoot reuses the pinned maps (libbpf's LIBBPF_PIN_BY_NAME): a restarted agent adopts
 * every class's config, schedule and counters.
 *
 * The maps are keyed by SLOT (see shaper-bpf/bpf/pacer.h), not class id: config, state and stats
 * are arrays indexed by slot (every entry exists; a config with rate 0 is a free slot), the
 * selector maps and settings.default_slot hold slots, and `slots` (class_slot) maps class ids to
 * slots. The Datapath allocates slots; use it, or keep `slots` and `settings.generation` right
 * when writing these maps directly.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, type BpfProgram } from './libbpf/index.js';
import * as layout from './layout.js';
import { address, prefix, struct, SummedPerCpuMap, TypedMap, u32, u64 } from './typed-map.js';
import { DelayHistMap, INNER_MAP_TYPES } from './delay-hist-map.js';

/** The committed objects, found from this module (dist/shaper-bpf/src → shaper-bpf/obj). */
export function objectPath(name: 'pacer_tc' | 'pacer_sockops'): string {
  return fileURLToPath(new URL(`../../../shaper-bpf/obj/${name}.o`, import.meta.url));
}

export const EGRESS_PROGRAM = 'pacer_egress';

export interface EgressLoadOptions {
  /** Directory in bpffs where the maps are pinned (and found again). */
  pinRoot: string;
  objectPath?: string;
  /**
   * Only adopt: every map of the object must already be pinned under pinRoot (readers such as
   * `pacer dp`, which must not create pins). Otherwise missing maps are created and pinned.
   */
  requirePinned?: boolean;
}

/** Pins under a pin root lack maps this build's object has: they were made by an older pacer. */
export class PinsMissingError extends Error {
  constructor(
    readonly pinRoot: string,
    readonly missing: string[],
  ) {
    super(
      `the maps pinned under ${pinRoot} lack ${missing.join(', ')}: they were made by an older pacer. ` +
        'Restart the agent (pacer agent): it adopts the pins, creates the missing maps and replaces the attached program with this build\'s in place, keeping every schedule and counter (docs/data-plane.md, "Upgrades")',
    );
  }
}

export class EgressObject {
  readonly program: BpfProgram;
  /** class_config: slot → SlotConfig (array). */
  readonly config: TypedMap<number, layout.SlotConfig>;
  /** class_state: slot → schedule (array). */
  readonly state: TypedMap<number, layout.ClassState>;
  /** class_stats: slot → counters summed over CPUs (per-CPU array). */
  readonly stats: SummedPerCpuMap<number, layout.ClassStats>;
  /** class_slot: class id → slot (hash). */
  readonly slots: TypedMap<number, number>;
  /** mark_class: mark → slot. */
  readonly marks: TypedMap<number, number>;
  /** cgroup_class: cgroup id → slot. */
  readonly cgroups: TypedMap<bigint, number>;
  /** dst4_class / dst6_class: canonical CIDR → slot (LPM tries). */
  readonly dst4: TypedMap<string, number>;
  readonly dst6: TypedMap<string, number>;
  /** dst4_cache / dst6_cache: destination address → { slot, generation } (LRU hash, written by the program). */
  readonly dst4Cache: TypedMap<string, layout.DstCache>;
  readonly dst6Cache: TypedMap<string, layout.DstCache>;
  /** settings: key 0 → { default_slot, flags, generation, cgroup_selectors }. */
  readonly settings: TypedMap<number, layout.SlotSettings>;
  readonly ifaceStats: SummedPerCpuMap<number, layout.IfaceStats>;
  /** delay_hist: slot → the class's delay histogram (an array of maps; the Datapath creates and removes the inner maps). */
  readonly hists: DelayHistMap;

  private constructor(private readonly object: BpfObject) {
    this.program = object.program(EGRESS_PROGRAM);
    this.config = new TypedMap(object.map('class_config'), u32, struct(layout.classConfig));
    this.state = new TypedMap(object.map('class_state'), u32, struct(layout.classState));
    this.stats = new SummedPerCpuMap(object.map('class_stats'), u32, layout.classStats);
    this.slots = new TypedMap(object.map('class_slot'), u32, u32);
    this.marks = new TypedMap(object.map('mark_class'), u32, u32);
    this.cgroups = new TypedMap(object.map('cgroup_class'), u64, u32);
    this.dst4 = new TypedMap(object.map('dst4_class'), prefix('ipv4'), u32);
    this.dst6 = new TypedMap(object.map('dst6_class'), prefix('ipv6'), u32);
    this.dst4Cache = new TypedMap(object.map('dst4_cache'), address('ipv4'), struct(layout.dstCache));
    this.dst6Cache = new TypedMap(object.map('dst6_cache'), address('ipv6'), struct(layout.dstCache));
    this.settings = new TypedMap(object.map('settings'), u32, struct(layout.settings));
    this.ifaceStats = new SummedPerCpuMap(object.map('iface_stats'), u32, layout.ifaceStats);
    this.hists = new DelayHistMap(object.map('delay_hist'), object.btfFor(INNER_MAP_TYPES.key, INNER_MAP_TYPES.value));
  }

  static load(options: EgressLoadOptions): EgressObject {
    const object = BpfObject.open(options.objectPath ?? objectPath('pacer_tc'), { pinRoot: options.pinRoot });
    try {
      if (options.requirePinned) {
        const missing = object.pinnedMaps().filter((m) => !existsSync(m.path)).map((m) => m.name);
        if (missing.length > 0) throw new PinsMissingError(options.pinRoot, missing);
      }
      object.load();
      return new EgressObject(object);
    } catch (err) {
      object.close();
      throw err;
    }
  }

  /**
   * Runs the program at a fixed time (tests only): the program reads `pacer_test_now` from its
   * .bss when it is not zero. 0 returns it to the real clock.
   */
  setTestClock(ns: bigint): void {
    const bss = this.object.map('.bss');
    const value = Buffer.alloc(bss.valueSize);
    value.writeBigUInt64LE(ns, 0);
    bss.update(layout.u32Key(0), value);
  }

  /**
   * Pins again every map whose pin is gone (someone removed files under the pin root): the maps
   * themselves live on in this process and the attached program, but a restarted agent or `pacer
   * dp` finds them by their pins. Returns the names of the maps pinned again.
   */
  repinMaps(): string[] {
    const missing = this.object.pinnedMaps().filter((m) => !existsSync(m.path));
    for (const m of missing) {
      mkdirSync(dirname(m.path), { recursive: true });
      this.object.map(m.name).pin(m.path);
    }
    return missing.map((m) => m.name);
  }

  close(): void {
    this.object.close();
  }
}
