/**
 * `distkit kv status` (also `kv endpoint status`) and `distkit kv health`
 * (also `kv endpoint health`): each node's view of the cluster, asked over
 * its TCP port (`KV.Status`), for every node given and every member they
 * name, as a table or JSON.
 *
 * @module
 */
import {
  ACCESS_HELP,
  type CliCommand,
  durationMs,
  endpointsHelp,
  endpointsOf,
  EXIT,
  EXIT_HELP,
  formatMs,
  OUTPUT_FLAGS,
  OUTPUT_HELP,
  outputFormat,
  parseCommandArgs,
  secretFrom,
  usageError,
} from "./util.ts";
import { AddressTransport } from "../net/tcp.ts";
import type { KvNodeStatus } from "../kv/server.ts";

/** One node's row: its status, or why it gave none. */
interface Row {
  endpoint: string;
  status?: KvNodeStatus;
  error?: string;
}

/**
 * Asks every address for its status, and every member an answer names that
 * was not asked yet, so one address shows the whole cluster.
 */
async function gather(
  addresses: string[],
  options: { timeoutMs: number; cluster: string; secret: string | undefined },
): Promise<Row[]> {
  const transport = new AddressTransport({
    timeoutMs: options.timeoutMs,
    backoff: { failFast: true },
    cluster: options.cluster,
    secret: options.secret,
  });
  const rows = new Map<string, Row>();
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    let wave = [...new Set(addresses)];
    while (wave.length > 0) {
      const answers = await Promise.all(wave.map(async (endpoint): Promise<Row> => {
        try {
          const status = await transport.connect(endpoint).call<KvNodeStatus>("KV.Status", {}, {
            timeoutMs: options.timeoutMs,
            signal,
          });
          return { endpoint, status };
        } catch (err) {
          const message = (err as Error).message;
          return {
            endpoint,
            error: /connection refused/i.test(message)
              ? "connection refused"
              : signal.aborted
              ? `no answer within ${formatMs(options.timeoutMs)}`
              : message,
          };
        }
      }));
      for (const row of answers) rows.set(row.endpoint, row);
      wave = [...new Set(answers.flatMap((r) => r.status?.members ?? []))]
        .filter((m) => !rows.has(m));
    }
  } finally {
    await transport.close();
  }
  return [...rows.values()];
}

/** Bytes as people read them: 512 B, 1.2 KiB, 3.4 MiB. */
function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Rows of cells as aligned columns. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd())
    .join("\n");
}

/** Whether a node answered and knows a leader. */
function healthy(row: Row): boolean {
  return row.status !== undefined && row.status.leader !== null;
}

/** The options and arguments common to status and health; undefined after a usage error. */
async function rowsFor(
  name: string,
  command: CliCommand,
  args: string[],
): Promise<{ rows: Row[]; format: "json" | "text" } | number> {
  const parsed = parseCommandArgs(`kv ${name}`, command, args, {
    endpoints: { type: "string" },
    timeout: { type: "string" },
    ...OUTPUT_FLAGS,
    "cluster-id": { type: "string" },
    "secret-file": { type: "string" },
  });
  if (!parsed) return EXIT.usage;
  let options;
  let addresses: string[];
  let format: "json" | "text";
  try {
    if (parsed.positionals.length > 0) {
      return usageError(`kv ${name}`, command, `unexpected ${parsed.positionals.join(" ")}`);
    }
    addresses = endpointsOf(parsed.values);
    format = outputFormat(parsed.values);
    const id = parsed.values["cluster-id"];
    options = {
      timeoutMs: durationMs(parsed.values.timeout, "--timeout") ?? 5000,
      cluster: typeof id === "string" ? id : "",
      secret: secretFrom(parsed.values["secret-file"]),
    };
  } catch (err) {
    return usageError(`kv ${name}`, command, (err as Error).message);
  }
  return { rows: await gather(addresses, options), format };
}

/** The usage text of status or health. */
function usageOf(name: string, what: string): string {
  return `usage: distkit kv ${name} --endpoints <host:port,...> [--timeout 5s] [-o json]

${what}

options:
${endpointsHelp("nodes to ask (and every member they name)", { defaultTimeout: "5s" })}
${OUTPUT_HELP}
${ACCESS_HELP}

${EXIT_HELP}`;
}

/** `distkit kv status`. */
export const statusCommand: CliCommand = {
  summary: "each node's id, address, role, term, leader, indexes, Raft state size, version",
  usage: usageOf(
    "status",
    `Asks each node (and each member they name) for its status: id, address, role, term,
the leader it knows, commit and applied index, Raft state size, keys, version. Exit 0
when every node answered, 3 when one did not (its row says why).`,
  ),
  async run(args) {
    const result = await rowsFor("status", this, args);
    if (typeof result === "number") return result;
    const { rows, format } = result;
    if (format === "json") {
      console.log(
        JSON.stringify(rows.map((r) => r.status ?? { address: r.endpoint, error: r.error })),
      );
    } else {
      const header = [
        "ENDPOINT",
        "ID",
        "ROLE",
        "TERM",
        "LEADER",
        "COMMIT",
        "APPLIED",
        "RAFT STATE",
        "KEYS",
        "VERSION",
      ];
      const failed = rows.some((r) => r.status === undefined);
      if (failed) header.push("ERROR");
      console.log(table([
        header,
        ...rows.map((r) =>
          r.status === undefined ? [r.endpoint, ...header.slice(1, -1).map(() => "-"), r.error!] : [
            r.endpoint,
            r.status.id,
            r.status.role,
            String(r.status.term),
            r.status.leader ?? "(none)",
            String(r.status.commitIndex),
            String(r.status.appliedIndex),
            size(r.status.raftStateSize),
            String(r.status.keys),
            r.status.version,
          ]
        ),
      ]));
    }
    return rows.every((r) => r.status !== undefined) ? EXIT.ok : EXIT.noAnswer;
  },
};

/** `distkit kv health`. */
export const healthCommand: CliCommand = {
  summary: "whether each node answers and knows a leader (exit 0 all healthy, 1 not)",
  usage: usageOf(
    "health",
    `A node is healthy when it answers and knows a leader. Exit 0 when every node is
healthy, 1 when one is not, 3 when none answered.`,
  ),
  async run(args) {
    const result = await rowsFor("health", this, args);
    if (typeof result === "number") return result;
    const { rows, format } = result;
    if (format === "json") {
      console.log(JSON.stringify(rows.map((r) => ({
        endpoint: r.endpoint,
        health: healthy(r),
        ...(r.status ? { leader: r.status.leader, term: r.status.term } : { error: r.error }),
      }))));
    } else {
      for (const r of rows) {
        console.log(
          healthy(r)
            ? `${r.endpoint} is healthy: leader ${r.status!.leader}, term ${r.status!.term}`
            : `${r.endpoint} is unhealthy: ${r.error ?? "it knows no leader"}`,
        );
      }
    }
    if (rows.every(healthy)) return EXIT.ok;
    return rows.some((r) => r.status !== undefined) ? EXIT.no : EXIT.noAnswer;
  },
};

/** `distkit kv endpoint status|health`: etcdctl's spelling of the two. */
export const endpointCommand: CliCommand = {
  summary: "`endpoint status` and `endpoint health`: etcdctl's names of kv status and health",
  usage:
    `usage: distkit kv endpoint status|health --endpoints <host:port,...> [--timeout 5s] [-o json]

The same as \`distkit kv status\` and \`distkit kv health\`.`,
  help(args) {
    const sub = args[0] === "status" ? statusCommand : args[0] === "health" ? healthCommand : this;
    return sub.usage;
  },
  run(args) {
    const [sub, ...rest] = args;
    if (sub === "status") return statusCommand.run(rest);
    if (sub === "health") return healthCommand.run(rest);
    return Promise.resolve(
      usageError(
        "kv endpoint",
        this,
        sub === undefined ? "expected status or health" : `unknown ${sub}`,
      ),
    );
  },
};
