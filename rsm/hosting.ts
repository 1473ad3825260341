/**
 * What every node process needs before its service starts: its TCP port
 * (bound first, so a second process of the same node fails before it
 * touches the data), its data folder's identity (`node.json`: the node, the
 * cluster and the folder's incarnation, see `identity.ts`), and its Raft
 * storage in a Deno KV file there (with its high-water mark). The KV nodes and the shard nodes are
 * hosted this way.
 *
 * @module
 */
import { parseAddress } from "../net/address.ts";
import type { Logger } from "../net/logger.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { type MemberOptions, serveTcp, type TcpServer } from "../net/tcp.ts";
import { openRaftStorage, type RaftLogKind } from "../raft/segment_choice.ts";
import type { RaftStorage } from "../raft/storage.ts";
import { NodeIdentity } from "./identity.ts";
import type { IdentityConflictError, StartMode } from "./identity_book.ts";

/**
 * A node's port, RPC server and storage, from {@linkcode hostNode}.
 *
 * @example
 * ```ts
 * import type { NodeHost } from "@distkit/distkit/rsm";
 *
 * const where = (host: NodeHost) => host.listener.address;
 * ```
 */
export interface NodeHost {
  /** The RPC server the node's services register on. */
  rpc: RpcServer;
  /** The TCP listener serving `rpc`. */
  listener: TcpServer;
  /** The node's Raft storage (the kind `raftLog` names, or the kind its folder holds). */
  storage: RaftStorage;
  /** The data folder's identity, which the handshake checks peers against. */
  identity: NodeIdentity;
  /**
   * The node has met its peers (it may have voted and acknowledged): every
   * store of its folder must be there, and a missing one is a loss.
   */
  expectsState: boolean;
}

/**
 * Options of {@linkcode hostNode}.
 *
 * @example
 * ```ts
 * import type { HostNodeOptions } from "@distkit/distkit/rsm";
 *
 * const options: HostNodeOptions = { address: "127.0.0.1:7001", id: "0", dataDir: "data/0" };
 * ```
 */
export interface HostNodeOptions {
  /** The TCP address to listen on, host:port. */
  address: string;
  /** The node's id, recorded in the data folder. */
  id: string;
  /** The data folder; created if missing. */
  dataDir: string;
  /** The cluster id peers and clients must present. */
  cluster?: string;
  /** The shared secret they must prove. */
  secret?: string;
  /**
   * Every member's node id. When given, the server checks in the handshake
   * that a peer node is the incarnation this node knows (see `identity.ts`);
   * pass the same identity to the peers' transport as its `member` option.
   */
  members?: string[];
  /** How to start an empty folder. Default `"bootstrap"`. */
  mode?: StartMode;
  /**
   * Where the Raft log is kept: `"kv"` (Deno KV, `raft.kv`) or `"segments"`
   * (append-only segment files, `raft.log/`). A folder holding the other
   * kind is refused. Default: the kind the folder holds, `"kv"` for a new
   * one.
   */
  raftLog?: RaftLogKind;
  /** Where refusals are reported. */
  log?: (line: string) => void;
  /** Called once when this node learns its peers know another incarnation of it. */
  onConflict?: (error: IdentityConflictError) => void;
  /**
   * Called when a peer's incarnation is retired (see `NodeIdentityOptions.onRetired`):
   * close the connections it made. Default: none.
   */
  onRetired?: (node: string) => void;
  /** Called for each connection refused in the handshake (see `serveTcp`). */
  onRefused?: (peer: string, reason: string) => void;
  /** Called when the last connection from a member node closes (see `serveTcp`). */
  onMemberGone?: (node: string) => void;
  /**
   * Where the TCP listener's summary line goes: once per interval, the
   * connections it refused or cut off by reason (failed handshakes, guessing
   * backoff, connection caps, frame deadline). Default: none.
   */
  logger?: Logger;
}

/**
 * Binds the node's port, reads (or creates) its data folder's identity and
 * opens its storage (`raft.kv` in the folder); on failure, releases what it
 * took.
 *
 * @throws {AddressError} when `address` is not host:port (port 0 picks a free port).
 * @throws {Error} when the port is taken (is the node already running?),
 * or the folder belongs to another node or cannot be opened.
 *
 * What a node process of your own service needs before its `Replica`
 * starts, in the order that keeps a mistake harmless: it binds the port
 * first (a second process of the same node fails here, before it touches
 * the data), then claims the data folder (`node.json` records the node,
 * the cluster and the folder's incarnation; a folder of another node is
 * refused), then opens the Raft storage in it (`raft.kv`). Give the
 * replica `host.rpc` as its `server` and `host.storage` as its `storage`,
 * and a `TcpTransport` to its peers (with `member: host.identity` when
 * `members` is given). `startKvNode` is hosted this way; a status method
 * for your tooling is `Status: () => replica.status()` among the service's
 * methods.
 *
 * @throws {Error} when the port is taken (is the node already running?),
 * or the folder belongs to another node or cannot be opened.
 *
 * @example A one-node service process
 * ```ts
 * import { hostNode, Replica, type ReplicaMachine } from "@distkit/distkit/rsm";
 * import { TcpTransport } from "@distkit/distkit/net";
 *
 * const counter: ReplicaMachine<number> & { n: number } = {
 *   n: 0,
 *   apply(entry: unknown): number {
 *     return this.n += entry as number;
 *   },
 *   snapshot: () => new Uint8Array(),
 *   restore() {},
 * };
 * const dataDir = await Deno.makeTempDir();
 * const host = await hostNode({ address: "127.0.0.1:0", id: "0", dataDir });
 * const transport = new TcpTransport({ peers: {} }); // the other nodes' addresses
 * const replica = await Replica.start(counter, {
 *   id: "0",
 *   peers: ["0"],
 *   transport,
 *   server: host.rpc,
 *   storage: host.storage,
 *   service: {
 *     name: "Counter",
 *     methods: (replica) => ({
 *       Add: (request: unknown) => replica.write(request),
 *       Status: () => replica.status(),
 *     }),
 *   },
 * });
 * // ... serve until told to stop, then release in the reverse order:
 * await replica.stop();
 * await transport.close();
 * await host.listener.close();
 * await host.storage.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function hostNode(options: HostNodeOptions): Promise<NodeHost> {
  const rpc = new RpcServer();
  const { address, id } = options;
  let listener: TcpServer;
  // The port is bound before the folder is read: a node's handshake waits until it is.
  let identity: NodeIdentity | undefined;
  const ready = Promise.withResolvers<NodeIdentity>();
  ready.promise.catch(() => {});
  const member: MemberOptions = {
    get node() {
      return id;
    },
    get incarnation() {
      return identity?.incarnation ?? "";
    },
    knownIncarnation: (node) => identity?.knownIncarnation(node),
    check: async (peer, expected) => (await ready.promise).check(peer, expected),
  };
  // Parsed before binding, so a malformed address is an AddressError and not
  // "cannot listen". Port 0 (any free port) is allowed: this is where the node listens.
  const where = parseAddress(address, { listen: true });
  try {
    listener = serveTcp(rpc, {
      ...where,
      cluster: options.cluster,
      secret: options.secret,
      member: options.members ? member : undefined,
      onRefused: options.onRefused,
      onMemberGone: options.onMemberGone,
      logger: options.logger,
    });
  } catch (err) {
    // serveTcp's own message names the address already.
    const problem = (err as Error).message;
    throw new Error(
      `${
        problem.startsWith("cannot listen") ? problem : `cannot listen on ${address}: ${problem}`
      }; is node ${id} already running?`,
      { cause: err },
    );
  }
  try {
    identity = await NodeIdentity.open(options.dataDir, {
      id,
      members: options.members ?? [],
      cluster: options.cluster,
      mode: options.mode,
      log: options.log,
      onConflict: options.onConflict,
      onRetired: options.onRetired,
    });
    // A folder whose node has met its peers may have voted: its store must be there.
    const met = !identity.created && Object.keys(identity.describe().members).length > 0;
    const storage = await openRaftStorage(options.dataDir, {
      kind: options.raftLog,
      expectState: met,
    });
    ready.resolve(identity);
    return { rpc, listener, storage, identity, expectsState: met };
  } catch (err) {
    ready.reject(err);
    await listener.close();
    throw err;
  }
}
