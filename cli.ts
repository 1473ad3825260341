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
import { type CliCommand, EXIT_HELP } from "./cli/util.ts";
import { DISTKIT_VERSION } from "./net/version.ts";
import { SUMMARIES } from "./cli/summaries.ts";

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
export type Command = CliCommand;

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

/**
 * Something to run, loaded when it runs: a command needs only its own code
 * (`distkit check` starts without Raft, TCP or the KV service).
 */
interface Lazy<T> {
  summary: string;
  load(): Promise<T>;
}

/** Commands with no module: `distkit <command> [options]`. */
const topCommands: Record<string, Lazy<Command>> = {
  demo: {
    summary: SUMMARIES.demo,
    load: async () => (await import("./cli/demo_command.ts")).demoCommand,
  },
  tour: {
    summary: SUMMARIES.tour,
    load: async () => (await import("./cli/tour_command.ts")).tourCommand,
  },
  check: {
    summary: SUMMARIES.check,
    load: async () => (await import("./cli/check_commands.ts")).checkCommand,
  },
};

const groups: Record<string, Lazy<CommandGroup>> = {
  net: {
    summary: SUMMARIES.net,
    load: async () => (await import("./cli/net_commands.ts")).netCommands,
  },
  raft: {
    summary: SUMMARIES.raft,
    load: async () => (await import("./cli/raft_commands.ts")).raftCommands,
  },
  kv: {
    summary: SUMMARIES.kv,
    load: async () => (await import("./cli/kv_commands.ts")).kvCommands,
  },
  shard: {
    summary: SUMMARIES.shard,
    load: async () => (await import("./cli/shard_commands.ts")).shardCommands,
  },
  mr: {
    summary: SUMMARIES.mr,
    load: async () => (await import("./cli/mr_commands.ts")).mrCommands,
  },
  pb: {
    summary: SUMMARIES.pb,
    load: async () => (await import("./cli/pb_commands.ts")).pbCommands,
  },
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
  const top = Object.hasOwn(topCommands, first) ? await topCommands[first].load() : undefined;
  if (top !== undefined) {
    if (isHelp(second) || rest.some((a) => a === "--help" || a === "-h")) {
      console.log(top.usage);
      return 0;
    }
    return await top.run(args.slice(1));
  }
  const group = Object.hasOwn(groups, first) ? await groups[first].load() : undefined;
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
