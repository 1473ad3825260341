/**
 * A whole KV node, as `distkit kv serve` runs it: Raft state in a Deno KV
 * file under a data folder, TCP for peers and clerks, and the HTTP API.
 * And the client side: a clerk connected to such a cluster over TCP.
 *
 * @module
 */
import { EventSummary } from "../net/event_summary.ts";
import { startIdleCollector } from "../net/idle_gc.ts";
import { realClock } from "../net/clock.ts";
import { AddressTransport, TcpTransport } from "../net/tcp.ts";
import { KvClerk, type KvClerkOptions } from "./clerk.ts";
import { hostNode } from "../rsm/hosting.ts";
import { parseAddress } from "../net/address.ts";
import { formatAddr } from "../net/frame.ts";
import { type NodeIdentity, shareIdentities } from "../rsm/identity.ts";
import type { IdentityConflictError, StartMode } from "../rsm/identity_book.ts";
import type { Membership, RaftLogKind, RaftObserver } from "../raft/mod.ts";
import { type KvHttpServer, serveKvHttp } from "./http.ts";
import type { KvLimits } from "../kvstate/protocol.ts";
import { serveMembers } from "../rsm/members.ts";
import { KvServer } from "./server.ts";
import {
  openNodeState,
  openStateDatabase,
  type StateDatabase,
  type StateKind,
} from "./node_state.ts";
import type { StateStore } from "../store/state_store.ts";
import { SegmentLogStorage } from "../raft/segment_storage.ts";
import { folderLogKind } from "../raft/segment_choice.ts";
import type { ValuesInLogOptions } from "../rsm/stored_logged.ts";
import type { Logger } from "../net/logger.ts";

/**
 * Options of {@linkcode startKvNode}.
 *
 * @example
 * ```ts
 * import type { KvNodeOptions } from "@distkit/distkit/kv";
 *
 * const options: KvNodeOptions = {
 *   id: 0,
 *   peers: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
 *   dataDir: "data/node0",
 * };
 * ```
 */
export interface KvNodeOptions {
  /** This node's position in `peers` (its Raft id is that number as a string). */
  id: number;
  /** Every node's TCP address, `host:port`, in the same order on every node and client. */
  peers: string[];
  /** Folder for this node's data; created if missing. One process per folder. */
  dataDir: string;
  /** HTTP port = TCP port + this. Default 1000; `null`: no HTTP API. */
  httpOffset?: number | null;
  /**
   * With the state in memory: snapshot when the Raft state reaches this
   * many bytes, or `snapshotLogRatio` × the last snapshot's size when that
   * is larger (so a large state is not encoded again every few MiB of
   * writes). With the state on disk: compact the log (nothing is encoded)
   * each time it has grown by this many bytes, keeping a tail of the last
   * 5,000 entries and at most this many bytes of them for lagging
   * followers, so the log stays within about twice this
   * (`rsm/replica_compaction.ts`). Default 4 MiB.
   */
  maxRaftState?: number;
  /**
   * With the state in memory: how much log a snapshot must be worth, as a
   * multiple of the last snapshot's size (see
   * `ReplicaOptions.snapshotLogRatio`); 0: snapshot at `maxRaftState`
   * whatever the state's size. No effect with the state on disk (a
   * compaction writes no state). Default 1.
   */
  snapshotLogRatio?: number;
  /** Raft tick in milliseconds. Default 50. */
  tickMs?: number;
  /** Key and value limits (the same on every node). */
  limits?: Partial<KvLimits>;
  /** The cluster id: peers and clients of another cluster are refused. Default `""`. */
  cluster?: string;
  /**
   * A shared secret every peer and client must prove it knows (HMAC
   * handshake on TCP; `Authorization: Bearer` on HTTP). Default: none.
   */
  secret?: string;
  /**
   * How to start an empty data folder: as a founding member of a new
   * cluster (`"bootstrap"`, the default) or joining an existing one
   * (`"join"`). Either way, a node whose peers know it under another
   * incarnation of its folder (it lost its state) stops (see `identity.ts`).
   * Ignored for a folder that has an identity already.
   */
  mode?: StartMode;
  /**
   * Where the KV state is kept: `"disk"` (in the folder's `raft.kv`, with a
   * bounded cache: memory does not grow with the keys, a restart replays
   * only the log past the stored state) or `"memory"` (rebuilt from the
   * last snapshot and the log at each start). Default: what the folder
   * records, and `"memory"` for a new folder (until a disk node applies
   * puts as fast: README, "The state on disk"). A memory folder asked for
   * disk is migrated; a disk folder asked for memory is refused
   * (`StateKindError`). See `rsm/node_state.ts`.
   */
  state?: StateKind;
  /** Where to report (startup, shutdown, refused peers). Default: nowhere. */
  log?: (line: string) => void;
  /**
   * Where the Raft log is kept: Deno KV (`"kv"`) or segment files
   * (`"segments"`). Default: the kind the data folder holds, `"kv"` for a
   * new one; a folder of the other kind is refused (`StorageKindError`).
   */
  raftLog?: RaftLogKind;
  /**
   * With the state on disk and the segment log: keep a put's large value in
   * its Raft log entry instead of copying it into the state
   * (`ReplicaOptions.valuesInLog`, README "Large values in the log").
   * Default false. A new folder whose `raftLog` and `state` are not given
   * gets the segment log and the state on disk with it.
   *
   * @throws {RangeError} (from `startKvNode`) with another log or the state in memory.
   */
  valuesInLog?: boolean | ValuesInLogOptions;
}

/**
 * A running node, as returned by {@linkcode startKvNode}.
 *
 * @example
 * ```ts
 * import type { KvNode } from "@distkit/distkit/kv";
 *
 * function describe(node: KvNode): string {
 *   return `${node.id} on ${node.address}, HTTP ${node.httpAddress ?? "off"}`;
 * }
 * ```
 */
export interface KvNode {
  /** The Raft id. */
  readonly id: string;
  /** The TCP address peers and clerks use. */
  readonly address: string;
  /** The HTTP API's address, when on. */
  readonly httpAddress?: string;
  /** The KV server. */
  readonly server: KvServer;
  /** Its data folder's incarnation. */
  readonly incarnation: string;
  /**
   * Set when the node stopped because its peers know another incarnation of
   * it (its data folder was lost or replaced); `server.finished` resolves then.
   */
  readonly conflict: IdentityConflictError | undefined;
  /** Stops serving and closes the storage; what was acknowledged is on disk. */
  close(): Promise<void>;
}

/**
 * Tells `identity` of every membership as it is applied, so that a node
 * removed from it is retired: once added back with a new folder it is
 * accepted by its new incarnation and never by its old one
 * (`IdentityBook.applied`).
 */
function retireRemoved(identity: NodeIdentity): RaftObserver {
  const applied = (membership: Membership, index: number, setAt: number | undefined) => {
    const members = [...membership.voters, ...membership.learners];
    identity.applied(members, index, { setAt, bindings: membership.bindings }).catch(() => {});
  };
  return {
    applied(_node, entries) {
      for (const e of entries) if (e.kind === "membership") applied(e.membership, e.index, e.index);
    },
    installed(_node, meta) {
      applied(meta.membership, meta.index, meta.membershipIndex);
    },
  };
}

/** Raft ids by position: "0", "1", ... */
function peerMap(peers: string[]): Record<string, string> {
  for (const p of peers) parseAddress(p);
  const twice = peers.findIndex((p, i) => peers.indexOf(p) !== i);
  if (twice >= 0) {
    throw new RangeError(
      `peers lists ${peers[twice]} twice (nodes ${peers.indexOf(peers[twice])} and ${twice}); ` +
        `give every node its own address`,
    );
  }
  return Object.fromEntries(peers.map((address, i) => [String(i), address]));
}

/**
 * Starts a node: opens its storage, starts Raft and the KV service, and
 * listens on its TCP address (and HTTP, at the port offset).
 *
 * @throws {RangeError} for an id out of range.
 * @throws {AddressError} for an address that is not host:port (`AddressError` of the net module).
 * @throws {Error} when the data folder cannot be opened (for example another process has it).
 *
 * @example
 * ```ts ignore
 * import { startKvNode } from "@distkit/distkit/kv";
 *
 * const node = await startKvNode({ id: 0, peers: ["127.0.0.1:7001"], dataDir: "data0" });
 * await node.close();
 * ```
 */
export async function startKvNode(options: KvNodeOptions): Promise<KvNode> {
  const peers = peerMap(options.peers);
  const id = String(options.id);
  const address = peers[id];
  if (address === undefined) {
    throw new RangeError(
      `id ${options.id} is not a position in peers (0..${options.peers.length - 1})`,
    );
  }
  const clash = httpPortClash(options.peers, options.httpOffset);
  if (clash !== undefined) throw new RangeError(clash);
  // Values in the log need the segment log and the state on disk: asked for without naming
  // them, a new folder gets both, and a folder of the other log kind is refused before anything
  // is written in it (a refusal after the start would leave a folder its next start refuses).
  const fresh = options.valuesInLog ? await isNewFolder(options.dataDir) : false;
  const raftLog = options.raftLog ??
    (options.valuesInLog ? await folderLogKind(options.dataDir) ?? "segments" : undefined);
  if (options.valuesInLog && raftLog === "kv") throw valuesInLogNeedsSegments();
  if (options.valuesInLog && options.state === "memory") {
    throw valuesInLogNeedsDisk(options.dataDir);
  }
  const stateKind = options.state ?? (fresh ? "disk" : undefined);
  const log = options.log ?? (() => {});
  // The listeners' own records (their summaries of refused connections) go to the same log.
  const logger: Logger = {
    log: (level, message) => log(`kv node ${options.id}: ${level} ${message}`),
  };
  const access = { cluster: options.cluster, secret: options.secret };
  // Refusals, overload and leader changes as one line per interval, with counts:
  // a flood must leave a trace in the log without a line per event.
  const seen = { leaderChanges: 0, overloaded: 0 };
  let server: KvServer | undefined;
  let conflict: IdentityConflictError | undefined;
  const summary = new EventSummary({
    log,
    prefix: `kv node ${id}: `,
    collect: () => {
      if (server === undefined) return;
      const { leaderChanges } = server.raft;
      const { overloaded } = server.stats();
      summary.count("new leader seen", leaderChanges - seen.leaderChanges);
      summary.count("write refused as overloaded", overloaded - seen.overloaded);
      Object.assign(seen, { leaderChanges, overloaded });
    },
  });
  // Set once the listener and the transport exist (retirements come with applied entries).
  let retired: (node: string) => void = () => {};
  let host;
  try {
    host = await hostNode({
      address,
      id,
      dataDir: options.dataDir,
      ...access,
      members: Object.keys(peers),
      mode: options.mode,
      raftLog,
      log,
      logger,
      // A retired folder's connections close: its next one is checked again (and refused).
      onRetired: (node) => retired(node),
      onConflict: (err) => {
        conflict = err;
        // Not from inside the handshake that found it: stopping waits for handshakes.
        setTimeout(() => server?.stop().catch(() => {}), 0);
      },
      onRefused: (_peer, reason) => summary.count(`connection refused (${reason})`),
      // A peer whose connections all closed has likely crashed: if it led,
      // the followers elect another at once rather than after a timeout.
      onMemberGone: (node) => server?.raft.peerGone(node),
    });
  } catch (err) {
    summary.close();
    throw err;
  }
  const { rpc, listener, identity } = host;
  let state;
  let db: StateDatabase | undefined;
  try {
    db = await openStateDatabase(options.dataDir, host.storage, {
      expectState: host.expectsState,
    });
    state = await openNodeState(host.storage, db.kv, {
      state: stateKind,
      where: options.dataDir,
      log: (line) => log(`kv node ${id}: ${line}`),
      readKv: db.readKv,
    });
  } catch (err) {
    db?.close();
    summary.close();
    await listener.close();
    await host.storage.close();
    throw err;
  }
  const { storage } = state;
  const stateStore: StateStore | undefined = state.store;
  if (options.valuesInLog && stateStore === undefined) {
    db.close();
    summary.close();
    await listener.close();
    await host.storage.close();
    throw valuesInLogNeedsDisk(options.dataDir);
  }
  const transport = new TcpTransport({ peers, timeoutMs: 1000, ...access, member: identity });
  retired = (node) => {
    const reason = `node ${node}'s data folder was retired (it left the cluster)`;
    listener.closeMember(node, reason).catch(() => {});
    transport.reconnect(node, reason);
  };
  let http: KvHttpServer | undefined;
  // Each node's HTTP address (its TCP address plus the offset), for redirects; null: no HTTP.
  const offset = options.httpOffset === undefined ? 1000 : options.httpOffset;
  const httpOf = (a: string) => {
    const { hostname, port } = parseAddress(a);
    return formatAddr({ hostname, port: port + offset! });
  };
  const httpAddresses = offset === null ? undefined : Object.fromEntries(
    Object.entries(peers).map(([peer, a]) => [peer, httpOf(a)]),
  );
  try {
    const members = Object.keys(peers);
    server = await KvServer.start({
      id,
      // A folder made to join an existing cluster starts with no membership
      // (it is a learner once the leader's log reaches it) and never campaigns.
      peers: identity.mode === "join" ? [] : members,
      // Membership entries as they are applied: a removed node's incarnation is retired.
      observer: retireRemoved(identity),
      // A node that knows of a removal its log lacks does not campaign (see IdentityBook).
      campaignAfter: () => identity.removalFloor(),
      // Votes and acknowledgements count only from the folder a membership binds (raft/core.ts).
      incarnation: identity.incarnation,
      joined: identity.waitsForBinding,
      transport,
      server: rpc,
      storage,
      tickMs: options.tickMs,
      maxRaftState: options.maxRaftState ?? 4 * 1024 * 1024,
      snapshotLogRatio: options.snapshotLogRatio ?? 1,
      limits: options.limits,
      ...(stateStore ? { stateStore } : {}),
      ...(options.valuesInLog ? { valuesInLog: options.valuesInLog } : {}),
      // A follower names the leader and the members by their TCP addresses.
      addressOf: (peer) => peers[peer],
      // Raft's and the replica's own records (a node that stops, an apply that throws).
      logger,
    });
    // A peer may have named another incarnation of this node while it was
    // starting (a peer that was redialling it finds the port at once): the
    // server did not exist yet to be stopped.
    if (conflict !== undefined) setTimeout(() => server?.stop().catch(() => {}), 0);
    // `distkit kv member` and `/members`: runtime membership changes, through the leader.
    serveMembers(rpc, server.raft, {
      checkNode: (node) =>
        members.includes(node) ? undefined : `node ${JSON.stringify(node)} is not a position in ` +
          `--peers (0..${members.length - 1}); a node is added under its position in the list ` +
          `every node was started with`,
    });
    if (httpAddresses !== undefined) {
      http = serveKvHttp(server, rpc, {
        ...parseAddress(httpAddresses[id]),
        addresses: httpAddresses,
        limits: options.limits,
        ...access,
        logger,
        tcpStats: () => listener.stats(),
      });
    }
  } catch (err) {
    summary.close();
    await server?.stop();
    await listener.close();
    await transport.close();
    await stateStore?.close();
    db.close();
    await storage.close();
    throw err;
  }
  // A peer that proved who it is and listens elsewhere than our --peers says moved (README:
  // "Replacing a dead node"): it is dialled there from now on, and redirects name it there.
  const moved = (node: string, to: string) => {
    if (node === id || peers[node] === undefined || peers[node] === to) return;
    try {
      parseAddress(to);
    } catch {
      return; // not an address: nothing to follow
    }
    const from = peers[node];
    peers[node] = to;
    transport.setAddress(node, to);
    if (httpAddresses !== undefined) httpAddresses[node] = httpOf(to);
    log(
      `kv node ${id}: node ${node} listens at ${to}, not ${from}: it is dialled there from now ` +
        `on (give every node the new address in --peers at its next start)`,
    );
  };
  const stopSharing = shareIdentities(identity, rpc, {
    transport,
    peers: Object.keys(peers).filter((p) => p !== id),
    log,
    address: peers[id],
    onPeerAddress: moved,
  });
  log(
    `kv node ${id} (data folder incarnation ${identity.incarnation}, state on ${state.kind}, ` +
      `Raft log in ${host.storage instanceof SegmentLogStorage ? "segments" : "Deno KV"}) ` +
      `serving on ${listener.address}${http ? `, HTTP on ${http.address}` : ""}`,
  );
  const kv = server;
  const tcp = listener;
  const store = storage;
  // One full collection once the node has had nothing to do for 10 s (net/idle_gc.ts): after a
  // load V8 kept 100–300 MiB of garbage resident. Activity: entries appended, requests answered.
  const collector = startIdleCollector({
    activity: () => {
      const s = kv.stats();
      return kv.raft.status().lastIndex + s.reads + s.writes + s.notLeader + s.overloaded;
    },
    clock: realClock,
    log: (line) => log(`kv node ${id}: ${line}`),
  });
  let closing: Promise<void> | undefined;
  return {
    id,
    address: tcp.address,
    httpAddress: http?.address,
    server: kv,
    incarnation: identity.incarnation,
    get conflict() {
      return conflict;
    },
    close() {
      closing ??= (async () => {
        collector.stop();
        stopSharing();
        await http?.close();
        await kv.stop();
        await tcp.close();
        await transport.close();
        // The state store shares the Raft storage's database: closed first.
        await stateStore?.close();
        db.close();
        await store.close();
        summary.close();
        log(`kv node ${id} stopped`);
      })();
      return closing;
    },
  };
}

/**
 * Options of {@linkcode connectKv}: the clerk's, plus the cluster's id and secret.
 *
 * @example
 * ```ts
 * import type { ConnectKvOptions } from "@distkit/distkit/kv";
 *
 * const options: ConnectKvOptions = { cluster: "prod", secret: Deno.env.get("DISTKIT_SECRET") };
 * ```
 */
export interface ConnectKvOptions extends KvClerkOptions {
  /** The cluster id the nodes serve. Default `""`. */
  cluster?: string;
  /** The nodes' shared secret, if they have one. */
  secret?: string;
}

/**
 * A clerk connected over TCP to the cluster whose nodes are at `peers`
 * (any of its nodes, in any order: one reachable node is enough, since a
 * node that does not lead names the leader and the other members), and the
 * way to close its connections. Each call fails with a `RequestTimeoutError`
 * after `deadlineMs` (default 30 s; `Infinity` to wait for ever).
 *
 * @example
 * ```ts ignore
 * import { connectKv } from "@distkit/distkit/kv";
 *
 * const { clerk, close } = connectKv(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
 * await clerk.put("x", "1");
 * await close();
 * ```
 */
export function connectKv(
  peers: string[],
  options: ConnectKvOptions = {},
): { clerk: KvClerk; close: () => Promise<void> } {
  for (const p of peers) parseAddress(p);
  // Servers are named by address: the nodes' "not the leader" answers name the
  // leader and the other members by address, so one reachable node is enough.
  const transport = new AddressTransport({
    timeoutMs: options.attemptTimeoutMs ?? 2500,
    // A call to a node that is down fails at once, not at that node's next
    // reconnection attempt (up to 2 s later), so the clerk tries another.
    backoff: { failFast: true },
    cluster: options.cluster,
    secret: options.secret,
  });
  const clerk = new KvClerk(transport, peers, options);
  return { clerk, close: () => transport.close() };
}

/** Whether `dataDir` holds no node yet (no `node.json`: the folder is made or taken as new). */
async function isNewFolder(dataDir: string): Promise<boolean> {
  try {
    await Deno.lstat(`${dataDir}/node.json`);
    return false;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return true;
    throw err;
  }
}

function valuesInLogNeedsDisk(dataDir: string): RangeError {
  return new RangeError(
    `valuesInLog (--values-in-log) keeps a stored state's values in the log, but ` +
      `${dataDir} keeps its state in memory: start it with --state disk`,
  );
}

function valuesInLogNeedsSegments(): RangeError {
  return new RangeError(
    "valuesInLog (--values-in-log) keeps values in the segment log's entries: it needs " +
      'raftLog: "segments" (--log segments)',
  );
}

/**
 * Why the nodes' HTTP ports (each TCP port + `offset`) cannot all be had:
 * one is another node's TCP port (the node started second would fail to
 * listen, as if it ran twice), or past 65535. Undefined when they can.
 */
function httpPortClash(peers: string[], offset: number | null | undefined): string | undefined {
  const by = offset === undefined ? 1000 : offset;
  if (by === null) return undefined;
  const tcp = new Map(peers.map((a, i) => [a, i]));
  for (const [i, a] of peers.entries()) {
    const { hostname, port } = parseAddress(a);
    if (port + by > 65535 || port + by < 1) {
      return `node ${i}'s HTTP port would be ${port} + ${by} (--http-offset), not a port; ` +
        `choose another --http-offset, or --no-http`;
    }
    const other = tcp.get(formatAddr({ hostname, port: port + by }));
    if (other !== undefined) {
      return `node ${i}'s HTTP address would be ${a} + ${by} (--http-offset) = node ${other}'s ` +
        `TCP address ${peers[other]}; choose another --http-offset (or ports) so that no ` +
        `node's HTTP port is another's TCP port`;
    }
  }
  return undefined;
}
