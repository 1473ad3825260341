/**
 * What a {@linkcode RaftNode} is started with, what it hands the service,
 * and what it needs from the network: small structural interfaces that
 * `net`'s `Transport`, `ClientEnd` and `RpcServer` satisfy.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { Logger } from "../net/logger.ts";
import type { Random } from "../net/random.ts";
import type { CoreOptions } from "./core_options.ts";
import type { RaftStorage } from "./storage.ts";
import type { SnapshotSource } from "./snapshot_stream.ts";
import type { SnapshotSink } from "./snapshot_install.ts";
import type { Membership, NodeId, Role } from "./types.ts";

/**
 * One end of a connection to a peer, as a Raft node uses it (`net`'s
 * `ClientEnd` is one).
 *
 * @example
 * ```ts
 * import type { RaftPeerEnd } from "@distkit/distkit/raft";
 *
 * const end: RaftPeerEnd = { call: () => Promise.reject(new Error("unreachable")) };
 * ```
 */
export interface RaftPeerEnd {
  /** Calls `method` on the peer with `args`, giving up after `timeoutMs`. */
  call<T = unknown>(method: string, args?: unknown, options?: { timeoutMs?: number }): Promise<T>;
}

/**
 * How a Raft node reaches its peers by id (`net`'s `Transport` is one).
 *
 * @example
 * ```ts
 * import type { RaftTransport } from "@distkit/distkit/raft";
 *
 * const nowhere: RaftTransport = {
 *   connect: () => ({ call: () => Promise.reject(new Error("no network")) }),
 * };
 * ```
 */
export interface RaftTransport {
  /** An end that calls `peer`. */
  connect(peer: NodeId): RaftPeerEnd;
}

/**
 * Where a Raft node registers the service its peers call (`net`'s
 * `RpcServer` is one).
 *
 * @example
 * ```ts
 * import type { RaftRpcHost } from "@distkit/distkit/raft";
 *
 * const services = new Map<string, object>();
 * const host: RaftRpcHost = {
 *   addService: (name, methods) => void services.set(name, methods),
 *   removeService: (name) => void services.delete(name),
 * };
 * ```
 */
export interface RaftRpcHost {
  /** Registers `methods` under `name` (the node's is `Raft`, with one method, `Step`). */
  addService(name: string, methods: object): void;
  /** Removes the service `name`. */
  removeService(name: string): void;
}

/**
 * Options for {@linkcode RaftNode.start}.
 *
 * @example
 * ```ts
 * import { MemoryStorage, type RaftNodeOptions } from "@distkit/distkit/raft";
 * import { RpcServer, type Transport } from "@distkit/distkit/net";
 *
 * function optionsFor(transport: Transport): RaftNodeOptions {
 *   return {
 *     id: "a",
 *     peers: ["a", "b", "c"],
 *     transport,
 *     server: new RpcServer(),
 *     storage: new MemoryStorage(),
 *   };
 * }
 * ```
 */
export interface RaftNodeOptions extends CoreOptions {
  /** This node's id; must be stable across restarts. */
  id: NodeId;
  /** The initial voters (including this node, each once: a duplicate is a `RangeError`), used only when the storage is empty. Pass `[]` to join an existing cluster as a learner. */
  peers: NodeId[];
  /** How to reach the other nodes by id (a `Transport` of `net`). */
  transport: RaftTransport;
  /** The RPC server peers call (an `RpcServer` of `net`); the node registers a `Raft` service on it. */
  server: RaftRpcHost;
  /** Where the node persists its state. */
  storage: RaftStorage;
  /** Time source. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /** Randomness for election timeouts. Default: seeded from `SEED` or at random (none inside `simulate`: pass `sim.random.fork()`). */
  random?: Random;
  /** Milliseconds per tick. Default 50 (heartbeats every 2 ticks, elections after 10–20). */
  tickMs?: number;
  /**
   * Deadline of one RPC to a peer. Default: one election timeout. A vote
   * request waits at least the longest election timeout, as long as its
   * campaign may still count the answer.
   */
  rpcTimeoutMs?: number;
  /** Where the node reports that it stopped on a failure. Default: silent. */
  logger?: Logger;
  /**
   * For a service whose state is durable: the log index its stored state
   * reflects. Committed entries at or below it are not handed out again
   * after a restart, nor the stored snapshot when it is not beyond it.
   * Default: nothing is durable but what Raft stores.
   */
  applied?: number;
  /**
   * For a service whose state is durable: where a leader reads it to send a
   * follower that needs a snapshot, page by page. It lets the service
   * compact the log with {@linkcode RaftNode.compact}, without the bytes.
   */
  snapshotSource?: SnapshotSource;
  /**
   * With a `snapshotSource`: the most bytes of a stream's chunks in flight
   * to a follower, sent and not yet answered (it answers a chunk once it is
   * written). Default four chunks (`snapshotChunkBytes`); at least one.
   */
  snapshotWindowBytes?: number;
  /**
   * For a service whose state is durable: where a follower writes a stored
   * state a leader streams to it, chunk by chunk (each written before it is
   * acknowledged), switching to it with the last; the snapshot Raft then
   * records is data-less. Without it, chunks are gathered in memory and the
   * whole snapshot is handed to the service.
   */
  snapshotSink?: SnapshotSink;
}

/**
 * What the node hands the service, in log order, each exactly once: a
 * committed command; a committed entry of Raft's own (`internal`: a new
 * leader's no-op or a membership change), which has nothing to apply but
 * moves the service's applied index (a ReadIndex may point at it); or a
 * snapshot to restore from (at start-up, or sent by the leader because this
 * node fell too far behind).
 *
 * @example
 * ```ts
 * import type { Applied } from "@distkit/distkit/raft";
 *
 * function describe(a: Applied): string {
 *   switch (a.type) {
 *     case "command":
 *       return `apply ${a.index}`;
 *     case "internal":
 *       return `nothing to apply at ${a.index}`;
 *     case "snapshot":
 *       return `restore snapshot at ${a.index}`;
 *   }
 * }
 * ```
 */
export type Applied =
  | { type: "command"; index: number; term: number; command: unknown }
  | { type: "internal"; index: number; term: number }
  | { type: "snapshot"; index: number; term: number; data: Uint8Array };

/**
 * A snapshot of a node's state, for monitoring.
 *
 * @example
 * ```ts
 * import type { RaftStatus } from "@distkit/distkit/raft";
 *
 * function line(s: RaftStatus): string {
 *   return `${s.id} ${s.role} term ${s.term} commit ${s.commitIndex}`;
 * }
 * ```
 */
export interface RaftStatus {
  /** The node's id. */
  id: NodeId;
  /** Its current term. */
  term: number;
  /** Its role. */
  role: Role;
  /** The leader it knows of. */
  leader: NodeId | null;
  /** Highest committed index. */
  commitIndex: number;
  /** Highest index handed to the service. */
  appliedIndex: number;
  /** Last index in the log. */
  lastIndex: number;
  /** Index the log starts after. */
  snapshotIndex: number;
  /**
   * Leader with a `snapshotSource`: the lowest index its log must keep for
   * a follower catching up from a streamed state (the stream's index, then
   * the follower's match until it has the entries written meanwhile); a
   * compaction past it starts that follower's stream again. Undefined: none.
   */
  catchUpIndex?: number;
  /** Latest membership. */
  membership: Membership;
  /** Whether the node is stopped. */
  stopped: boolean;
}
