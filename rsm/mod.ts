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
 * - Exactly-once writes by default: {@linkcode ReplicaClient.submit} stamps
 *   each write with a client session, {@linkcode Replica.write} serves it,
 *   and the replica applies it once and answers retries with the recorded
 *   outcome (its dedup table travels in the snapshots). An `apply` that
 *   throws answers its write with an {@linkcode ApplyError}, on every replica
 *   alike, and the cluster keeps serving; a `validate` hook refuses bad
 *   commands before they are proposed.
 * - The parts, for services that keep their own dedup table
 *   (`exactlyOnce: false`: the KV service, the shard groups): sessions
 *   ({@linkcode Sessions}), the dedup table ({@linkcode DedupTable}) and the
 *   request checks ({@linkcode checkSession}, {@linkcode checkString}).
 * - Hosting a node on a real machine: {@linkcode hostNode} (binds the port,
 *   claims the data folder, opens storage), node identity and membership.
 *
 * A service is three pieces: a {@linkcode ReplicaMachine} (`apply`,
 * `snapshot`, `restore`), a {@linkcode ReplicaService} whose methods call
 * `replica.write(request)` for writes and `replica.read()` before reading
 * the machine, and a {@linkcode ReplicaClient} that calls them. A node
 * process adds {@linkcode hostNode}. `tests/rsm_service_test.ts` and the
 * sample in `samples/ticket_service.ts` are complete services.
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
export { AttemptLog, unsendableRequest } from "./call_attempts.ts";
export * from "./apply_error.ts";
export type { StampedWrite, WriteOutcome } from "./exactly_once.ts";
export { readPages, type StoredMachine, storeSource } from "./stored_machine.ts";
export type { StateReader } from "./stored_layers.ts";
export {
  DEFAULT_VALUES_IN_LOG_BUDGET,
  type LoggingMachine,
  LogValues,
  type ValuesInLogOptions,
} from "./stored_logged.ts";
// The store's types that appear in a stored machine's signatures.
export type {
  AppliedPoint,
  Codec,
  EndEntryOptions,
  KvAtomicLike,
  KvLike,
  KvListIteratorLike,
  LoggedValues,
  LogLocation,
  StateBatch,
  StateInstall,
  StateListOptions,
  StatePage,
  StatePagesOptions,
  StateRow,
  StateStore,
  StateStoreOptions,
  StateValue,
  StateView,
  ValueInLog,
} from "../store/mod.ts";
export * from "./dedup.ts";
export * from "./checks.ts";
export * from "./errors.ts";
export * from "./hosting.ts";
export * from "./node_state.ts";
export * from "./identity.ts";
export * from "./identity_book.ts";
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
export type { DenoKvStorage, RaftLogKind, RaftNode, RaftNodeOptions } from "../raft/mod.ts";
// What RaftNodeOptions takes from the network and for logging.
export type { RaftPeerEnd, RaftRpcHost, RaftTransport } from "../raft/mod.ts";
export type {
  Applied,
  CoreOptions,
  Entry,
  LoadOptions,
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
export type { SnapshotMeta, SnapshotSink, SnapshotSource, SnapshotStream } from "../raft/mod.ts";
