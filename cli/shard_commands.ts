/**
 * `distkit shard` commands: run controller replicas and group servers as
 * processes (`ctrler serve`, `group serve`), change the configuration
 * (`join`, `leave`, `move`), read it (`query`), and the client operations
 * (`get`, `put`, `append`, `del`).
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
  formatMs,
  operands,
  OUTPUT_FLAGS,
  OUTPUT_HELP,
  outputFormat,
  parseCommandArgs,
  secretFrom,
  triedLines,
  usageError,
  UsageProblem,
  waitForSignal,
} from "./util.ts";
import { RequestError } from "../rsm/errors.ts";
import { AddressError } from "../net/address.ts";
import {
  encodingOf,
  jsonValue,
  printValue,
  type ValueEncoding,
  valueOperand,
  valueSize,
} from "./values.ts";
import type { ShardClerk } from "../shard/clerk.ts";
import type { Transport } from "../net/transport.ts";
import { checkGroupServers, GroupServersError, probeGroupServers } from "../shard/group_probe.ts";
import type { ShardControllerClerk } from "../shard/controller.ts";
import { ShardGroupTimeoutError } from "../shard/errors.ts";
import { connectShard, startShardNode } from "../shard/node.ts";
import { SUMMARIES } from "./summaries.ts";

const list = (text: string) => text.split(",").filter((p) => p !== "");

const SERVE_OPTIONS = {
  listen: { type: "string" },
  peers: { type: "string" },
  data: { type: "string" },
  "max-raft-state": { type: "string" },
  "tick-ms": { type: "string" },
  "cluster-id": { type: "string" },
  "secret-file": { type: "string" },
  join: { type: "boolean" },
} as const;

const SERVE_HELP =
  `  --listen <host:port>     this node's TCP address; also its name in configurations
  --peers <list>           the addresses of every replica of this controller or group (this one too)
  --data <dir>             this node's data folder (created if missing; one process per folder)
  --max-raft-state <bytes> snapshot when the Raft log reaches this size or the last
                           snapshot's, whichever is larger (default 4194304)
  --tick-ms <ms>           Raft tick (default 50)
  --join                   an empty --data joins the running replicas: it waits to be added with
                           Member.Add on their leader (e.g. distkit net call <leader> Member.Add
                           '{"node": "<this --listen>"}'), then Member.Promote once caught up
${ACCESS_HELP}`;

const GROUP_STATE_HELP =
  `  --state disk|memory      where the group's keys and sessions are kept: disk (in --data beside
                           the Raft log; memory bounded, a restart replays only the log past the
                           stored state) or memory (rebuilt from the last snapshot and the log at
                           each start). Default: what the folder recorded when it was made;
                           memory for a new one, as for kv serve (disk applies puts more slowly
                           today). A memory folder started with --state disk is moved to disk; a
                           disk folder started with --state memory is refused (exit 3).
                           With disk, --max-raft-state is how much the log grows between
                           compactions (nothing is encoded; the last 5000 entries are kept)
`;

/** \`ctrler serve\` and \`group serve\`: run one node until SIGINT or SIGTERM. */
function serveCommand(role: "ctrler" | "group"): CliCommand {
  const name = `shard ${role}`;
  const groupOptions: Record<string, { type: "string" }> = role === "group"
    ? { gid: { type: "string" }, ctrlers: { type: "string" }, state: { type: "string" } }
    : {};
  return {
    summary: role === "ctrler"
      ? "serve: run one shard controller replica"
      : "serve: run one server of a shard group",
    usage: `usage: distkit ${name} serve ${
      role === "group" ? "--gid <gid> --ctrlers <host:port,...> " : ""
    }--listen <host:port> --peers <host:port,...> --data <dir>${
      role === "group" ? "\n                              [--state disk|memory]" : ""
    }

Runs ${
      role === "ctrler" ? "a replica of the shard controller" : "a server of shard group <gid>"
    } until SIGINT or SIGTERM, then shuts down
gracefully; exits 3 if it cannot start or stops on its own after a failure.

options:
${
      role === "group"
        ? "  --gid <gid>              the group's id\n  --ctrlers <list>         the controller replicas' addresses\n"
        : ""
    }${role === "group" ? GROUP_STATE_HELP : ""}${SERVE_HELP}`,
    async run(args) {
      if (args[0] !== "serve") return usageError(name, this, "expected `serve`");
      const parsed = parseCommandArgs(`${name} serve`, this, args.slice(1), {
        ...SERVE_OPTIONS,
        ...groupOptions,
      });
      if (!parsed) return 2;
      const v = parsed.values;
      if (
        typeof v.listen !== "string" || typeof v.peers !== "string" ||
        typeof v.data !== "string" ||
        (role === "group" && (typeof v.gid !== "string" || typeof v.ctrlers !== "string"))
      ) {
        return usageError(
          `${name} serve`,
          this,
          `--listen, --peers, --data${
            role === "group" ? ", --gid and --ctrlers" : ""
          } are required`,
        );
      }
      if (v.state !== undefined && v.state !== "disk" && v.state !== "memory") {
        return usageError(
          `${name} serve`,
          this,
          `--state is disk or memory, not ${JSON.stringify(v.state)}`,
        );
      }
      let node;
      try {
        node = await startShardNode({
          role,
          address: v.listen,
          peers: list(v.peers),
          gid: role === "group" ? count(v.gid, "--gid") : undefined,
          ctrlers: typeof v.ctrlers === "string" ? list(v.ctrlers) : undefined,
          dataDir: v.data,
          maxRaftState: count(v["max-raft-state"], "--max-raft-state"),
          tickMs: count(v["tick-ms"], "--tick-ms"),
          cluster: typeof v["cluster-id"] === "string" ? v["cluster-id"] : "",
          secret: secretFrom(v["secret-file"], true),
          log: (line) => console.log(line),
          join: v.join === true,
          ...(v.state === undefined ? {} : { state: v.state }),
        });
      } catch (err) {
        if (err instanceof RangeError || err instanceof AddressError) {
          return usageError(`${name} serve`, this, err.message);
        }
        console.error(`distkit ${name} serve: ${(err as Error).message}`);
        return EXIT.noAnswer;
      }
      const failed = node.finished.then(() => true);
      const outcome = await Promise.race([waitForSignal().then(() => false), failed]);
      await node.close();
      if (outcome) console.error(`distkit ${name} serve: the node stopped after a failure`);
      return outcome ? EXIT.noAnswer : EXIT.ok;
    },
  };
}

/** What a client command's operation gets. */
interface ShardContext {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  signal: AbortSignal;
  /** The options of a key's operation: the clerk keeps the deadline, so its error names the group. */
  clerkCall: () => { signal: AbortSignal; deadlineMs: number };
  format: "json" | "text";
  encoding: ValueEncoding;
}

/**
 * What a key's operation that timed out waiting for its group says: the
 * group, its servers and how each fared, the configuration, and what to check.
 */
async function groupTimeoutMessage(
  err: ShardGroupTimeoutError,
  command: { name: string; timeoutMs: number; ctrlers: string[] },
): Promise<string> {
  const endpoints = `--endpoints ${command.ctrlers.join(",")}`;
  const lines = await triedLines(err.tried);
  const advice = err.gid === 0
    ? `Join a group: distkit shard join ${endpoints} --gid <gid> --servers <host:port,...>.`
    : `Check that group ${err.gid}'s servers are up (distkit shard group serve --gid ${err.gid}) ` +
      `and reachable at these addresses, and that configuration ${err.configNum} lists the ` +
      `group at its servers' right addresses (distkit shard query ${endpoints}).`;
  return `no answer within ${formatMs(command.timeoutMs)} (--timeout) from ${err.waitedFor}` +
    (lines === "" ? "." : `; tried:\n${lines}`) + `\n${advice}` +
    (err.mayHaveApplied
      ? `\nThe ${command.name} may or may not have taken effect: read the key to find out.`
      : "");
}

/** A client command: connects to --endpoints (the controller), runs `op`, maps errors to exit codes. */
function clientCommand(
  name: string,
  summary: string,
  operands: string,
  extra: Record<string, { type: "string" | "boolean"; help: string }>,
  op: (
    clients: { clerk: ShardClerk; admin: ShardControllerClerk; transport: Transport },
    context: ShardContext,
  ) => Promise<number>,
): CliCommand {
  return {
    summary,
    usage:
      `usage: distkit shard ${name} --endpoints <host:port,...> [--timeout 10s] [-o json] ${operands}

options:
${endpointsHelp("the controller replicas' TCP addresses", { old: "--ctrlers" })}
${OUTPUT_HELP}
${
        Object.values(extra).filter((o) => o.help !== "").map((o) => `${o.help}\n`).join("")
      }${ACCESS_HELP}

${EXIT_HELP}`,
    async run(args) {
      const parsed = parseCommandArgs(`shard ${name}`, this, args, {
        endpoints: { type: "string" },
        timeout: { type: "string" },
        ...OUTPUT_FLAGS,
        "cluster-id": { type: "string" },
        "secret-file": { type: "string" },
        ...Object.fromEntries(
          Object.entries(extra).map(([k, o]) => [k, { type: o.type }]),
        ),
      });
      if (!parsed) return 2;
      let timeoutMs: number;
      let connection;
      let ctrlers: string[];
      let context: Omit<ShardContext, "signal" | "clerkCall">;
      try {
        ctrlers = endpointsOf(parsed.values);
        timeoutMs = durationMs(parsed.values.timeout, "--timeout") ?? 10_000;
        context = {
          values: parsed.values,
          positionals: parsed.positionals,
          format: outputFormat(parsed.values),
          encoding: encodingOf(parsed.values),
        };
        const id = parsed.values["cluster-id"];
        connection = connectShard(ctrlers, {
          cluster: typeof id === "string" ? id : "",
          secret: secretFrom(parsed.values["secret-file"]),
          // The command's --timeout bounds it.
          deadlineMs: Infinity,
        });
      } catch (err) {
        return usageError(`shard ${name}`, this, (err as Error).message);
      }
      const deadline = new ClientDeadline(ctrlers, timeoutMs);
      try {
        return await op(connection, {
          ...context,
          signal: deadline.signal,
          clerkCall: () => deadline.forClerk(),
        });
      } catch (err) {
        if (err instanceof UsageProblem) return usageError(`shard ${name}`, this, err.message);
        if (err instanceof ShardGroupTimeoutError) {
          // The controllers answered: the group did not, which the deadline's probes of the
          // controllers would not tell.
          console.error(
            `distkit shard ${name}: ${await groupTimeoutMessage(err, {
              name,
              timeoutMs,
              ctrlers,
            })}`,
          );
          return EXIT.noAnswer;
        }
        if (err instanceof GroupServersError) {
          console.error(`distkit shard ${name}: ${err.message}`);
          // Every server answered, as another group's (or a group of its own): the answer is no.
          return err.probes.every((p) => p.status !== undefined) ? EXIT.no : EXIT.noAnswer;
        }
        const { code, message } = await deadline.explain(err);
        // A request over the limits is a bad operand: a usage error, not a lack of answer.
        const exit = err instanceof RequestError ? EXIT.usage : code;
        console.error(`distkit shard ${name}: ${message}`);
        return exit;
      } finally {
        await deadline.dispose();
        await connection.close();
      }
    },
  };
}

/** Prints what a configuration change made: `configuration N`, or JSON. */
function printConfiguration(op: string, num: number, format: "json" | "text"): void {
  console.log(
    format === "json" ? JSON.stringify({ op, configuration: num }) : `configuration ${num}`,
  );
}

const ENCODING_HELP = {
  hex: {
    type: "boolean",
    help: "  --hex | --base64         values (given and printed) are hex or base64: bytes",
  },
  base64: { type: "boolean", help: "" },
} as const;

function gids(text: string | boolean | undefined): number[] {
  if (typeof text !== "string") throw new UsageProblem("--gid is required");
  const out = list(text).map(Number);
  if (out.length === 0 || out.some((g) => !Number.isSafeInteger(g) || g <= 0)) {
    throw new UsageProblem(`--gid takes positive integers, got ${text}`);
  }
  return out;
}

const join = clientCommand(
  "join",
  "add a group (its servers' addresses) to the configuration",
  "--gid <gid> --servers <host:port,...>",
  {
    gid: {
      type: "string",
      help: "  --gid <gid>              the new group's id (a positive integer)",
    },
    servers: {
      type: "string",
      help: "  --servers <list>         the group's servers' TCP addresses, comma-separated",
    },
    force: {
      type: "boolean",
      help:
        "  --force                  join even if fewer than a majority of --servers answer as\n" +
        "                           servers of --gid (by default such a join is refused: exit 1\n" +
        "                           when they answer as another group's, 3 when some do not;\n" +
        "                           the group would take shards it cannot pull, and the groups\n" +
        "                           holding them would wait to hand them over)",
    },
  },
  async ({ admin, transport }, { values, signal, format }) => {
    const [gid] = gids(values.gid);
    if (typeof values.servers !== "string") throw new UsageProblem("--servers is required");
    const servers = list(values.servers);
    const twice = servers.find((s, i) => servers.indexOf(s) !== i);
    if (twice !== undefined) throw new UsageProblem(`--servers lists ${twice} twice`);
    if (values.force !== true) {
      // A group the configuration has already: its new servers must be of its Raft group.
      const current = (await admin.query(-1, { signal })).groups[gid];
      checkGroupServers(gid, await probeGroupServers(transport, servers, { signal }), { current });
    }
    const num = await admin.join({ [gid]: servers }, { signal });
    printConfiguration("join", num, format);
    return 0;
  },
);

const leave = clientCommand(
  "leave",
  "remove groups from the configuration; their shards move to the others",
  "--gid <gid,...>",
  {
    gid: {
      type: "string",
      help: "  --gid <gid,...>          the ids of the groups that leave, comma-separated",
    },
  },
  async ({ admin }, { values, signal, format }) => {
    const num = await admin.leave(gids(values.gid), { signal });
    printConfiguration("leave", num, format);
    return 0;
  },
);

const move = clientCommand(
  "move",
  "assign one shard to a group",
  "--shard <n> --gid <gid>",
  {
    shard: { type: "string", help: "  --shard <n>              the shard to move (0-9)" },
    gid: { type: "string", help: "  --gid <gid>              the group that takes it" },
  },
  async ({ admin }, { values, signal, format }) => {
    const shard = Number(values.shard);
    if (!Number.isSafeInteger(shard)) throw new UsageProblem("--shard takes a shard number");
    const num = await admin.move(shard, gids(values.gid)[0], { signal });
    printConfiguration("move", num, format);
    return 0;
  },
);

const query = clientCommand(
  "query",
  "print a configuration as JSON (default: the latest)",
  "[--num <n>]",
  {
    num: {
      type: "string",
      help: "  --num <n>                the configuration's number (default -1: the latest)",
    },
  },
  async ({ admin }, { values, signal }) => {
    const num = values.num === undefined ? -1 : Number(values.num);
    if (!Number.isSafeInteger(num)) throw new UsageProblem("--num takes an integer");
    console.log(JSON.stringify(await admin.query(num, { signal })));
    return 0;
  },
);

const get = clientCommand(
  "get",
  "print a key's value (exit 1 when absent)",
  "<key>",
  ENCODING_HELP,
  async ({ clerk }, { positionals, clerkCall, format, encoding }) => {
    const [key] = operands(positionals, 1, "<key>");
    const value = await clerk.get(key, clerkCall());
    if (value === null) {
      if (format === "json") console.log(JSON.stringify({ key, found: false }));
      else console.error(`no key ${JSON.stringify(key)}`);
      return 1;
    }
    if (format === "json") {
      console.log(JSON.stringify({ key, found: true, ...jsonValue(value, encoding) }));
    } else printValue(value, encoding);
    return 0;
  },
);

function writeCommand(name: "put" | "append", summary: string): CliCommand {
  return clientCommand(
    name,
    summary,
    "<key> <value>   (value - : read it from stdin)",
    ENCODING_HELP,
    async ({ clerk }, { positionals, clerkCall, format, encoding }) => {
      const [key, operand] = operands(positionals, 2, "<key> <value>");
      const value = await valueOperand(operand, { encoding, what: "the value" });
      await clerk[name](key, value, clerkCall());
      if (format === "json") {
        console.log(JSON.stringify({ op: name, key, ok: true, bytes: valueSize(value) }));
      }
      return 0;
    },
  );
}

const del = clientCommand(
  "del",
  "delete a key (says so when it was absent; exit 0 either way)",
  "<key>",
  {},
  async ({ clerk }, { positionals, clerkCall, format }) => {
    const [key] = operands(positionals, 1, "<key>");
    const existed = await clerk.delete(key, clerkCall());
    if (format === "json") console.log(JSON.stringify({ op: "del", key, deleted: existed }));
    else if (!existed) console.error(`no key ${JSON.stringify(key)}: nothing to delete`);
    return 0;
  },
);

/** The `distkit shard` command group. */
export const shardCommands: { summary: string; commands: Record<string, CliCommand> } = {
  summary: SUMMARIES.shard,
  commands: {
    ctrler: serveCommand("ctrler"),
    group: serveCommand("group"),
    join,
    leave,
    move,
    query,
    get,
    put: writeCommand("put", "set a key's value"),
    append: writeCommand("append", "append to a key's value"),
    del,
  },
};
