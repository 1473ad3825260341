/**
 * `distkit kv` commands: run a node (`serve`), a local cluster of node
 * processes (`cluster`), and the client operations (`get`, `put`, `append`,
 * `del`, `cas`).
 *
 * @module
 */
import {
  ACCESS_HELP,
  type CliCommand,
  ClientDeadline,
  count,
  EXIT,
  EXIT_HELP,
  NothingListeningError,
  parseCommandArgs,
  secretFrom,
  usageError as reportUsage,
  waitForSignal,
} from "../net/cli_util.ts";
import { KvOutcomeUnknownError, KvRequestError, mayHaveApplied } from "./errors.ts";
import { LocalCluster } from "./local_cluster.ts";
import { member } from "./member_command.ts";
import { connectKv, startKvNode } from "./node.ts";
import type { Clerk } from "./clerk.ts";

type KvCommand = CliCommand;

/** {@linkcode parseCommandArgs} for `distkit kv <name>`. */
function parse<T extends Record<string, { type: "string" | "boolean"; multiple?: boolean }>>(
  name: string,
  command: KvCommand,
  args: string[],
  options: T,
) {
  return parseCommandArgs(`kv ${name}`, command, args, options);
}

function usageError(name: string, command: KvCommand, problem: string): number {
  return reportUsage(`kv ${name}`, command, problem);
}

const serve: KvCommand = {
  summary: "run one node: Raft over TCP, Deno KV storage in a folder, the HTTP API",
  usage: `usage: distkit kv serve --id <n> --peers <host:port,...> --data <dir> [--join]
                       [--http-offset 1000 | --no-http] [--max-raft-state <bytes>] [--tick-ms 50]

Runs node <n> (its position in --peers, counting from 0) until SIGINT or SIGTERM,
then shuts down gracefully (exit 0); exits 3 if it cannot start or stops after a failure. Every node and client lists the same --peers in the
same order. Clerks and peers use the TCP address; the HTTP API (GET/PUT/DELETE
/kv/<key>, GET /status, GET /metrics) listens on the TCP port + --http-offset.

options:
  --id <n>                 this node's position in --peers
  --peers <list>           every node's TCP address, comma-separated
  --data <dir>             this node's data folder (created if missing; one process per folder)
  --join                   an empty --data joins an existing cluster (default: it founds a new
                           one); either way a node whose peers knew it with another folder stops
  --http-offset <n>        HTTP port = TCP port + n (default 1000)
  --no-http                no HTTP API
  --max-raft-state <bytes> snapshot when the Raft log reaches this size (default 4194304)
  --tick-ms <ms>           Raft tick (default 50: heartbeats every 100 ms, elections after 0.5-1 s)
${ACCESS_HELP}`,
  async run(args) {
    const parsed = parse("serve", this, args, {
      id: { type: "string" },
      peers: { type: "string" },
      data: { type: "string" },
      "http-offset": { type: "string" },
      "no-http": { type: "boolean" },
      "max-raft-state": { type: "string" },
      "tick-ms": { type: "string" },
      join: { type: "boolean" },
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
    });
    if (!parsed) return 2;
    const v = parsed.values;
    if (typeof v.id !== "string" || typeof v.peers !== "string" || typeof v.data !== "string") {
      return usageError("serve", this, "--id, --peers and --data are required");
    }
    let node;
    try {
      const secret = secretFrom(v["secret-file"], true);
      const cluster = typeof v["cluster-id"] === "string" ? v["cluster-id"] : "";
      console.log(
        `cluster id ${JSON.stringify(cluster)}; ` +
          (secret
            ? "peers and clients must prove the shared secret"
            : "no secret: connections are not authenticated"),
      );
      node = await startKvNode({
        cluster,
        secret,
        id: count(v.id, "--id")!,
        peers: v.peers.split(",").filter((p) => p !== ""),
        dataDir: v.data,
        httpOffset: v["no-http"] ? null : count(v["http-offset"], "--http-offset"),
        maxRaftState: count(v["max-raft-state"], "--max-raft-state"),
        tickMs: count(v["tick-ms"], "--tick-ms"),
        mode: v.join ? "join" : "bootstrap",
        log: (line) => console.log(line),
      });
    } catch (err) {
      if (err instanceof RangeError) return usageError("serve", this, err.message);
      console.error(`distkit kv serve: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    // Until a signal, or until the node stops on its own (a storage failure,
    // already reported): then exit non-zero so a supervisor restarts it.
    const failed = node.server.finished.then(() => true);
    const outcome = await Promise.race([waitForSignal().then(() => false), failed]);
    await node.close();
    if (node.conflict) {
      // Its peers know another incarnation of this node: refused, as a wrong cluster id is.
      console.error(`distkit kv serve: ${node.conflict.message}`);
      return EXIT.refused;
    }
    if (outcome) console.error("distkit kv serve: the node stopped after a failure (see above)");
    return outcome ? EXIT.noAnswer : EXIT.ok;
  },
};

const cluster: KvCommand = {
  summary: "start a local cluster of node processes on 127.0.0.1 (for trying things out)",
  usage:
    `usage: distkit kv cluster [--nodes 3] [--data <dir>] [--cluster-id <id>] [--secret-file <f>]

Starts <nodes> \`distkit kv serve\` processes on free ports of 127.0.0.1, with
their data under --data (default: a new temporary folder), prints where each
listens and how to talk to them, and stops them all on SIGINT or SIGTERM.`,
  async run(args) {
    const parsed = parse("cluster", this, args, {
      nodes: { type: "string" },
      data: { type: "string" },
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
    });
    if (!parsed) return 2;
    let nodes: number;
    try {
      nodes = count(parsed.values.nodes, "--nodes") ?? 3;
      if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError("--nodes must be 1 or more");
    } catch (err) {
      return usageError("cluster", this, (err as Error).message);
    }
    const dataDir = typeof parsed.values.data === "string"
      ? parsed.values.data
      : await Deno.makeTempDir({ prefix: "distkit-kv-" });
    let local: LocalCluster;
    try {
      const id = parsed.values["cluster-id"];
      local = await LocalCluster.start({
        nodes,
        dataDir,
        cluster: typeof id === "string" ? id : undefined,
        secret: secretFrom(parsed.values["secret-file"], true),
      });
    } catch (err) {
      console.error(`distkit kv cluster: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    for (let i = 0; i < nodes; i++) {
      console.log(
        `node ${i}: tcp ${local.peers[i]}, http http://${local.httpAddress(i)}, data ${
          local.dataDir(i)
        }`,
      );
    }
    const list = local.peers.join(",");
    console.log(`\ntry:\n  distkit kv put --cluster ${list} greeting hello`);
    console.log(`  distkit kv get --cluster ${list} greeting`);
    console.log(`  curl -L http://${local.httpAddress(0)}/kv/greeting`);
    console.log("\nCtrl-C stops the cluster.");
    await waitForSignal();
    await local.stop();
    return 0;
  },
};

/** A client command: parses --cluster and --timeout, runs `op` with a clerk, maps errors to exit codes. */
function clientCommand(
  name: string,
  summary: string,
  operands: string,
  op: (
    clerk: Clerk,
    positionals: string[],
    signal: AbortSignal,
    absent: boolean,
  ) => Promise<number>,
  arity: number,
): KvCommand {
  const absentHelp = name === "cas"
    ? "\n  --absent                 set the key only if it is absent (then give <key> <new>)"
    : "";
  return {
    summary,
    usage: `usage: distkit kv ${name} --cluster <host:port,...> [--timeout <ms>] ${operands}

options:
  --cluster <list>         the nodes' TCP addresses, comma-separated, in the nodes' order
  --timeout <ms>           give up after this long (default 10000)${absentHelp}
${ACCESS_HELP}

${EXIT_HELP}
A write that failed after it may have been applied exits 3 and says "may or may not have been
applied": read the key before writing it again.`,
    async run(args) {
      const parsed = parse(name, this, args, {
        cluster: { type: "string" },
        timeout: { type: "string" },
        ...(name === "cas" ? { absent: { type: "boolean" as const } } : {}),
        "cluster-id": { type: "string" },
        "secret-file": { type: "string" },
      });
      if (!parsed) return EXIT.usage;
      const list = parsed.values.cluster;
      if (typeof list !== "string") return usageError(name, this, "--cluster is required");
      if (parsed.positionals.length !== arity - (parsed.values.absent ? 1 : 0)) {
        return usageError(name, this, `expected ${operands}`);
      }
      let timeoutMs: number;
      let connection;
      const addresses = list.split(",").filter((p) => p !== "");
      try {
        timeoutMs = count(parsed.values.timeout, "--timeout") ?? 10_000;
        const id = parsed.values["cluster-id"];
        connection = connectKv(addresses, {
          cluster: typeof id === "string" ? id : "",
          secret: secretFrom(parsed.values["secret-file"]),
        });
      } catch (err) {
        return usageError(name, this, (err as Error).message);
      }
      const deadline = new ClientDeadline(addresses, timeoutMs);
      try {
        return await op(
          connection.clerk,
          parsed.positionals,
          deadline.signal,
          parsed.values.absent === true,
        );
      } catch (err) {
        const { code, message } = await deadline.explain(err);
        if (
          name !== "get" && mayHaveApplied(err) &&
          !(deadline.signal.reason instanceof NothingListeningError)
        ) {
          // Not a refusal: a blind retry could apply it twice.
          const why = err instanceof KvOutcomeUnknownError ? err.reason : message;
          console.error(
            `distkit kv ${name}: the write may or may not have been applied (${why}); ` +
              `read the key before writing it again`,
          );
          return EXIT.noAnswer;
        }
        console.error(`distkit kv ${name}: ${message}`);
        // A request over the limits is a bad operand: a usage error, not a lack of answer.
        return err instanceof KvRequestError ? EXIT.usage : code;
      } finally {
        await deadline.dispose();
        await connection.close();
      }
    },
  };
}

function print(value: string | Uint8Array): void {
  if (typeof value === "string") console.log(value);
  else Deno.stdout.writeSync(value);
}

const get = clientCommand("get", "print a key's value (exit 1 when absent)", "<key>", async (
  clerk,
  [key],
  signal,
) => {
  const value = await clerk.get(key, { signal });
  if (value === null) {
    console.error(`no key ${JSON.stringify(key)}`);
    return 1;
  }
  print(value);
  return 0;
}, 1);

const put = clientCommand("put", "set a key's value", "<key> <value>", async (
  clerk,
  [key, value],
  signal,
) => {
  await clerk.put(key, value, { signal });
  return 0;
}, 2);

const append = clientCommand("append", "append to a key's value", "<key> <value>", async (
  clerk,
  [key, value],
  signal,
) => {
  await clerk.append(key, value, { signal });
  return 0;
}, 2);

const del = clientCommand("del", "delete a key", "<key>", async (clerk, [key], signal) => {
  await clerk.delete(key, { signal });
  return 0;
}, 1);

const cas = clientCommand(
  "cas",
  "set a key only if it holds an expected value (--absent: only if it is absent); exit 1 if not",
  "<key> <expected> <new> | --absent <key> <new>",
  async (clerk, operands, signal, absent) => {
    const [key, expected, value] = absent ? [operands[0], null, operands[1]] : operands;
    const outcome = await clerk.cas(key, { expected, value }, { signal });
    if (outcome.ok) return 0;
    console.error(
      `not set: the value is ${
        outcome.current === null ? "absent" : JSON.stringify(String(outcome.current))
      }`,
    );
    return 1;
  },
  3,
);

/** The `distkit kv` command group. */
export const kvCommands: { summary: string; commands: Record<string, KvCommand> } = {
  summary: "the replicated key/value service: run nodes, a local cluster, and client operations",
  commands: { serve, cluster, get, put, append, del, cas, member },
};
