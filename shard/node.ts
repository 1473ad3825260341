/**
 * Shard nodes as processes run them (`distkit shard ctrler serve`,
 * `distkit shard group serve`): a controller replica or a group server over
 * TCP, with its Raft state in a Deno KV file under its data folder (and a
 * group server's state too, with `ShardNodeOptions.state` `"disk"`). Nodes
 * are named by their TCP address (`host:port`), which is also how the
 * controller's configurations list a group's servers, so any node or client
 * can reach any other from a configuration alone.
 *
 * @module
 */
import { hostNode } from "../rsm/hosting.ts";
import { checkPeers } from "../raft/node_helpers.ts";
import { parseAddress } from "../net/address.ts";
import { serveMembers } from "../rsm/members.ts";
import { AddressTransport } from "../net/tcp.ts";
import type { Transport } from "../net/transport.ts";
import { startIdleCollector } from "../net/idle_gc.ts";
import { realClock } from "../net/clock.ts";
import { ShardClerk, type ShardClerkOptions } from "./clerk.ts";
import { ShardController, ShardControllerClerk } from "./controller.ts";
import { ShardGroupServer } from "./group.ts";
import type { Logger } from "../net/logger.ts";
import {
  type NodeState,
  openStateDatabase,
  type StateDatabase,
  type StateKind,
} from "../rsm/node_state.ts";
import { openGroupNodeState } from "./group_node_state.ts";

/**
 * Options of {@linkcode startShardNode}.
 *
 * @example
 * ```ts
 * import type { ShardNodeOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardNodeOptions = {
 *   role: "group",
 *   gid: 100,
 *   address: "127.0.0.1:7101",
 *   peers: ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"],
 *   ctrlers: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
 *   dataDir: "data/g100-0",
 * };
 * ```
 */
export interface ShardNodeOptions {
  /** A controller replica, or a server of a shard group. */
  role: "ctrler" | "group";
  /** This node's TCP address, host:port: also its name. */
  address: string;
  /** The addresses of every replica of this controller or group, this one included. */
  peers: string[];
  /** For a group server: its group's id. */
  gid?: number;
  /** For a group server: the controller replicas' addresses. */
  ctrlers?: string[];
  /** Folder for this node's data; created if missing. One process per folder. */
  dataDir: string;
  /**
   * Snapshot when the Raft state reaches this many bytes, or
   * `snapshotLogRatio` × the last snapshot's size when that is larger (so a
   * large state is not encoded again every few MiB of writes). Default 4 MiB.
   */
  maxRaftState?: number;
  /**
   * How much log a snapshot must be worth, as a multiple of the last
   * snapshot's size (see `ReplicaOptions.snapshotLogRatio`); 0: snapshot at
   * `maxRaftState` whatever the state's size. Default 1.
   */
  snapshotLogRatio?: number;
  /** Raft tick in milliseconds. Default 50. */
  tickMs?: number;
  /** The cluster id: peers and clients of another cluster are refused. Default `""`. */
  cluster?: string;
  /** A shared secret every peer and client must prove it knows. Default: none. */
  secret?: string;
  /** Where to report (startup, shutdown). Default: nowhere. */
  log?: (line: string) => void;
  /**
   * An empty data folder joins the running replicas instead of founding
   * them: it starts with no membership, never campaigns, and waits to be
   * added as a learner (`Member.Add` on the leader, see `serveMembers`).
   * Ignored once the folder has state. Default false.
   */
  join?: boolean;
  /**
   * For a group server: where the group's state (its shards' keys and
   * sessions) is kept: `"disk"` (in the folder's `raft.kv` beside the Raft
   * log, with a bounded cache: memory does not grow with the keys, a
   * restart replays only the log past the stored state, compacting the log
   * encodes nothing) or `"memory"` (rebuilt from the last snapshot and the
   * log at each start). Default: what the folder records, and `"memory"`
   * for a new folder (as `kv serve`: a disk group applies puts about half
   * as fast today). A memory folder asked for disk is migrated (its last
   * snapshot installed into the store); a disk folder asked for memory is
   * refused (`StateKindError`). Servers of a group may differ (each takes
   * the other's snapshots). A controller replica keeps its state in
   * memory (a few configurations: nothing to gain) and refuses this option
   * (`RangeError`).
   */
  state?: StateKind;
}

/**
 * A running shard node, from {@linkcode startShardNode}.
 *
 * @example
 * ```ts
 * import type { ShardNode } from "@distkit/distkit/shard";
 *
 * const describe = (node: ShardNode) => `${node.role} on ${node.address}`;
 * ```
 */
export interface ShardNode {
  /** What the node runs. */
  readonly role: "ctrler" | "group";
  /** Its TCP address (and name). */
  readonly address: string;
  /** Where a group server keeps its state (a controller: `"memory"`). */
  readonly state: StateKind;
  /** Resolves when the node stops: by `close`, or on its own after a failure (reported). */
  readonly finished: Promise<void>;
  /** Stops serving and closes the storage; what was acknowledged is on disk. */
  close(): Promise<void>;
}

/**
 * Starts a controller replica or a group server.
 *
 * @throws {AddressError} (of the net module) when an address is not host:port.
 * @throws {RangeError} when the address is not in `peers`, a group server
 * lacks its gid or the controllers, or a controller is given `state`.
 * @throws {StateKindError} (of the rsm module) when a group server's folder
 * keeps its state on disk and `state` is `"memory"`.
 * @throws {Error} when the port is taken or the data folder cannot be opened.
 *
 * @example
 * ```ts ignore
 * import { startShardNode } from "@distkit/distkit/shard";
 *
 * const node = await startShardNode({
 *   role: "ctrler",
 *   address: "127.0.0.1:7001",
 *   peers: ["127.0.0.1:7001"],
 *   dataDir: "data/ctrler-0",
 * });
 * await node.close();
 * ```
 */
export async function startShardNode(options: ShardNodeOptions): Promise<ShardNode> {
  const { role, address } = options;
  for (const a of [address, ...options.peers, ...(options.ctrlers ?? [])]) parseAddress(a);
  if (!options.peers.includes(address)) {
    throw new RangeError(`${address} is not one of --peers (${options.peers.join(", ")})`);
  }
  // Before anything is made in the folder (Raft refuses it too: a voter listed twice counts twice).
  checkPeers(options.peers);
  if (role === "group" && (!Number.isSafeInteger(options.gid) || options.gid! <= 0)) {
    throw new RangeError("a group server needs its gid, a positive integer");
  }
  if (role === "group" && (options.ctrlers ?? []).length === 0) {
    throw new RangeError("a group server needs the controllers' addresses");
  }
  if (role === "ctrler" && options.state !== undefined) {
    throw new RangeError(
      "a controller replica keeps its state in memory (a few configurations): --state is for " +
        "a group server",
    );
  }
  const log = options.log ?? (() => {});
  const node = role === "group" ? `group ${options.gid} ${address}` : `ctrler ${address}`;
  // The listener's, Raft's and the replica's own records go to the same log.
  const logger: Logger = { log: (level, message) => log(`shard ${node}: ${level} ${message}`) };
  const access = { cluster: options.cluster, secret: options.secret };
  const { rpc, listener, storage, expectsState } = await hostNode({
    address,
    id: node,
    dataDir: options.dataDir,
    ...access,
    logger,
  });
  let state: NodeState | undefined;
  let db: StateDatabase | undefined;
  if (role === "group") {
    try {
      db = await openStateDatabase(options.dataDir, storage, { expectState: expectsState });
      state = await openGroupNodeState(storage, db.kv, {
        gid: options.gid!,
        state: options.state,
        where: options.dataDir,
        address,
        log: (line) => log(`shard ${node}: ${line}`),
        readKv: db.readKv,
      });
    } catch (err) {
      db?.close();
      await listener.close();
      await storage.close();
      throw err;
    }
  }
  const stateStore = state?.store;
  const transport = new AddressTransport({ timeoutMs: 1000, ...access });
  const raft = {
    id: address,
    peers: options.join ? [] : options.peers,
    transport,
    server: rpc,
    storage: state?.storage ?? storage,
    tickMs: options.tickMs,
    maxRaftState: options.maxRaftState ?? 4 * 1024 * 1024,
    snapshotLogRatio: options.snapshotLogRatio ?? 1,
    logger,
  };
  let server: ShardController | ShardGroupServer;
  try {
    server = role === "ctrler" ? await ShardController.start(raft) : await ShardGroupServer.start({
      ...raft,
      gid: options.gid!,
      ctrlers: options.ctrlers!,
      log,
      ...(stateStore ? { stateStore } : {}),
    });
  } catch (err) {
    await listener.close();
    await transport.close();
    // The state store shares the Raft storage's database: closed first.
    await stateStore?.close();
    db?.close();
    await storage.close();
    throw err;
  }
  // Runtime membership (`Member.List/Add/Remove/Promote`, node ids are addresses).
  serveMembers(rpc, server.raft, {
    checkNode: (node) => {
      try {
        parseAddress(node);
        return undefined;
      } catch (err) {
        return `a replica is named by its address: ${(err as Error).message}`;
      }
    },
  });
  const what = role === "ctrler" ? "controller" : `group ${options.gid} server`;
  const kind = state?.kind ?? "memory";
  log(
    `shard ${what} (state ${
      kind === "disk" ? "on disk" : "in memory"
    }) serving on ${listener.address}`,
  );
  let closing: Promise<void> | undefined;
  const running = server;
  // One full collection once the node has appended nothing for 10 s (see net/idle_gc.ts).
  const collector = startIdleCollector({
    activity: () => running.raft.status().lastIndex,
    clock: realClock,
    log: (line) => log(`shard ${what}: ${line}`),
  });
  return {
    role,
    address,
    state: kind,
    finished: running.finished,
    close() {
      closing ??= (async () => {
        collector.stop();
        await running.stop();
        await listener.close();
        await transport.close();
        await stateStore?.close();
        db?.close();
        await storage.close();
        log(`shard ${what} stopped`);
      })();
      return closing;
    },
  };
}

/**
 * Options of {@linkcode connectShard}: the clerk's, plus the cluster's id and secret.
 *
 * @example
 * ```ts
 * import type { ConnectShardOptions } from "@distkit/distkit/shard";
 *
 * const options: ConnectShardOptions = { cluster: "prod" };
 * ```
 */
export interface ConnectShardOptions extends ShardClerkOptions {
  /** The cluster id the nodes serve. Default `""`. */
  cluster?: string;
  /** The nodes' shared secret, if they have one. */
  secret?: string;
}

/**
 * A sharded-KV clerk and a controller clerk connected over TCP to the
 * cluster whose controller replicas are at `ctrlers`, the transport they
 * share (to ask group servers directly, e.g. {@linkcode probeGroupServers}),
 * and the way to close their connections.
 *
 * @example
 * ```ts ignore
 * import { checkGroupServers, connectShard, probeGroupServers } from "@distkit/distkit/shard";
 *
 * const { clerk, admin, transport, close } = connectShard(["127.0.0.1:7001"]);
 * checkGroupServers(100, await probeGroupServers(transport, ["127.0.0.1:7101"]));
 * await admin.join({ 100: ["127.0.0.1:7101"] });
 * await clerk.put("x", "1");
 * await close();
 * ```
 */
export function connectShard(
  ctrlers: string[],
  options: ConnectShardOptions = {},
): {
  clerk: ShardClerk;
  admin: ShardControllerClerk;
  transport: Transport;
  close: () => Promise<void>;
} {
  for (const a of ctrlers) parseAddress(a);
  const transport = new AddressTransport({
    timeoutMs: options.attemptTimeoutMs ?? 2500,
    cluster: options.cluster,
    secret: options.secret,
  });
  const clerk = new ShardClerk(transport, ctrlers, options);
  const admin = new ShardControllerClerk(transport, ctrlers, {
    ...options,
    id: options.id === undefined ? undefined : `${options.id}-admin`,
  });
  return { clerk, admin, transport, close: () => transport.close() };
}
