/**
 * Which Raft storage a node's data folder holds, and opening it: Deno KV
 * (`raft.kv`, the default) or the segment log (`raft.log/`, see
 * `segment_storage.ts`). A folder of one kind is never opened as the other:
 * that would start the node empty beside its real state.
 *
 * @module
 */
import { DenoKvStorage } from "./kv_storage.ts";
import { SegmentLogStorage } from "./segment_storage.ts";
import type { RaftStorage } from "./storage.ts";
import { StorageLossError } from "../store/storage_errors.ts";

/**
 * Where a node keeps its Raft log: `"kv"` in Deno KV (`raft.kv`), or
 * `"segments"` in append-only segment files (`raft.log/`).
 *
 * @example
 * ```ts
 * import type { RaftLogKind } from "@distkit/distkit/raft";
 *
 * const kind: RaftLogKind = "segments";
 * ```
 */
export type RaftLogKind = "kv" | "segments";

/** The kinds, for parsing a flag. */
export const RAFT_LOG_KINDS: readonly RaftLogKind[] = ["kv", "segments"];

/**
 * The data folder holds a Raft log of the other kind than the one asked for.
 *
 * @example
 * ```ts
 * import { StorageKindError } from "@distkit/distkit/raft";
 *
 * const err = new StorageKindError("data/0", { found: "kv", asked: "segments" });
 * err.message.includes("--log kv"); // true
 * ```
 */
export class StorageKindError extends Error {
  /** The kind the folder holds. */
  readonly found: RaftLogKind;
  /** The kind that was asked for. */
  readonly asked: RaftLogKind;

  /**
   * Creates the error.
   *
   * @param dataDir The node's data folder.
   * @param kinds The kind found there and the kind asked for.
   */
  constructor(dataDir: string, kinds: { found: RaftLogKind; asked: RaftLogKind }) {
    super(
      `the data folder ${dataDir} holds a Raft log of kind "${kinds.found}" ` +
        `(${storagePath(dataDir, kinds.found)}), not "${kinds.asked}": start the node with ` +
        `--log ${kinds.found} (option raftLog: "${kinds.found}"); to move it to the other kind, ` +
        `remove it from the cluster and add it back as a new member with an empty data folder`,
    );
    this.name = "StorageKindError";
    this.found = kinds.found;
    this.asked = kinds.asked;
  }
}

/**
 * Options of {@linkcode openRaftStorage}.
 *
 * @example
 * ```ts
 * import type { OpenRaftStorageOptions } from "@distkit/distkit/raft";
 *
 * const options: OpenRaftStorageOptions = { kind: "segments", expectState: false };
 * ```
 */
export interface OpenRaftStorageOptions {
  /**
   * The kind of log to open. Default: the kind the folder holds, and
   * `"kv"` for a folder that holds neither (a new node).
   */
  kind?: RaftLogKind;
  /** The node has met its peers: a missing store is a loss (see `DenoKvStorageOptions`). */
  expectState?: boolean;
}

/**
 * Opens the Raft storage of a node's data folder: `raft.kv` or `raft.log/`.
 *
 * @throws {StorageKindError} when the folder holds the other kind.
 *
 * @example
 * ```ts
 * import { openRaftStorage } from "@distkit/distkit/raft";
 *
 * const dataDir = await Deno.makeTempDir();
 * const storage = await openRaftStorage(dataDir, { kind: "segments" });
 * await storage.load();
 * await storage.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function openRaftStorage(
  dataDir: string,
  options: OpenRaftStorageOptions = {},
): Promise<RaftStorage> {
  const found = await folderLogKind(dataDir);
  if (found === undefined && options.expectState) {
    // Made by nothing here: a node that has met its peers lost its log (or the disk that held
    // it is not mounted). Refused before a new store of either kind is made beside the loss,
    // which would make the folder hold both once the log is back.
    throw new StorageLossError(
      dataDir,
      "neither its Deno KV log (raft.kv) nor its segment log (raft.log/) is there, though this " +
        "node has taken part in its cluster (if its disk is not mounted, mount it and start again)",
    );
  }
  const kind = options.kind ?? found ?? "kv";
  if (!RAFT_LOG_KINDS.includes(kind)) {
    throw new RangeError(
      `the Raft log kind must be one of ${RAFT_LOG_KINDS.join(", ")}, got ${kind}`,
    );
  }
  const other: RaftLogKind = kind === "kv" ? "segments" : "kv";
  if (await exists(storagePath(dataDir, other))) {
    throw new StorageKindError(dataDir, { found: other, asked: kind });
  }
  const expectState = options.expectState ?? false;
  return kind === "kv"
    ? await DenoKvStorage.open(storagePath(dataDir, kind), { expectState })
    : await SegmentLogStorage.open(storagePath(dataDir, kind), { expectState });
}

/**
 * The kind of Raft log a node's data folder holds, or undefined when it
 * holds none (a new folder, or one whose log was lost: opening the default
 * kind then tells a lost store from a new one, see `expectState`).
 *
 * @throws {Error} when it holds both (a folder no distkit makes).
 *
 * @example
 * ```ts
 * import { folderLogKind } from "@distkit/distkit/raft";
 *
 * const dataDir = await Deno.makeTempDir();
 * await folderLogKind(dataDir); // undefined
 * await Deno.remove(dataDir);
 * ```
 */
export async function folderLogKind(dataDir: string): Promise<RaftLogKind | undefined> {
  const [kv, segments] = await Promise.all(
    RAFT_LOG_KINDS.map((kind) => exists(storagePath(dataDir, kind))),
  );
  if (kv && segments) {
    throw new Error(
      `the data folder ${dataDir} holds both a Deno KV Raft log (raft.kv) and a segment log ` +
        `(raft.log/), which no distkit node makes: it cannot tell which is this node's; remove ` +
        `the node from the cluster and add it back as a new member with an empty data folder`,
    );
  }
  return kv ? "kv" : segments ? "segments" : undefined;
}

function storagePath(dataDir: string, kind: RaftLogKind): string {
  return kind === "kv" ? `${dataDir}/raft.kv` : `${dataDir}/raft.log`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
