/**
 * The `distkit` command line: `distkit <module> <command> [options]`, with
 * `--help` at every level.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 jsr:@distkit/distkit/cli --help
 * deno run --allow-net=127.0.0.1 jsr:@distkit/distkit/cli demo
 * deno run --allow-net=127.0.0.1 jsr:@distkit/distkit/cli net serve --port 7000
 * deno run --allow-read jsr:@distkit/distkit/cli check history.jsonl
 * ```
 *
 * @example Run the command line from code
 * ```ts ignore
 * import { main } from "@distkit/distkit/cli";
 *
 * const exitCode = await main(["net", "call", "127.0.0.1:7000", "Health.Ping"]);
 * ```
 *
 * @module
 */
import { netCommands } from "./cli/net_commands.ts";
import { raftCommands } from "./cli/raft_commands.ts";
import { kvCommands } from "./cli/kv_commands.ts";
import { shardCommands } from "./cli/shard_commands.ts";
import { mrCommands } from "./cli/mr_commands.ts";
import { pbCommands } from "./cli/pb_commands.ts";
import { runTour } from "./cli/net_tour.ts";
import { EXIT_HELP, parseFlags } from "./cli/util.ts";
import { DISTKIT_VERSION } from "./net/version.ts";
import { checkCommand } from "./cli/check_commands.ts";
import { checkOperations } from "./checker/check.ts";
import { kvModel, registerModel } from "./checker/models.ts";
import { renderHtml } from "./checker/html.ts";
import { raftTour } from "./cli/raft_tour.ts";
import { kvTour } from "./cli/kv_tour.ts";
import { clusterDemo } from "./cli/demo.ts";

// For process tests and tools of your own: a local cluster of `distkit` processes and a workload to run on it.
export * from "./cli/local_cluster.ts";
export * from "./cli/workload.ts";
export type { KvClerk } from "./kv/mod.ts";
export type { KvInput, Operation } from "./checker/mod.ts";

/**
 * One command: what it does, how to call it, and how to run it.
 *
 * @example
 * ```ts
 * import type { Command } from "@distkit/distkit/cli";
 *
 * const hello: Command = {
 *   summary: "print a greeting",
 *   usage: "distkit hello",
 *   run: () => {
 *     console.log("hello");
 *     return Promise.resolve(0);
 *   },
 * };
 * ```
 */
export interface Command {
  /** One line: what the command does. */
  summary: string;
  /** The full help text, starting with the usage line. */
  usage: string;
  /** Runs the command with the arguments after its name; resolves with the exit code. */
  run(args: string[]): Promise<number>;
  /** The help for these arguments (a command with actions has one per action); default `usage`. */
  help?(args: string[]): string;
}

/**
 * A module's commands, by name.
 *
 * @example
 * ```ts
 * import type { CommandGroup } from "@distkit/distkit/cli";
 *
 * const group: CommandGroup = { summary: "nothing yet", commands: {} };
 * ```
 */
export interface CommandGroup {
  /** One line: what the module's commands are for. */
  summary: string;
  /** The commands. */
  commands: Record<string, Command>;
}

/** The package's version, as in deno.json (a test holds them equal). */
const VERSION = DISTKIT_VERSION;

/** The Raft and checker steps of the tour, after the net steps. */
async function raftAndCheckerTour(): Promise<number> {
  console.log("\n5. Raft: 5 members in virtual time; the leader is cut off and the others go on");
  const report = await raftTour(2026);
  console.log(
    `  leader ${report.leaders[0]}, then ${report.leaders[1]} after the partition; ` +
      `${report.committed} commands committed in ${report.virtualSeconds} virtual s ` +
      `(${report.wallMs} ms of wall time)`,
  );
  if (!report.logsAgree || report.leaders[0] === report.leaders[1]) {
    console.error("  FAILED: the members' logs differ, or no new leader took over");
    return 1;
  }
  console.log("  ok  all 5 members applied the same commands in the same order");

  console.log("\n6. The checker: is the register history the clients saw linearizable?");
  const result = checkOperations(registerModel, report.history, { timeoutMs: 10_000 });
  console.log(
    `  ${report.history.length} operations: ${result.verdict} (${result.elapsedMs.toFixed(1)} ms)`,
  );
  if (result.verdict !== "linearizable") return 1;
  // Now a stale read, as a buggy system would return one: the checker must catch it.
  const tampered = report.history.map((op) => ({ ...op }));
  const read = tampered.findLast((op) => op.input.op === "read" && op.output !== 0);
  if (read) read.output = 0;
  const bad = checkOperations(registerModel, tampered, { timeoutMs: 10_000 });
  console.log(`  with one read made stale: ${bad.verdict}`);
  if (bad.verdict !== "not linearizable") return 1;
  let where = "";
  try {
    where = `${Deno.makeTempDirSync({ prefix: "distkit-demo-" })}/report.html`;
    Deno.writeTextFileSync(
      where,
      renderHtml(bad, { model: registerModel, title: "distkit demo: a stale read" }),
    );
    console.log(`  ok  report with the failing operation: ${where}`);
  } catch {
    console.log("  (run with --allow-write to get the HTML report of the stale read)");
  }
  return await kvStep();
}

/** The KV step of the tour. */
async function kvStep(): Promise<number> {
  console.log("\n7. The KV service: 3 replicas over TCP, 4 clerks; the leader is stopped halfway");
  const report = await kvTour();
  console.log(
    `  ${report.operations} operations in ${(report.wallMs / 1000).toFixed(1)} s; leader ` +
      `${report.leaders[0]}, then ${report.leaders[1]}`,
  );
  if (!report.appendsIntact || report.leaders[0] === report.leaders[1]) {
    console.error("  FAILED: an acknowledged append is missing or doubled, or no new leader");
    return 1;
  }
  console.log("  ok  every acknowledged append is there exactly once, in order");
  const result = checkOperations(kvModel, report.history, { timeoutMs: 10_000 });
  console.log(`  ok  the history is ${result.verdict} (${result.elapsedMs.toFixed(1)} ms)`);
  return result.verdict === "linearizable" ? 0 : 1;
}

const tour: Command = {
  summary:
    "a tour in one process: TCP calls, typed failures, simulation, Raft under a partition, the checker, KV",
  usage:
    "usage: distkit tour\n\nRuns the tour on 127.0.0.1 (needs --allow-net=127.0.0.1; --allow-write for the report).",
  run: async () => {
    const code = await runTour();
    return code !== 0 ? code : await raftAndCheckerTour();
  },
};

const demo: Command = {
  summary: "a 3-node KV cluster as processes; the leader is killed and restarted under load",
  usage: `usage: distkit demo [--seconds 10] [--clients 8]

Starts 3 \`distkit kv serve\` processes on 127.0.0.1 with their data in a fresh
folder, runs concurrent clients while it kills the leader with SIGKILL and
restarts it, then prints throughput, latency percentiles, the failover gap and
the linearizability verdict of the whole history, and writes the checker's
HTML report. Needs --allow-net=127.0.0.1 --allow-read --allow-write --allow-run.`,
  run: async (args) => {
    let values;
    try {
      ({ values } = parseFlags(args, { seconds: { type: "string" }, clients: { type: "string" } }));
    } catch (err) {
      console.error(`distkit demo: ${(err as Error).message}`);
      return 2;
    }
    const seconds = Number(values.seconds ?? 10);
    const clients = Number(values.clients ?? 8);
    if (!(seconds >= 3 && Number.isInteger(clients) && clients >= 1)) {
      console.error("distkit demo: --seconds must be at least 3 and --clients at least 1");
      return 2;
    }
    console.log("distkit demo: a replicated key/value cluster, its leader killed under load\n");
    const r = await clusterDemo({ seconds, clients, progress: (line) => console.log(line) });
    console.log(
      `\n${r.operations} operations in ${seconds} s: ${Math.round(r.opsPerSecond)}/s; latency ` +
        `p50 ${r.latency.p50.toFixed(1)} ms, p90 ${r.latency.p90.toFixed(1)} ms, p99 ` +
        `${r.latency.p99.toFixed(1)} ms, max ${r.latency.max.toFixed(0)} ms`,
    );
    console.log(
      `failover: node ${r.killed} killed; node ${r.newLeader} leads; the first operation ` +
        `after the kill completed ${r.failoverGapMs.toFixed(0)} ms later`,
    );
    console.log(
      r.appendsLost === 0
        ? "every acknowledged append is present exactly once"
        : `FAILED: ${r.appendsLost} acknowledged appends missing or doubled`,
    );
    console.log(`the whole history is ${r.verdict}; report: ${r.reportPath}`);
    return r.appendsLost === 0 && r.verdict === "linearizable" ? 0 : 1;
  },
};

/** Commands with no module: `distkit <command> [options]`. */
const topCommands: Record<string, Command> = { demo, tour, check: checkCommand };

const groups: Record<string, CommandGroup> = {
  net: netCommands,
  raft: raftCommands,
  kv: kvCommands,
  shard: shardCommands,
  mr: mrCommands,
  pb: pbCommands,
};

function topHelp(): string {
  const lines = [
    "usage: distkit <command> [options] | distkit <module> <command> [options] | distkit --version",
    "",
    "Build, run and test fault-tolerant distributed systems.",
    "",
    "commands:",
    ...Object.entries(topCommands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
    "",
    "modules:",
    ...Object.entries(groups).map(([name, g]) => `  ${name.padEnd(8)} ${g.summary}`),
    "",
    "Run `distkit <command> --help` for a command's options, `distkit <module> --help` for a",
    "module's commands.",
    "",
    EXIT_HELP,
  ];
  return lines.join("\n");
}

function groupHelp(name: string, group: CommandGroup): string {
  const width = Math.max(...Object.keys(group.commands).map((cmd) => cmd.length));
  return [
    `usage: distkit ${name} <command> [options]`,
    "",
    group.summary,
    "",
    "commands:",
    ...Object.entries(group.commands).map(([cmd, c]) => `  ${cmd.padEnd(width)}  ${c.summary}`),
    "",
    `Run \`distkit ${name} <command> --help\` for a command's options.`,
  ].join("\n");
}

function isHelp(arg: string | undefined): boolean {
  return arg === "--help" || arg === "-h" || arg === "help";
}

/**
 * The exit code of a command that failed inside distkit itself (a bug, not
 * an answer): 3, "no answer", never a code that reads as a verdict.
 *
 * @example
 * ```ts
 * import { INTERNAL_ERROR_EXIT } from "@distkit/distkit/cli";
 *
 * INTERNAL_ERROR_EXIT; // 3
 * ```
 */
export const INTERNAL_ERROR_EXIT = 3;

/**
 * The message printed for an internal error: what happened, that it is a
 * distkit bug, and how to report it.
 *
 * @example
 * ```ts
 * import { internalErrorMessage } from "@distkit/distkit/cli";
 *
 * internalErrorMessage("check", new RangeError("Map maximum size exceeded"));
 * ```
 */
export function internalErrorMessage(command: string, err: unknown): string {
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const stack = err instanceof Error && err.stack ? `\n${err.stack}` : "";
  return [
    `distkit${command ? ` ${command}` : ""}: internal error: ${what}`,
    `This is a bug in distkit, not an answer: the command stopped without one (exit ${INTERNAL_ERROR_EXIT}).`,
    "Please report it to the distkit maintainers (the project's issue tracker) with the command",
    "line, the input (or a smaller one that shows the same failure) and the trace below.",
  ].join("\n") + stack;
}

/**
 * Runs `run` so that an exception escaping it becomes the internal-error
 * message on stderr and exit code {@linkcode INTERNAL_ERROR_EXIT}: no failure
 * of distkit's own code exits with a code that means an answer. {@linkcode main}
 * runs every command through it.
 *
 * @example
 * ```ts
 * import { guarded } from "@distkit/distkit/cli";
 *
 * const code = await guarded("demo", () => Promise.reject(new Error("boom")));
 * code; // 3
 * ```
 */
export async function guarded(command: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    console.error(internalErrorMessage(command, err));
    return INTERNAL_ERROR_EXIT;
  }
}

/**
 * Runs the command line with `args` (without the program name) and resolves
 * with the exit code. The convention: 0 ok (for `check`: linearizable), 1 "no"
 * (not linearizable, an absent key, a cas mismatch), 2 usage error, 3 no
 * answer (unreachable, timed out, undecided within the budget, internal
 * error), 4 refused (cluster id, secret). An exception escaping a command is
 * an internal error: a message on stderr and 3 (see {@linkcode guarded}).
 *
 * @example
 * ```ts
 * import { main } from "@distkit/distkit/cli";
 *
 * await main(["--help"]); // prints the help, resolves with 0
 * ```
 */
export function main(args: string[]): Promise<number> {
  return guarded(commandName(args), () => dispatch(args));
}

/** The command `args` name, as messages show it: "check", "kv get", or "" for none. */
function commandName(args: string[]): string {
  const [first, second] = args;
  if (first === undefined || first.startsWith("-")) return "";
  if (Object.hasOwn(topCommands, first) || !Object.hasOwn(groups, first)) return first;
  return second === undefined || second.startsWith("-") ? first : `${first} ${second}`;
}

async function dispatch(args: string[]): Promise<number> {
  const [first, second, ...rest] = args;
  if (first === "--version") {
    console.log(`distkit ${VERSION}`);
    return 0;
  }
  if (first === undefined || isHelp(first)) {
    console.log(topHelp());
    return first === undefined ? 2 : 0;
  }
  const top = Object.hasOwn(topCommands, first) ? topCommands[first] : undefined;
  if (top !== undefined) {
    if (isHelp(second) || rest.some((a) => a === "--help" || a === "-h")) {
      console.log(top.usage);
      return 0;
    }
    return await top.run(args.slice(1));
  }
  const group = Object.hasOwn(groups, first) ? groups[first] : undefined;
  if (group === undefined) {
    console.error(`distkit: unknown module or command "${first}"\n\n${topHelp()}`);
    return 2;
  }
  if (second === undefined || isHelp(second)) {
    console.log(groupHelp(first, group));
    return second === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(group.commands, second) ? group.commands[second] : undefined;
  if (command === undefined) {
    console.error(`distkit ${first}: unknown command "${second}"\n\n${groupHelp(first, group)}`);
    return 2;
  }
  if (rest.some((a) => a === "--help" || a === "-h")) {
    console.log(command.help?.(rest) ?? command.usage);
    return 0;
  }
  return await command.run(rest);
}

if (import.meta.main) {
  // Failures outside the awaited command (a timer, a stray promise) are internal errors too.
  const crash = (event: Event, err: unknown) => {
    event.preventDefault();
    console.error(internalErrorMessage(commandName(Deno.args), err));
    Deno.exit(INTERNAL_ERROR_EXIT);
  };
  globalThis.addEventListener("error", (e) => crash(e, (e as ErrorEvent).error));
  globalThis.addEventListener(
    "unhandledrejection",
    (e) => crash(e, (e as PromiseRejectionEvent).reason),
  );
  Deno.exit(await main(Deno.args));
}
export type {
  CasOutcome,
  KvCallOptions,
  KvValue,
  KvWriteOptions,
  ServerAttempt,
} from "./kv/mod.ts";
export type { Session } from "./kv/mod.ts";
