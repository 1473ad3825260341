/**
 * Three KV servers in a simulation, each with its own in-memory storage,
 * and a wait for the one that leads: the set-up of the small scenario tests
 * that drive a cluster by hand (partitions at chosen moments).
 */
import { KvServer } from "../kv/mod.ts";
import { delay, RpcServer, type Simulation } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";

/** The servers' ids. */
export const IDS = ["a", "b", "c"];

/** Starts server `id` of {@linkcode IDS} on the simulated network. */
export function startNode(sim: Simulation, id: string): Promise<KvServer> {
  const rpc = new RpcServer();
  sim.net.addServer(id, rpc);
  return KvServer.start({
    id,
    peers: IDS,
    transport: sim.net.transportFor(id),
    server: rpc,
    storage: new MemoryStorage(),
    clock: sim.clock,
    random: sim.random.fork(),
  });
}

/** The server among `nodes` that leads, waiting up to 20 s of virtual time for one. */
export async function leaderOf(sim: Simulation, nodes: KvServer[]): Promise<KvServer> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const leader = nodes.find((n) => n.raft.status().role === "leader");
    if (leader) return leader;
    await delay(50, { clock: sim.clock });
  }
  throw new Error("no leader within 20 s of virtual time");
}
