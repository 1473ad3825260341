/**
 * Starting Raft nodes on the simulated network, for the tour, the benchmark
 * and tests: a node's own RPC server, its transport, memory storage.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import { RpcServer } from "../net/rpc_server.ts";
import type { SimNetwork } from "../net/sim/network.ts";
import { RaftNode } from "../raft/node.ts";
import { MemoryStorage } from "../raft/storage.ts";
import type { NodeId } from "../raft/types.ts";

/** Starts a cluster of `ids` on `net`, each member with memory storage and its own random stream. */
export async function startSimCluster(
  net: SimNetwork,
  ids: NodeId[],
  options: { clock?: Clock; random: Random },
): Promise<Map<NodeId, RaftNode>> {
  const nodes = new Map<NodeId, RaftNode>();
  for (const id of ids) {
    const server = new RpcServer();
    net.addServer(id, server);
    nodes.set(
      id,
      await RaftNode.start({
        id,
        peers: ids,
        server,
        transport: net.transportFor(id),
        storage: new MemoryStorage(),
        clock: options.clock,
        random: options.random.fork(),
      }),
    );
  }
  return nodes;
}
