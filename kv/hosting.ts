/**
 * What every node process needs before its service starts: its TCP port
 * (bound first, so a second process of the same node fails before it
 * touches the data), its data folder (claimed for one node), and its Raft
 * storage in a Deno KV file there. The KV nodes and the shard nodes are
 * hosted this way.
 *
 * @module
 */
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, type TcpServer } from "../net/tcp.ts";
import { DenoKvStorage } from "../raft/kv_storage.ts";

/**
 * Splits `host:port`.
 *
 * @throws {RangeError} when `address` is not host:port.
 *
 * @example
 * ```ts
 * import { parseAddress } from "@distkit/distkit/kv";
 *
 * parseAddress("127.0.0.1:7001"); // { hostname: "127.0.0.1", port: 7001 }
 * ```
 */
export function parseAddress(address: string): { hostname: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`"${address}" is not host:port`);
  }
  return { hostname: address.slice(0, colon), port };
}

/**
 * Marks the data folder as node `id`'s, or checks that it is: a folder
 * holds one node's state, and another node's process must not open it.
 */
async function claimDataDir(dir: string, id: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}/node.json`;
  let owner: unknown;
  try {
    owner = JSON.parse(await Deno.readTextFile(file)).id;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    await Deno.writeTextFile(file, JSON.stringify({ id }) + "\n");
    return;
  }
  if (owner !== id) {
    throw new Error(
      `the data folder ${dir} belongs to node ${JSON.stringify(owner)}, not ${id}; ` +
        `give every node its own folder`,
    );
  }
}

/**
 * A node's port, RPC server and storage, from {@linkcode hostNode}.
 *
 * @example
 * ```ts
 * import type { NodeHost } from "@distkit/distkit/kv";
 *
 * const where = (host: NodeHost) => host.listener.address;
 * ```
 */
export interface NodeHost {
  /** The RPC server the node's services register on. */
  rpc: RpcServer;
  /** The TCP listener serving `rpc`. */
  listener: TcpServer;
  /** The node's Raft storage. */
  storage: DenoKvStorage;
}

/**
 * Options of {@linkcode hostNode}.
 *
 * @example
 * ```ts
 * import type { HostNodeOptions } from "@distkit/distkit/kv";
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
  /** Called for each connection refused in the handshake (see `serveTcp`). */
  onRefused?: (peer: string, reason: string) => void;
}

/**
 * Binds the node's port, claims its data folder and opens its storage
 * (`raft.kv` in the folder); on failure, releases what it took.
 *
 * @throws {Error} when the port is taken (is the node already running?),
 * or the folder belongs to another node or cannot be opened.
 *
 * @example
 * ```ts ignore
 * import { hostNode } from "@distkit/distkit/kv";
 *
 * const host = await hostNode({ address: "127.0.0.1:7001", id: "0", dataDir: "data/0" });
 * await host.listener.close();
 * await host.storage.close();
 * ```
 */
export async function hostNode(options: HostNodeOptions): Promise<NodeHost> {
  const rpc = new RpcServer();
  const { address, id } = options;
  let listener: TcpServer;
  try {
    listener = serveTcp(rpc, {
      ...parseAddress(address),
      cluster: options.cluster,
      secret: options.secret,
      onRefused: options.onRefused,
    });
  } catch (err) {
    throw new Error(
      `cannot listen on ${address}: ${(err as Error).message}; is node ${id} already running?`,
      { cause: err },
    );
  }
  try {
    await claimDataDir(options.dataDir, id);
    return { rpc, listener, storage: await DenoKvStorage.open(`${options.dataDir}/raft.kv`) };
  } catch (err) {
    await listener.close();
    throw err;
  }
}
