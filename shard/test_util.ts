/**
 * The harness shared by the tests of a stored shard group's applied rows
 * (not published): group 100's `StoredShardGroupState` on a simulated Deno
 * KV, fed entries through the replica's `StoredApplier`, answered once
 * staged, as a leader's Raft node hands them over.
 *
 * @module
 */
import type { VirtualClock } from "../net/clock.ts";
import { silentLogger } from "../net/logger.ts";
import type { Applied } from "../raft/mod.ts";
import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
import type { WriteOutcome } from "../rsm/exactly_once.ts";
import { StoredApplier } from "../rsm/stored_machine.ts";
import type { StagedLimits } from "../rsm/stored_layers.ts";
import type { KvLike } from "../store/kv_like.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { StateStoreOptions } from "../store/state_store_options.ts";
import { initialConfig, joinGroups, type ShardConfig } from "./config.ts";
import type { GroupResult } from "./group_state.ts";
import { StoredShardGroupState } from "./stored_group_state.ts";

/** Options of {@linkcode openStagedGroup}. */
export interface StagedGroupOptions {
  /** The virtual clock the store's commits and the applier's batches run on. */
  clock: VirtualClock;
  /** The database. Default: a `SimKv` on `clock` whose commits take 5 ms. */
  kv?: KvLike;
  /** How the store is opened (a second connection to read through, the read cache). */
  store?: StateStoreOptions;
  /**
   * The applier's batch bounds, or a function that gives them once the state
   * is open (a randomized test draws them then: opening reads the store, and
   * its late reads draw from the same source). Default: the replica's.
   */
  limits?: Partial<StagedLimits> | (() => Partial<StagedLimits> | undefined);
  /** Whether an entry is the last the node has ready, asked at each. Default: always. */
  last?: () => boolean;
  /** Called as the applier answers each entry. */
  done?: (item: Applied, outcome: WriteOutcome<GroupResult> | undefined) => void;
}

/** A stored group with configuration 1 applied, and the entries' helpers. */
export interface StagedGroup {
  /** The group's store. */
  store: StateStore;
  /** Group 100's state in it. */
  state: StoredShardGroupState;
  /** The applier entries go through. */
  applier: StoredApplier<GroupResult>;
  /** Configuration 1: group 100 alone, at server "a" (applied as entry 1). */
  c1: ShardConfig;
  /** The index of the last entry taken. */
  readonly index: number;
  /** What the applier reported failing, if anything (it could not store a batch). */
  readonly failed: unknown;
  /** Takes `command` as the next entry (term 1). */
  take(command: unknown): Promise<void>;
  /** Takes configuration `config`, with no shard to pull. */
  config(config: ShardConfig): Promise<void>;
  /** Takes a put of `key` by `client` as its write number `seq`. */
  put(client: string, seq: number, key: string, value: string): Promise<void>;
  /** Lets `ms` virtual milliseconds pass (default 1). */
  tick(ms?: number): Promise<void>;
}

/** Opens group 100's stored state and its applier (answering once staged), and applies configuration 1. */
export async function openStagedGroup(options: StagedGroupOptions): Promise<StagedGroup> {
  const { clock } = options;
  const kv = options.kv ?? new SimKv({ clock, commitMs: 5 });
  const store = await StateStore.open(kv, options.store);
  const state = await StoredShardGroupState.open(store, { gid: 100, limits: DEFAULT_KV_LIMITS });
  let failed: unknown;
  const applier = new StoredApplier(state, {
    once: undefined,
    logger: silentLogger,
    node: "a",
    clock,
    limits: typeof options.limits === "function" ? options.limits() : options.limits,
    onFailure: (err) => void (failed = err),
    early: true,
  });
  let index = 0;
  const last = options.last ?? (() => true);
  const done = options.done ?? (() => {});
  const group: StagedGroup = {
    store,
    state,
    applier,
    c1: joinGroups(initialConfig(), { 100: ["a"] }),
    get index() {
      return index;
    },
    get failed() {
      return failed;
    },
    take: (command) =>
      applier.take({ type: "command", index: ++index, term: 1, command } as Applied, {
        last: last(),
        done,
      }),
    config: (config) => group.take({ kind: "config", config, sources: {} }),
    put: (client, seq, key, value) =>
      group.take({ kind: "op", command: { client, seq, write: { type: "put", key, value } } }),
    tick: (ms = 1) => new Promise((resolve) => clock.setTimer(ms, () => resolve())),
  };
  await group.config(group.c1);
  return group;
}
