/**
 * The options a `StateStore` is opened with (in a file of its
 * own: `state_store.ts` is at the size the layout allows).
 *
 * @module
 */
import type { Codec } from "../net/codec.ts";
import type { KvLike } from "./kv_like.ts";

/**
 * Options of `StateStore.open`.
 *
 * @example
 * ```ts
 * import type { StateStoreOptions } from "@distkit/distkit/store";
 *
 * const options: StateStoreOptions = { prefix: ["state"], cacheBytes: 8 * 1024 * 1024 };
 * ```
 */
export interface StateStoreOptions {
  /** Key prefix, so the state can share a database (a node's `raft.kv`). Default `["state"]`. */
  prefix?: Deno.KvKeyPart[];
  /** What errors call the store (its file). Default `"state"`. */
  where?: string;
  /** The codec of session rows and of `current`. Default: the shared codec. */
  codec?: Codec;
  /** Bytes the read cache may hold. Default 16 MiB. */
  cacheBytes?: number;
  /**
   * A second connection to the same database for reading rows (never
   * written through): a Deno KV handle runs its operations one at a time,
   * so reads on the committing handle wait behind each commit's fsync.
   * Default: `kv` itself.
   */
  readKv?: KvLike;
}
