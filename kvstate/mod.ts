/**
 * The key/value data model: values (strings or bytes), the commands that
 * change them (put, append, delete, compare-and-set), the limits every
 * request is checked against, and {@linkcode KvStateMachine}, the
 * deterministic map that applies them with exactly-once sessions.
 *
 * What it is not: a service. It does no I/O and knows nothing of Raft; the
 * KV service (`kv/`) and the sharded KV groups (`shard/`) replicate it. Its
 * exports reach users through `@distkit/distkit/kv`.
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "@distkit/distkit/kv";
 *
 * const state = new KvStateMachine();
 * state.apply({ client: "c1", seq: 1, write: { type: "put", key: "x", value: "1" } });
 * ```
 *
 * @module
 */
// The request parsers in protocol.ts are the services' own, not exported.
export { DEFAULT_KV_LIMITS, type KvLimits, type KvReply } from "./protocol.ts";
export * from "./state.ts";
export * from "./value.ts";
export { STORED_MAX_KEY_BYTES, StoredKvState } from "./stored_state.ts";
// The store types a stored state's signatures name.
export type { StateBatch, StateStore, StoredMachine } from "../rsm/mod.ts";
// Types of the layers below that appear in this module's signatures.
export type { Codec } from "../net/mod.ts";
export type { ReplicaReply } from "../rsm/mod.ts";
