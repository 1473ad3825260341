/**
 * `distkit kv` commands: run a node (`serve`), a local cluster of node
 * processes (`cluster`), the client operations (`get`, `put`, `append`,
 * `del`, `cas`), and the cluster's `status` and `health`.
 *
 * @module
 */
import {
  ACCESS_HELP,
  type CliCommand,
  ClientDeadline,
  count,
  durationMs,
  endpointsHelp,
  endpointsOf,
  EXIT,
  EXIT_HELP,
  NothingListeningError,
  OUTPUT_FLAGS,
  OUTPUT_HELP,
  outputFormat,
  parseCommandArgs,
  secretFrom,
  usageError as reportUsage,
  UsageProblem,
  waitForSignal,
} from "./util.ts";
import {
  encodeValue,
  encodingOf,
  jsonValue,
  printValue,
  type ValueEncoding,
  valueFromFile,
  valueOperand,
  valueSize,
  writeValueFile,
} from "./values.ts";
import { mayHaveApplied, OutcomeUnknownError, RequestError } from "../rsm/errors.ts";
import { AddressError } from "../net/address.ts";
import { distkitCommand, LocalCluster } from "./local_cluster.ts";
import { member } from "./kv_member_commands.ts";
import { connectKv, startKvNode } from "../kv/node.ts";
import { endpointCommand, healthCommand, statusCommand } from "./kv_status_commands.ts";
import type { KvClerk } from "../kv/clerk.ts";
import type { KvValue } from "../kvstate/value.ts";
import { SUMMARIES } from "./summaries.ts";

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
                       [--http-offset 1000 | --no-http] [--max-raft-state <bytes>]
                       [--snapshot-log-ratio 1] [--tick-ms 50] [--log kv|segments]
                       [--state disk|memory] [--values-in-log [--values-in-log-budget <bytes>]]

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
  --max-raft-state <bytes> --state memory: snapshot when the Raft log reaches this size or the
                           last snapshot's times --snapshot-log-ratio, whichever is larger;
                           --state disk: compact the log each time it grows by this much, keeping
                           the last 5000 entries (at most this many bytes) (default 4194304)
  --snapshot-log-ratio <r> --state memory only: 0 snapshots at --max-raft-state whatever the
                           state's size (default 1)
  --tick-ms <ms>           Raft tick (default 50: heartbeats every 100 ms, elections after 0.5-1 s)
  --log kv|segments        where the Raft log is kept: Deno KV (raft.kv) or append-only
                           segment files (raft.log/) (default: what the folder holds; kv for a
                           new one); a folder of the other kind is refused
  --state disk|memory      where the KV state is kept: disk (in --data, memory bounded) or memory
                           (default: what the folder recorded when it was made; memory for a
                           new one). A memory folder started with --state disk is moved to disk; a
                           disk folder started with --state memory is refused
  --values-in-log          with --state disk and --log segments (what a new folder gets with
                           it): a put's value over 60 KiB is kept in its Raft log entry
                           (written once per node), the state's row pointing at it, instead
                           of being copied into the state
  --values-in-log-budget <bytes>  bytes of segments kept only for values before the oldest one's
                           are copied into the state (default 268435456)
${ACCESS_HELP}`,
  async run(args) {
    const parsed = parse("serve", this, args, {
      id: { type: "string" },
      peers: { type: "string" },
      data: { type: "string" },
      "http-offset": { type: "string" },
      "no-http": { type: "boolean" },
      "max-raft-state": { type: "string" },
      "snapshot-log-ratio": { type: "string" },
      "tick-ms": { type: "string" },
      log: { type: "string" },
      state: { type: "string" },
      "values-in-log": { type: "boolean" },
      "values-in-log-budget": { type: "string" },
      join: { type: "boolean" },
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
    });
    if (!parsed) return 2;
    const v = parsed.values;
    if (typeof v.id !== "string" || typeof v.peers !== "string" || typeof v.data !== "string") {
      return usageError("serve", this, "--id, --peers and --data are required");
    }
    const raftLog = v.log;
    if (raftLog !== undefined && raftLog !== "kv" && raftLog !== "segments") {
      return usageError("serve", this, `--log must be kv or segments, got ${raftLog}`);
    }
    if (v.state !== undefined && v.state !== "disk" && v.state !== "memory") {
      return usageError("serve", this, `--state is disk or memory, not ${JSON.stringify(v.state)}`);
    }
    if (v["values-in-log-budget"] !== undefined && !v["values-in-log"]) {
      return usageError(
        "serve",
        this,
        "--values-in-log-budget is a budget of --values-in-log: add it",
      );
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
        snapshotLogRatio: count(v["snapshot-log-ratio"], "--snapshot-log-ratio"),
        tickMs: count(v["tick-ms"], "--tick-ms"),
        mode: v.join ? "join" : "bootstrap",
        ...(raftLog === undefined ? {} : { raftLog }),
        ...(v.state === undefined ? {} : { state: v.state }),
        ...(v["values-in-log"]
          ? {
            valuesInLog: v["values-in-log-budget"] === undefined
              ? true
              : { budgetBytes: count(v["values-in-log-budget"], "--values-in-log-budget") },
          }
          : {}),
        log: (line) => console.log(line),
      });
    } catch (err) {
      if (err instanceof RangeError || err instanceof AddressError) {
        return usageError("serve", this, err.message);
      }
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
                         [--state disk|memory]

Starts <nodes> \`distkit kv serve\` processes on free ports of 127.0.0.1, with
their data under --data (default: a new temporary folder), prints where each
listens and runnable commands to talk to them, reports a node that exits and
how (\`node 2 exited (SIGKILL); restart it: ...\`) with the command that
restarts it, and stops them all on SIGINT or SIGTERM. --state is each node's
\`kv serve --state\` (default: memory for new folders).`,
  async run(args) {
    const parsed = parse("cluster", this, args, {
      nodes: { type: "string" },
      data: { type: "string" },
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
      state: { type: "string" },
    });
    if (!parsed) return 2;
    const state = parsed.values.state;
    if (state !== undefined && state !== "disk" && state !== "memory") {
      return usageError("cluster", this, `--state is disk or memory, not ${JSON.stringify(state)}`);
    }
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
      const secret = secretFrom(parsed.values["secret-file"], true);
      const secretNote = secret === undefined ? "" : " (with DISTKIT_SECRET set to the secret)";
      local = await LocalCluster.start({
        nodes,
        dataDir,
        cluster: typeof id === "string" ? id : undefined,
        secret,
        ...(state === undefined ? {} : { state }),
        onExit: (node, status) => {
          if (local === undefined) return; // still starting: start itself reports it
          const how = status.signal !== null ? status.signal : `exit code ${status.code}`;
          console.log(
            `node ${node} exited (${how}); restart it${secretNote}:\n  ${
              distkitCommand(local.serveArgs(node))
            }`,
          );
        },
      });
    } catch (err) {
      console.error(`distkit kv cluster: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    for (let i = 0; i < nodes; i++) {
      console.log(
        `node ${i}: tcp ${local.peers[i]}, http http://${local.httpAddress(i)}, data ${
          local.dataDir(i)
        }, pid ${local.pid(i)}`,
      );
    }
    const list = local.peers.join(",");
    const kv = (...args: string[]) => distkitCommand(["kv", ...args]);
    console.log(`\ntry:\n  ${kv("put", "--endpoints", list, "greeting", "hello")}`);
    console.log(`  ${kv("get", "--endpoints", local.peers[0], "greeting")}`);
    console.log(`  ${kv("status", "--endpoints", list)}`);
    console.log(`  curl -L http://${local.httpAddress(0)}/kv/greeting`);
    console.log(
      `\nto crash node 0 and watch the others elect a leader: kill -KILL ${local.pid(0)}`,
    );
    console.log(`a node that exits is reported here with the command that restarts it, e.g.:`);
    console.log(`  ${distkitCommand(local.serveArgs(0))}`);
    console.log("\nCtrl-C stops the cluster.");
    await waitForSignal();
    await local.stop();
    return 0;
  },
};

/** What a client command's operation gets besides the clerk. */
interface ClientContext {
  /** The operands (values already decoded). */
  operands: string[];
  /** The values, decoded from the operands, --file or stdin (for put, append, cas). */
  values: (KvValue | null)[];
  /** The call's signal (the --timeout deadline). */
  signal: AbortSignal;
  /** `-o json` or text. */
  format: "json" | "text";
  /** How values are written: text, --hex, --base64. */
  encoding: ValueEncoding;
  /** --file, when given. */
  file: string | undefined;
}

/** The shape of one client command. */
interface ClientSpec {
  name: string;
  summary: string;
  /** The operands, as the usage shows them. */
  operands: string;
  /** How many operands, and which of them are values (by position). */
  arity: number;
  valueAt: number[];
  /** Extra help lines. */
  help?: string;
  op: (clerk: KvClerk, context: ClientContext) => Promise<number>;
}

const VALUE_HELP =
  `  --hex | --base64         the value operands (and printed values) are hex or base64: bytes
  --file <path>            read the value from this file (get: write it there)
  -                        as a value: read it from stdin (text if UTF-8, else bytes)`;

/**
 * A client command: parses --endpoints, --timeout, the output and value
 * options, runs `spec.op` with a clerk, maps errors to exit codes.
 */
function clientCommand(spec: ClientSpec): KvCommand {
  const { name, operands } = spec;
  const takesValues = name !== "del";
  return {
    summary: spec.summary,
    usage:
      `usage: distkit kv ${name} --endpoints <host:port,...> [--timeout 10s] [-o json] ${operands}

options:
${endpointsHelp("the nodes' TCP addresses", { note: "one is enough" })}
${OUTPUT_HELP}${takesValues ? `\n${VALUE_HELP}` : ""}${spec.help ?? ""}
${ACCESS_HELP}

${EXIT_HELP}
A write that failed after it may have been applied exits 3 and says "may or may not have been
applied": read the key before writing it again.`,
    async run(args) {
      const parsed = parse(name, this, args, {
        endpoints: { type: "string" },
        timeout: { type: "string" },
        ...OUTPUT_FLAGS,
        ...(takesValues
          ? {
            hex: { type: "boolean" as const },
            base64: { type: "boolean" as const },
            file: { type: "string" as const },
          }
          : {}),
        ...(name === "cas" ? { absent: { type: "boolean" as const } } : {}),
        "cluster-id": { type: "string" },
        "secret-file": { type: "string" },
      });
      if (!parsed) return EXIT.usage;
      const v = parsed.values;
      let addresses: string[];
      let timeoutMs: number;
      let context: Omit<ClientContext, "signal">;
      let connection;
      try {
        addresses = endpointsOf(v);
        timeoutMs = durationMs(v.timeout, "--timeout") ?? 10_000;
        const file = typeof v.file === "string" ? v.file : undefined;
        // Values: from --file (the last value operand), the operands, stdin.
        const absent = v.absent === true;
        const valueAt = spec.valueAt.filter((i) => !(absent && i === 1)).map((i) =>
          absent ? i - 1 : i
        );
        const fromFile = file !== undefined && name !== "get";
        const expected = spec.arity - (absent ? 1 : 0) - (fromFile ? 1 : 0);
        if (parsed.positionals.length !== expected) {
          throw new UsageProblem(
            `expected ${operands}${fromFile ? " (the value from --file)" : ""}`,
          );
        }
        const encoding = encodingOf(v);
        const values: (KvValue | null)[] = [];
        for (const [k, at] of valueAt.entries()) {
          if (fromFile && k === valueAt.length - 1) values.push(await valueFromFile(file));
          else {
            values.push(
              await valueOperand(parsed.positionals[at], { encoding, what: "the value" }),
            );
          }
        }
        if (absent) values.unshift(null);
        context = {
          operands: parsed.positionals,
          values,
          format: outputFormat(v),
          encoding,
          file,
        };
        const id = v["cluster-id"];
        connection = connectKv(addresses, {
          cluster: typeof id === "string" ? id : "",
          secret: secretFrom(v["secret-file"]),
          // The command's own --timeout bounds it.
          deadlineMs: Infinity,
        });
      } catch (err) {
        return usageError(name, this, (err as Error).message);
      }
      const deadline = new ClientDeadline(addresses, timeoutMs);
      try {
        return await spec.op(connection.clerk, { ...context, signal: deadline.signal });
      } catch (err) {
        const { code, message } = await deadline.explain(err, connection.clerk.tried());
        if (
          name !== "get" && mayHaveApplied(err) &&
          !(deadline.signal.reason instanceof NothingListeningError)
        ) {
          // Not a refusal: a blind retry could apply it twice.
          const why = err instanceof OutcomeUnknownError ? err.reason : message;
          console.error(
            `distkit kv ${name}: the write may or may not have been applied (${why}); ` +
              `read the key before writing it again`,
          );
          return EXIT.noAnswer;
        }
        console.error(`distkit kv ${name}: ${message}`);
        // A request over the limits is a bad operand: a usage error, not a lack of answer.
        return err instanceof RequestError ? EXIT.usage : code;
      } finally {
        await deadline.dispose();
        await connection.close();
      }
    },
  };
}

/** Prints one JSON line. */
function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

const get = clientCommand({
  name: "get",
  summary: "print a key's value (exit 1 when absent)",
  operands: "<key>",
  arity: 1,
  valueAt: [],
  async op(clerk, { operands: [key], signal, format, encoding, file }) {
    const value = await clerk.get(key, { signal });
    if (value === null) {
      if (format === "json") printJson({ key, found: false });
      else console.error(`no key ${JSON.stringify(key)}`);
      return EXIT.no;
    }
    if (file !== undefined) {
      await writeValueFile(file, value);
      if (format === "json") printJson({ key, found: true, file, bytes: valueSize(value) });
      else console.error(`wrote ${valueSize(value)} bytes to ${file}`);
    } else if (format === "json") printJson({ key, found: true, ...jsonValue(value, encoding) });
    else printValue(value, encoding);
    return EXIT.ok;
  },
});

/** put and append: one write, printed as `{op, key, bytes}` with -o json. */
function writeCommand(name: "put" | "append", summary: string): KvCommand {
  return clientCommand({
    name,
    summary,
    operands: "<key> <value>",
    arity: 2,
    valueAt: [1],
    async op(clerk, { operands: [key], values: [value], signal, format }) {
      await clerk[name](key, value!, { signal });
      if (format === "json") printJson({ op: name, key, ok: true, bytes: valueSize(value!) });
      return EXIT.ok;
    },
  });
}

const put = writeCommand("put", "set a key's value");
const append = writeCommand("append", "append to a key's value");

const del = clientCommand({
  name: "del",
  summary: "delete a key (says so when it was absent; exit 0 either way)",
  operands: "<key>",
  arity: 1,
  valueAt: [],
  async op(clerk, { operands: [key], signal, format }) {
    const existed = await clerk.delete(key, { signal });
    if (format === "json") printJson({ op: "del", key, deleted: existed });
    else if (!existed) console.error(`no key ${JSON.stringify(key)}: nothing to delete`);
    return EXIT.ok;
  },
});

const cas = clientCommand({
  name: "cas",
  summary:
    "set a key only if it holds an expected value (--absent: only if it is absent); exit 1 if not",
  operands: "<key> <expected> <new> | --absent <key> <new>",
  arity: 3,
  valueAt: [1, 2],
  help: "\n  --absent                 set the key only if it is absent (then give <key> <new>)",
  async op(clerk, { operands: [key], values: [expected, value], signal, format, encoding }) {
    const outcome = await clerk.cas(key, { expected, value: value! }, { signal });
    if (format === "json") {
      const current = outcome.current === undefined || outcome.current === null
        ? { current: null }
        : { current: jsonValue(outcome.current, encoding) };
      printJson({ op: "cas", key, ok: outcome.ok, ...(outcome.ok ? {} : current) });
    } else if (!outcome.ok) {
      const current = outcome.current ?? null;
      console.error(
        `not set: the value is ${
          current === null
            ? "absent"
            : encoding === "text" && typeof current === "string"
            ? JSON.stringify(current)
            : encodeValue(current, encoding === "hex" ? "hex" : "base64") +
              ` (${encoding === "hex" ? "hex" : "base64"})`
        }`,
      );
    }
    return outcome.ok ? EXIT.ok : EXIT.no;
  },
});

const list: KvCommand = {
  summary: "list keys by prefix: not supported yet (exit 2)",
  usage: `usage: distkit kv list --endpoints <host:port,...> --prefix <p>

Not supported yet: the service keeps no ordered index of its keys to page
through. Read known keys with \`distkit kv get\`.`,
  run(args) {
    const parsed = parse("list", this, args, {
      endpoints: { type: "string" },
      prefix: { type: "string" },
      timeout: { type: "string" },
      limit: { type: "string" },
      ...OUTPUT_FLAGS,
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
    });
    if (!parsed) return Promise.resolve(EXIT.usage);
    console.error(
      "distkit kv list: not supported yet: the service has no range reads; " +
        "read known keys with `distkit kv get`",
    );
    return Promise.resolve(EXIT.usage);
  },
};

/** The `distkit kv` command group. */
export const kvCommands: { summary: string; commands: Record<string, KvCommand> } = {
  summary: SUMMARIES.kv,
  commands: {
    serve,
    cluster,
    get,
    put,
    append,
    del,
    cas,
    list,
    member,
    status: statusCommand,
    endpoint: endpointCommand,
    health: healthCommand,
  },
};
