/**
 * A linearizable replicated key/value service on Raft: 6.824's lab 4
 * (kvraft), with sessions, snapshots and node processes.
 *
 * - {@linkcode KvServer}: one replica; a {@linkcode KvStateMachine} kept in
 *   step by a Raft node, snapshotting when the log reaches `maxRaftState`.
 * - {@linkcode KvClerk}: the client (6.824's Clerk); finds the leader,
 *   retries, and applies every write exactly once.
 * - {@linkcode startKvNode} / {@linkcode connectKv}: node processes over TCP
 *   with Deno KV storage, an HTTP API ({@linkcode serveKvHttp}) and runtime
 *   membership.
 *
 * Values are strings or bytes; keys are strings up to 1 KiB and values up to
 * 1 MiB by default ({@linkcode KvLimits}).
 *
 * What it is not: the replication machinery. That is the toolkit in `/rsm`
 * ({@linkcode Replica}, {@linkcode ReplicaClient}, sessions), re-exported here
 * for 0.x users; build your own service on `/rsm`, not on this module. Nor is
 * it sharded: for that, `/shard`.
 *
 * @example
 * ```ts
 * import { KvClerk, KvServer } from "@distkit/distkit/kv";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net, random }) => {
 *   const ids = ["a", "b", "c"];
 *   const servers = await Promise.all(ids.map((id) => {
 *     const server = new RpcServer();
 *     net.addServer(id, server);
 *     return KvServer.start({
 *       id,
 *       peers: ids,
 *       transport: net.transportFor(id),
 *       server,
 *       storage: new MemoryStorage(),
 *       clock,
 *       random: random.fork(),
 *     });
 *   }));
 *   const clerk = new KvClerk(net.transportFor("client"), ids, {
 *     clock,
 *     random: random.fork(),
 *     id: "client-1", // inside simulate, ids are given (or sim.newId())
 *   });
 *   await clerk.put("x", "1");
 *   await clerk.append("x", "2");
 *   assert.equal(await clerk.get("x"), "12");
 *   for (const s of servers) await s.stop();
 * }, { seed: 1 });
 * ```
 *
 * @module
 */
export * from "./clerk.ts";
export * from "./http.ts";
export * from "./members_http.ts";
export * from "./node.ts";
export * from "./node_state.ts";
export * from "./server.ts";
// The data model this service replicates (shared with the sharded service).
export * from "../kvstate/mod.ts";
// The toolkit this service is built on, re-exported for the 0.x API (import `@distkit/distkit/rsm` for it).
export * from "../rsm/mod.ts";
// Types from the net and raft layers that appear in this module's signatures.
export type { Clock, Codec, CodecOptions, Random, Transport } from "../net/mod.ts";
export type { RaftNode, RaftNodeOptions } from "../raft/mod.ts";
// What RaftNodeOptions takes from the network and for logging.
export type { RaftPeerEnd, RaftRpcHost, RaftTransport } from "../raft/mod.ts";
export type { LogFields, Logger, LogLevel } from "../raft/mod.ts";

export type {
  CallContext,
  CallOptions,
  ClientEnd,
  MemberHello,
  MemberOptions,
  RpcServer,
  ServiceMethods,
  TcpAddr,
  TcpServer,
  Timer,
} from "../net/mod.ts";
export type {
  Applied,
  CoreOptions,
  DenoKvStorage,
  Entry,
  EntryKind,
  HardState,
  LoadOptions,
  Membership,
  MembershipChange,
  NodeId,
  RaftLogKind,
  RaftObserver,
  RaftStatus,
  RaftStorage,
  Role,
  Snapshot,
  SnapshotMeta,
  SnapshotSink,
  SnapshotSource,
  SnapshotStream,
  StorageBatch,
  StoredState,
} from "../raft/mod.ts";
