/**
 * The replicated-state-machine toolkit every distkit service is built on:
 * what 6.824's kvraft and shardkv servers each write by hand (the apply
 * loop over Raft, duplicate detection by client id and sequence number,
 * snapshots, the clerk's leader search and retries), written once.
 *
 * - {@linkcode Replica}: one member of a replicated group; a deterministic
 *   state machine (a {@linkcode ReplicaMachine}) kept in step by a Raft node,
 *   with admission control, snapshots and linearizable reads.
 * - {@linkcode ReplicaClient}: the client side; finds the leader, retries,
 *   and reports an outcome it cannot know as unknown rather than "not applied".
 * - Sessions ({@linkcode Sessions}), the dedup table ({@linkcode DedupTable})
 *   and the request checks ({@linkcode checkSession}, {@linkcode checkString})
 *   that make a retried write apply once.
 * - Hosting a node on a real machine: {@linkcode hostNode} (binds the port,
 *   claims the data folder, opens storage), node identity and membership.
 *
 * What it is not: it knows no service's commands. The KV service (`kv/`),
 * the shard controller and groups (`shard/`) and primary/backup (`pb/`) are
 * services on it; none of them is needed to build your own.
 *
 * @example
 * ```ts
 * import type { ReplicaMachine } from "@distkit/distkit/rsm";
 *
 * class Counter implements ReplicaMachine<number> {
 *   n = 0;
 *   apply(entry: unknown): number {
 *     return this.n += typeof entry === "number" ? entry : 0;
 *   }
 *   snapshot(): Uint8Array {
 *     return new TextEncoder().encode(String(this.n));
 *   }
 *   restore(bytes: Uint8Array): void {
 *     this.n = Number(new TextDecoder().decode(bytes));
 *   }
 * }
 * ```
 *
 * @module
 */
export * from "./replica.ts";
export * from "./replica_client.ts";
export * from "./dedup.ts";
export * from "./checks.ts";
export * from "./errors.ts";
export * from "./hosting.ts";
export * from "./identity.ts";
export * from "./members.ts";
// Types of the layers below that appear in this module's signatures.
export type {
  Clock,
  LogFields,
  Logger,
  LogLevel,
  MemberHello,
  MemberOptions,
  Random,
  RpcServer,
  ServiceMethods,
  TcpServer,
  TcpServerStats,
  Transport,
} from "../net/mod.ts";
export type { DenoKvStorage, RaftNode, RaftNodeOptions } from "../raft/mod.ts";
// What RaftNodeOptions takes from the network and for logging.
export type { RaftPeerEnd, RaftRpcHost, RaftTransport } from "../raft/mod.ts";
export type {
  Applied,
  CoreOptions,
  Entry,
  MembershipChange,
  NodeId,
  RaftStatus,
  RaftStorage,
  StorageBatch,
  StoredState,
} from "../raft/mod.ts";
export type { CallContext, ClientEnd, TcpAddr, Timer } from "../net/mod.ts";
export type { CallOptions } from "../net/mod.ts";
export type {
  EntryKind,
  HardState,
  Membership,
  RaftObserver,
  Role,
  Snapshot,
} from "../raft/mod.ts";
export type { SnapshotMeta } from "../raft/mod.ts";
