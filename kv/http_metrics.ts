/**
 * The KV node's `/metrics` page: its Raft status, replica counters, HTTP
 * answers and the connection counters of its listeners, as Prometheus text.
 *
 * @module
 */
import type { HttpServerStats } from "../net/http_server.ts";
import type { TcpServerStats } from "../net/tcp_limits.ts";
import type { KvServer } from "./server.ts";

/** The node's status and counters as Prometheus metrics. */
export function metrics(
  kv: KvServer,
  requests: Map<string, number>,
  overloads: number,
  listeners: { http?: HttpServerStats; tcp?: TcpServerStats },
): string {
  const raft = kv.raft.status();
  const stats = kv.stats();
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, value: number, labels = "") => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
  };
  metric("distkit_raft_term", "gauge", "Current Raft term.", raft.term);
  metric("distkit_raft_is_leader", "gauge", "1 when this node leads.", +(raft.role === "leader"));
  metric("distkit_raft_commit_index", "gauge", "Highest committed log index.", raft.commitIndex);
  metric("distkit_raft_last_index", "gauge", "Last log index.", raft.lastIndex);
  metric("distkit_raft_snapshot_index", "gauge", "Index of the last snapshot.", raft.snapshotIndex);
  metric("distkit_kv_applied_index", "gauge", "Highest index applied.", stats.appliedIndex);
  metric("distkit_kv_keys", "gauge", "Keys in the store.", stats.keys);
  metric("distkit_kv_pending_requests", "gauge", "Requests waiting.", stats.pendingRequests);
  metric("distkit_kv_reads_total", "counter", "Reads answered.", stats.reads);
  metric("distkit_kv_writes_total", "counter", "Writes answered.", stats.writes);
  metric("distkit_kv_not_leader_total", "counter", "Requests sent elsewhere.", stats.notLeader);
  metric("distkit_kv_retries_total", "counter", "Requests not finished in time.", stats.retries);
  metric("distkit_kv_bad_requests_total", "counter", "Requests refused.", stats.badRequests);
  metric("distkit_kv_snapshots_total", "counter", "Snapshots taken.", stats.snapshots);
  metric(
    "distkit_kv_snapshots_installed_total",
    "counter",
    "Snapshots installed from the leader.",
    stats.installs,
  );
  metric(
    "distkit_kv_overloaded_total",
    "counter",
    "Writes the replica refused, not proposed, with too many in progress.",
    stats.overloaded,
  );
  metric(
    "distkit_http_overloaded_total",
    "counter",
    "HTTP requests refused as overloaded (503, not applied).",
    overloads,
  );
  metric(
    "distkit_raft_leader_changes_total",
    "counter",
    "Times this node saw a new leader since it started.",
    kv.raft.leaderChanges,
  );
  lines.push(
    "# HELP distkit_http_requests_total HTTP requests by status code.",
    "# TYPE distkit_http_requests_total counter",
  );
  for (const [code, n] of requests) lines.push(`distkit_http_requests_total{code="${code}"} ${n}`);
  lines.push(...listenerMetrics(listeners));
  // Where the process's memory is: the V8 heap, or outside it (ArrayBuffers, Deno KV's cache).
  const memory = Deno.memoryUsage();
  lines.push(
    "# HELP distkit_process_memory_bytes Process memory: resident, V8 heap total and used, external.",
    "# TYPE distkit_process_memory_bytes gauge",
    `distkit_process_memory_bytes{kind="rss"} ${memory.rss}`,
    `distkit_process_memory_bytes{kind="heap_total"} ${memory.heapTotal}`,
    `distkit_process_memory_bytes{kind="heap_used"} ${memory.heapUsed}`,
    `distkit_process_memory_bytes{kind="external"} ${memory.external}`,
  );
  return lines.join("\n") + "\n";
}

/** The connection counters of the HTTP and TCP listeners, by reason. */
function listenerMetrics({ http, tcp }: { http?: HttpServerStats; tcp?: TcpServerStats }) {
  const lines: string[] = [];
  const family = (
    name: string,
    type: string,
    help: string,
    values: [labels: string, value: number][],
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of values) lines.push(`${name}${labels} ${value}`);
  };
  if (http) {
    family("distkit_http_connections", "gauge", "HTTP connections open.", [["", http.connections]]);
    family(
      "distkit_http_connections_closed_total",
      "counter",
      "HTTP connections refused or cut off, by reason.",
      [
        ['{reason="max_connections"}', http.overMaxConnections],
        ['{reason="max_per_address"}', http.overMaxPerAddress],
        ['{reason="header_timeout"}', http.headerTimeouts],
        ['{reason="body_timeout"}', http.bodyTimeouts],
        ['{reason="write_timeout"}', http.writeTimeouts],
        ['{reason="idle_timeout"}', http.idleTimeouts],
        ['{reason="bad_request"}', http.badRequests],
        ['{reason="unread_body"}', http.unreadBodies],
      ],
    );
    family(
      "distkit_http_bodies_drained_total",
      "counter",
      "Small request bodies a refusal left unread, read and dropped to keep the connection.",
      [["", http.bodiesDrained]],
    );
  }
  if (tcp) {
    family("distkit_tcp_connections", "gauge", "TCP connections open.", [["", tcp.connections]]);
    family(
      "distkit_tcp_connections_closed_total",
      "counter",
      "TCP connections refused or cut off, by reason.",
      [
        ['{reason="handshake_refused"}', tcp.handshakesRefused],
        ['{reason="handshake_failed"}', tcp.handshakesFailed],
        ['{reason="throttled"}', tcp.throttled],
        ['{reason="max_connections"}', tcp.overMaxConnections],
        ['{reason="max_per_address"}', tcp.overMaxPerAddress],
        ['{reason="frame_timeout"}', tcp.frameTimeouts],
        ['{reason="frame_budget"}', tcp.frameBudgetRefusals],
      ],
    );
    family("distkit_tcp_large_frame_bytes", "gauge", "Bytes held by large frames arriving.", [
      ["", tcp.largeFrameBytes],
    ]);
  }
  return lines;
}
