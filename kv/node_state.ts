/**
 * Where a KV node keeps its state, as its data folder records it (issue 19).
 *
 * A folder keeps the KV state either on disk (`"disk"`: a `StateStore` in
 * the node's own `raft.kv`, under the `["state"]` prefix beside Raft's
 * `["raft"]`) or in memory (`"memory"`: rebuilt at start from the last Raft
 * snapshot and the log). The folder records which when it is made, under
 * {@linkcode STATE_KIND_KEY}; a folder from before that record (with Raft
 * state and no record) keeps it in memory.
 *
 * Opening a folder as the other kind: memory → disk is migrated (the last
 * snapshot is installed into the store, the log after it is replayed as at
 * any start, then the record switches to disk in one commit, so a crash at
 * any point leaves a memory folder or a disk one, never a mix); disk →
 * memory is refused with {@linkcode StateKindError}.
 *
 * @module
 */
import type { RaftStorage, StoredState } from "../raft/storage.ts";
import { DenoKvStorage } from "../raft/kv_storage.ts";
import type { KvLike } from "../store/kv_like.ts";
import { StateStore } from "../store/state_store.ts";
import { memoryStatePages } from "../kvstate/stored_convert.ts";

/**
 * Where a node keeps its KV state: `"disk"` (in its data folder's Deno KV
 * file, with a bounded cache) or `"memory"` (all of it in memory, from the
 * last snapshot and the log at each start).
 *
 * @example
 * ```ts
 * import type { StateKind } from "@distkit/distkit/kv";
 *
 * const kind: StateKind = "disk";
 * ```
 */
export type StateKind = "disk" | "memory";

/** Where the record lives in the folder's `raft.kv` (apart from `["raft"]` and `["state"]`). */
export const STATE_KIND_KEY: Deno.KvKey = ["node", "state"];

/**
 * A data folder keeps its state on disk and was asked to keep it in memory:
 * refused, since nothing moves a stored state back into Raft snapshots.
 *
 * @example
 * ```ts
 * import { StateKindError } from "@distkit/distkit/kv";
 *
 * const err = new StateKindError("data/0", { recorded: "disk", wanted: "memory" });
 * err.message.includes("--state disk"); // true
 * ```
 */
export class StateKindError extends Error {
  /** What the folder records. */
  readonly recorded: StateKind;
  /** What the node was started with. */
  readonly wanted: StateKind;

  /**
   * Creates the error.
   *
   * @param where The data folder (or database) refused.
   * @param kinds What the folder records and what was asked.
   */
  constructor(where: string, kinds: { recorded: StateKind; wanted: StateKind }) {
    super(
      `${where} keeps its KV state on ${kinds.recorded === "disk" ? "disk" : "memory"} ` +
        `(recorded when the folder was made) and cannot be opened with --state ${kinds.wanted}: ` +
        `start the node with --state ${kinds.recorded} (or without --state); to move this node ` +
        `to --state ${kinds.wanted}, stop it, remove it from the cluster (distkit kv member ` +
        `remove), delete its folder, and add it back started with --state ${kinds.wanted} ` +
        `(it gets the state from the leader)`,
    );
    this.name = "StateKindError";
    this.recorded = kinds.recorded;
    this.wanted = kinds.wanted;
  }
}

/**
 * Options of {@linkcode openNodeState}.
 *
 * @example
 * ```ts
 * import type { OpenNodeStateOptions } from "@distkit/distkit/kv";
 *
 * const options: OpenNodeStateOptions = { state: "disk", where: "data/0" };
 * ```
 */
export interface OpenNodeStateOptions {
  /**
   * What the node was asked for. Default: the folder's recorded kind, and
   * `"memory"` for a new folder.
   */
  state?: StateKind;
  /** The folder, for messages. Default `"the data folder"`. */
  where?: string;
  /** Raft's key prefix in the database (a folder with keys there is not new). Default `["raft"]`. */
  raftPrefix?: Deno.KvKeyPart[];
  /** Where progress is reported (a migration). Default: nowhere. */
  log?: (line: string) => void;
  /** A second connection to the database, for the store's row reads (`StateStoreOptions.readKv`). */
  readKv?: KvLike;
}

/**
 * A node's state, as {@linkcode openNodeState} opened it.
 *
 * @example
 * ```ts
 * import type { NodeState } from "@distkit/distkit/kv";
 *
 * const describe = (s: NodeState) => `${s.kind}${s.migrated ? " (migrated)" : ""}`;
 * ```
 */
export interface NodeState {
  /** Where the state is kept from now on. */
  kind: StateKind;
  /** The store, for `"disk"` (the caller closes it before the database). */
  store: StateStore | undefined;
  /** The Raft storage to start the node with (the same, or one that hands back what a migration loaded). */
  storage: RaftStorage;
  /** Whether the folder was moved from memory to disk now. */
  migrated: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Reads the folder's record (writing it for a new folder), and opens its
 * state: the store for `"disk"`, after migrating a memory folder when asked
 * for disk.
 *
 * @param storage The node's Raft storage, not started yet.
 * @param kv The database it is in (the state store shares it).
 * @throws {StateKindError} when a disk folder is asked for memory.
 *
 * @example
 * ```ts
 * import { openNodeState } from "@distkit/distkit/kv";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { SimKv } from "@distkit/distkit/store";
 *
 * const kv = new SimKv();
 * const state = await openNodeState(new MemoryStorage(), kv);
 * state.kind; // "memory": the default for a new folder
 * await state.store?.close();
 * ```
 */
export async function openNodeState(
  storage: RaftStorage,
  kv: KvLike,
  options: OpenNodeStateOptions = {},
): Promise<NodeState> {
  const where = options.where ?? "the data folder";
  const recorded = await readKind(kv, options.raftPrefix ?? ["raft"], where);
  // Memory for a new folder until a disk node applies puts as fast (README, "The state on disk").
  const wanted = options.state ?? recorded ?? "memory";
  if (recorded === undefined) await writeKind(kv, wanted);
  else if (recorded === "disk" && wanted === "memory") {
    throw new StateKindError(where, { recorded, wanted });
  }
  if (wanted === "memory") {
    // A store a migration cut short may be there: nothing reads it, the next migration replaces it.
    return { kind: "memory", store: undefined, storage, migrated: false };
  }
  if (recorded !== "memory") {
    const store = await StateStore.open(kv, { readKv: options.readKv });
    return { kind: "disk", store, storage, migrated: false };
  }
  // Memory → disk: install the last snapshot, then switch the record. Until that one commit,
  // the folder is a memory one (a store a crash left half-made is replaced by the next migration's install).
  const loaded = await storage.load();
  const store = await StateStore.open(kv, { readKv: options.readKv });
  try {
    const snapshot = loaded.snapshot;
    const index = snapshot?.meta.index ?? 0;
    if (store.applied.index > index) {
      throw new Error(
        `${where}: the state store left by an earlier migration is at ${store.applied.index}, ` +
          `past the last snapshot (${index}): it should have been dropped`,
      );
    }
    if (snapshot !== undefined && snapshot.data.length > 0) {
      options.log?.(`${where}: moving the KV state of snapshot ${index} from memory to disk`);
      await store.install(
        memoryStatePages(snapshot.data, { index, term: snapshot.meta.term }, {}),
      );
    }
    await writeKind(kv, "disk");
  } catch (err) {
    await store.close();
    throw err;
  }
  options.log?.(`${where}: the KV state is kept on disk from now on (--state disk)`);
  return { kind: "disk", store, storage: loadedOnce(storage, loaded), migrated: true };
}

/** The recorded kind; undefined for a new folder (nothing of Raft's yet). */
async function readKind(
  kv: KvLike,
  raftPrefix: Deno.KvKeyPart[],
  where: string,
): Promise<StateKind | undefined> {
  const entry = await kv.get<Uint8Array>(STATE_KIND_KEY);
  if (entry.value !== null) {
    const kind = entry.value instanceof Uint8Array ? decoder.decode(entry.value) : "";
    if (kind !== "disk" && kind !== "memory") {
      throw new Error(`${where}: its state record is neither "disk" nor "memory"`);
    }
    return kind;
  }
  for await (const _ of kv.list({ prefix: raftPrefix }, { limit: 1 })) return "memory";
  return undefined;
}

async function writeKind(kv: KvLike, kind: StateKind): Promise<void> {
  const result = await kv.atomic().set(STATE_KIND_KEY, encoder.encode(kind)).commit();
  if (!result.ok) throw new Error("the data folder's state record could not be written");
}

/** `storage`, whose first `load` answers what was loaded already (a second would count twice). */
function loadedOnce(storage: RaftStorage, loaded: StoredState): RaftStorage {
  let first: StoredState | undefined = loaded;
  return {
    load: () => {
      const state = first;
      first = undefined;
      return state ? Promise.resolve(state) : storage.load();
    },
    save: (batch) => storage.save(batch),
    ...(storage.prepareSnapshot
      ? { prepareSnapshot: (data: Uint8Array) => storage.prepareSnapshot!(data) }
      : {}),
    raftStateSize: () => storage.raftStateSize(),
    snapshotSize: () => storage.snapshotSize(),
    close: () => storage.close(),
  };
}

/**
 * The Deno KV database a node keeps its state in, from {@linkcode openStateDatabase}.
 *
 * @example
 * ```ts
 * import type { StateDatabase } from "@distkit/distkit/kv";
 *
 * const release = (db: StateDatabase) => db.close();
 * ```
 */
export interface StateDatabase {
  /** Where the state is written: Raft's own database (`raft.kv`), or `state.kv` beside a segment log. */
  kv: KvLike;
  /** A second connection to the same file, for reads (see `StateStoreOptions.readKv`). */
  readKv: KvLike;
  /** Closes what this opened (not Raft's database); call it after the store is closed. */
  close(): void;
}

/**
 * Opens the database a node's state lives in: the Raft storage's own Deno
 * KV (`raft.kv`, one handle shared, the keys under their own prefix) when
 * the log is there, else `state.kv` in the folder (a segment log); and a
 * second connection to that file for the state's reads, so that they do not
 * wait behind the commits of the first (a Deno KV handle runs its operations
 * one at a time).
 *
 * @example
 * ```ts ignore
 * const db = await openStateDatabase(dataDir, host.storage);
 * // ... StateStore.open(db.kv, { readKv: db.readKv }) ... store.close(); db.close();
 * ```
 */
export async function openStateDatabase(
  dataDir: string,
  storage: RaftStorage,
): Promise<StateDatabase> {
  const own = storage instanceof DenoKvStorage
    ? undefined
    : await Deno.openKv(`${dataDir}/state.kv`);
  const path = own ? `${dataDir}/state.kv` : `${dataDir}/raft.kv`;
  let readKv: Deno.Kv;
  try {
    readKv = await Deno.openKv(path);
  } catch (err) {
    own?.close();
    throw err;
  }
  return {
    kv: own ?? (storage as DenoKvStorage).database,
    readKv,
    close() {
      readKv.close();
      own?.close();
    },
  };
}
