/**
 * One line for each top-level command and module of `distkit`: the help
 * lists them without loading any command's code, and each command shows the
 * same line.
 *
 * @module
 */

/** What each top-level command and module is for. */
export const SUMMARIES = {
  demo: "a 3-node KV cluster as processes; the leader is killed and restarted under load",
  tour:
    "a tour in one process: TCP calls, typed failures, simulation, Raft under a partition, the checker, KV",
  check: "check history files for linearizability (JSON lines, EDN, Jepsen log)",
  net: "RPC over TCP and the simulated network",
  raft: "Raft consensus: run a member of a replicated log over TCP",
  kv: "the replicated key/value service: run nodes, a local cluster, and client operations",
  shard: "the shard controller and the sharded key/value service",
  mr: "MapReduce: a coordinator, workers, and the sequential runner",
  pb: "primary/backup replication: the view service, a key/value service, a lock service",
} as const;
