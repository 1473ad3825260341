/**
 * A linearizable replicated key/value service on Raft.
 *
 * In progress (issue #5): today this module has the replicated state
 * machine, {@linkcode KvStateMachine}, with exactly-once writes through a
 * deduplication table that is part of every snapshot. The server and the
 * clerk (client) come next.
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "@distkit/distkit/kv";
 *
 * const kv = new KvStateMachine();
 * kv.apply({ client: "c1", seq: 1, write: { type: "put", key: "x", value: "1" } });
 * kv.get("x"); // "1"
 * ```
 *
 * @module
 */
export * from "./state.ts";
// Types from the net layer that appear in this module's signatures.
export type { Codec, CodecOptions } from "../net/mod.ts";
