/**
 * The shard controller and the sharded key/value service with live migration.
 *
 * In progress (issue #7): today this module has shard configurations and
 * their deterministic, balanced, minimal rebalancing ({@linkcode join},
 * {@linkcode leave}, {@linkcode move}, {@linkcode rebalance}). The
 * replicated controller and the sharded service come next.
 *
 * @example
 * ```ts
 * import { initialConfig, join, leave } from "@distkit/distkit/shard";
 *
 * const c1 = join(initialConfig(), { 100: ["a", "b", "c"], 101: ["d", "e", "f"] });
 * c1.shards; // [100, 100, 100, 100, 100, 101, 101, 101, 101, 101]
 * const c2 = leave(c1, [100]);
 * c2.shards.every((gid) => gid === 101); // true
 * ```
 *
 * @module
 */
export * from "./config.ts";
export * from "./ctrler.ts";
export * from "./ctrler_state.ts";
export * from "./group.ts";
export * from "./group_state.ts";
export * from "./clerk.ts";
export * from "./node.ts";
// Types from the kv, net and raft layers that appear in this module's signatures.
export type {
  KvLimits,
  KvResult,
  KvStateMachine,
  KvValue,
  KvWrite,
  Replica,
  ReplicaClientOptions,
  ReplicaOptions,
  ReplicaReply,
  ReplicaStats,
} from "../kv/mod.ts";
export type { Clock, Codec, Random, TcpClient, TcpClientOptions, Transport } from "../net/mod.ts";
export type { RaftNode } from "../raft/mod.ts";
