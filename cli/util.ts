/**
 * Helpers shared by the `distkit` subcommands: argument parsing that names
 * an unknown option's nearest known one and prints the usage on a mistake,
 * the exit codes of every command ({@linkcode EXIT}), the deadline of a
 * client command that fails at once when nothing listens
 * ({@linkcode ClientDeadline}), the shared secret's sources, waiting for a
 * shutdown signal.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { RefusedError } from "../net/errors.ts";

/**
 * A mistake in a command's arguments, thrown from deep in a command and
 * turned by it into its usage text and exit code 2.
 */
export class UsageProblem extends Error {}

/** Exactly `n` operands, or a {@linkcode UsageProblem} that says what was expected. */
export function operands(positionals: string[], n: number, what: string): string[] {
  if (positionals.length !== n) throw new UsageProblem(`expected ${what}`);
  return positionals;
}

/** A command as `cli.ts` runs it. */
export interface CliCommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
  /** The help for these arguments, when it depends on them (default: `usage`). */
  help?(args: string[]): string;
}

/** The options of a command, as `node:util`'s `parseArgs` takes them. */
export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

/**
 * Old spellings still taken for one release, each with its new name: an old
 * spelling is accepted (with a one-line note on stderr) by every command
 * that takes the new name and not the old one.
 */
export const DEPRECATED_SPELLINGS: Readonly<Record<string, string>> = {
  cluster: "endpoints",
  ctrlers: "endpoints",
  view: "endpoints",
};

/** The options of every client and status command that prints a result: `-o json|text`, `--json`. */
export const OUTPUT_FLAGS = {
  output: { type: "string", short: "o" },
  json: { type: "boolean" },
} as const satisfies FlagSpec;

/** The help lines of {@linkcode OUTPUT_FLAGS}. */
export const OUTPUT_HELP =
  `  -o, --output text|json   how to print the result (default text); --json is -o json`;

/** What {@linkcode parseFlags} returns. */
export interface ParsedFlags {
  /** The options given, by name. */
  values: Record<string, string | boolean | undefined>;
  /** The operands. */
  positionals: string[];
}

/**
 * The exit codes of every `distkit` command (`distkit check` reports its
 * verdict with the same numbers: 1 not linearizable, 3 undecided).
 */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The answer is no: an absent key, a cas whose expected value did not match. */
  no: 1,
  /** The command line is wrong: an unknown option, a missing operand, a bad number. */
  usage: 2,
  /** No answer: nothing reachable, a timeout, a failure of the command itself. */
  noAnswer: 3,
  /** Refused: another cluster id, a shared secret that does not match. */
  refused: 4,
} as const;

/** The exit-status paragraph of the commands' help texts. */
export const EXIT_HELP =
  `exit status: 0 done, 1 no (absent key, cas mismatch, not linearizable), 2 usage error,
3 no answer (unreachable, timed out, undecided, failed), 4 refused (cluster id, secret)`;

/** The edit distance of `a` and `b`: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const d = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The known option closest to `given` (`--clustr` → `cluster`), if one is close enough. */
export function closestOption(given: string, known: readonly string[]): string | undefined {
  const name = given.replace(/^-+/, "").split("=")[0];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const option of known) {
    const d = option.startsWith(name) && name.length >= 2 ? 0.5 : editDistance(name, option);
    if (d < bestDistance) [best, bestDistance] = [option, d];
  }
  return bestDistance <= Math.max(1, Math.min(3, Math.floor(name.length / 3))) ? best : undefined;
}

/** The problem `parseArgs` found, said plainly: `unknown option --clustr (did you mean --cluster?)`. */
function plainProblem(err: Error & { code?: string }, options: FlagSpec): string {
  const quoted = /'([^' ]+)/.exec(err.message)?.[1];
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted !== undefined) {
    // An old spelling that is near is named by its new name.
    const old = Object.keys(DEPRECATED_SPELLINGS).filter((o) =>
      options[DEPRECATED_SPELLINGS[o]] !== undefined && options[o] === undefined
    );
    const near = closestOption(quoted, [...Object.keys(options), ...old]);
    const name = near !== undefined && old.includes(near) ? DEPRECATED_SPELLINGS[near] : near;
    return `unknown option ${quoted}` + (name === undefined ? "" : ` (did you mean --${name}?)`);
  }
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted !== undefined) {
    return err.message.includes("argument missing")
      ? `option ${quoted} needs a value`
      : `option ${quoted} takes no value`;
  }
  return err.message;
}

/**
 * Parses `args` against `options` (operands allowed).
 *
 * @throws {UsageProblem} naming the unknown option and the nearest known one,
 * or the option that lacks its value.
 */
export function parseFlags(args: string[], options: FlagSpec): ParsedFlags {
  // Old spellings of the options this command takes, accepted with a note.
  const old = Object.entries(DEPRECATED_SPELLINGS).filter(([from, to]) =>
    options[to] !== undefined && options[from] === undefined
  );
  const all: FlagSpec = { ...options, ...Object.fromEntries(old.map(([f, t]) => [f, options[t]])) };
  let parsed: ParsedFlags;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: all,
      strict: true,
      allowPositionals: true,
    });
    parsed = { values: values as ParsedFlags["values"], positionals };
  } catch (err) {
    throw new UsageProblem(plainProblem(err as Error, options));
  }
  for (const [from, to] of old) {
    if (parsed.values[from] === undefined) continue;
    if (parsed.values[to] !== undefined) {
      throw new UsageProblem(`--${from} is the old spelling of --${to}; give one of them`);
    }
    console.error(
      `note: --${from} is deprecated and goes away in the next release; use --${to}`,
    );
    parsed.values[to] = parsed.values[from];
    delete parsed.values[from];
  }
  return parsed;
}

/**
 * A duration option in milliseconds: `10s`, `500ms`, `1.5s`, `2m`, `1h`; a
 * bare number is still read as milliseconds, with a note on stderr that the
 * unit should be written (the old form goes away in the next release).
 * `durationMs("10s", "--timeout")` is 10000; undefined when not given.
 *
 * @throws {UsageProblem} for anything else.
 */
export function durationMs(text: string | boolean | undefined, what: string): number | undefined {
  if (typeof text !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = m === null ? NaN : Number(m[1]) * UNIT_MS[m[2] ?? "ms"];
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new UsageProblem(
      `${what} takes a duration like 10s or 500ms, got ${JSON.stringify(text)}`,
    );
  }
  if (m![2] === undefined) {
    console.error(
      `note: ${what} ${text} has no unit; it is read as ${text}ms (write ${text}ms or ` +
        `${ms / 1000}s: a bare number is deprecated)`,
    );
  }
  return ms;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The output format a command was asked for: `-o json`/`--json`, or text. */
export function outputFormat(values: ParsedFlags["values"]): "json" | "text" {
  const o = values.output;
  if (o !== undefined && o !== "json" && o !== "text") {
    throw new UsageProblem(`-o takes json or text, got ${JSON.stringify(o)}`);
  }
  return values.json === true || o === "json" ? "json" : "text";
}

/** The addresses of `--endpoints`, checked to be host:port. */
export function endpointsOf(values: ParsedFlags["values"]): string[] {
  const list = values.endpoints;
  if (typeof list !== "string") throw new UsageProblem("--endpoints is required");
  const addresses = list.split(",").map((a) => a.trim()).filter((a) => a !== "");
  if (addresses.length === 0) throw new UsageProblem("--endpoints lists no address");
  for (const a of addresses) {
    const colon = a.lastIndexOf(":");
    if (colon <= 0 || !/^\d+$/.test(a.slice(colon + 1))) {
      throw new UsageProblem(`--endpoints: ${JSON.stringify(a)} is not host:port`);
    }
  }
  return addresses;
}

/**
 * The help lines of `--endpoints` and `--timeout` for a client: `what` the
 * endpoints are, their old spelling, the default timeout.
 */
export function endpointsHelp(
  what: string,
  options: { old?: string; defaultTimeout?: string; note?: string } = {},
): string {
  const { old = "--cluster", defaultTimeout = "10s", note } = options;
  return `  --endpoints <list>       ${what}, host:port, comma-separated
                           (${
    note === undefined ? "" : `${note}; `
  }${old} is the deprecated spelling)
  --timeout <duration>     give up after this long: 10s, 500ms, 2m (default ${defaultTimeout})`;
}

/** Parses `args`, printing the problem and the usage on a mistake (then returns undefined). */
export function parseCommandArgs<T extends FlagSpec>(
  name: string,
  command: CliCommand,
  args: string[],
  options: T,
): ParsedFlags | undefined {
  try {
    return parseFlags(args, options);
  } catch (err) {
    usageError(name, command, (err as Error).message);
    return undefined;
  }
}

/** Prints the problem and the command's usage; returns {@linkcode EXIT}.usage. */
export function usageError(name: string, command: CliCommand, problem: string): number {
  console.error(`distkit ${name}: ${problem}\n\n${command.usage}`);
  return EXIT.usage;
}

/**
 * The exit code for a failure: {@linkcode EXIT}.usage for a
 * {@linkcode UsageProblem}, .refused when a server refused us (or we it),
 * .noAnswer for anything else (unreachable, timed out, our own failure).
 */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageProblem) return EXIT.usage;
  if (err instanceof RefusedError) return EXIT.refused;
  return EXIT.noAnswer;
}

export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      Deno.removeSignalListener("SIGINT", done);
      Deno.removeSignalListener("SIGTERM", done);
      resolve();
    };
    Deno.addSignalListener("SIGINT", done);
    Deno.addSignalListener("SIGTERM", done);
  });
}

/**
 * The shared secret: from --secret-file, else from DISTKIT_SECRET when the
 * environment may be read (--allow-env). Never from the command line, where
 * other users could see it.
 */
export function secretFrom(file: string | boolean | undefined, warn = false): string | undefined {
  if (typeof file === "string") {
    const secret = Deno.readTextFileSync(file).trim();
    if (secret === "") throw new Error(`the secret file ${file} is empty`);
    return secret;
  }
  const env = Deno.permissions.querySync({ name: "env", variable: "DISTKIT_SECRET" });
  if (env.state !== "granted") {
    if (!warn) return undefined;
    console.error(
      "note: DISTKIT_SECRET cannot be read without --allow-env=DISTKIT_SECRET; going on without a secret",
    );
    return undefined;
  }
  return Deno.env.get("DISTKIT_SECRET")?.trim() || undefined;
}

export const ACCESS_HELP =
  `  --cluster-id <id>        the cluster's id; nodes refuse peers and clients of another (default "")
  --secret-file <file>     a shared secret to prove (default: DISTKIT_SECRET, if --allow-env lets us read it)`;

export function count(text: string | boolean | undefined, what: string): number | undefined {
  if (text === undefined || typeof text === "boolean") return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new RangeError(`${what} must be a number >= 0, got ${text}`);
  }
  return n;
}

/**
 * No address of a client command accepted a connection: every one was
 * refused, so nothing listens there.
 */
export class NothingListeningError extends Error {
  /** Creates the error for the addresses that refused. */
  constructor(addresses: readonly string[]) {
    super(
      addresses.length === 1
        ? `cannot connect to ${addresses[0]} (connection refused); is a node running there?`
        : `cannot connect to any of ${addresses.join(", ")} (connection refused); ` +
          "are the nodes running there?",
    );
    this.name = "NothingListeningError";
  }
}

/** One address's state: `connection refused`, `accepts connections`, or the error. */
async function probe(address: string, signal: AbortSignal): Promise<string> {
  const colon = address.lastIndexOf(":");
  const hostname = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) return "not a host:port address";
  try {
    const conn = await Deno.connect({ hostname, port, transport: "tcp", signal });
    conn.close();
    return "accepts connections";
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
    return signal.aborted ? "no answer to a connection attempt" : (err as Error).message;
  }
}

/**
 * Each server a client tried, one a line (`  host:port: what happened`):
 * what the client itself last heard from it (more than a probe can tell),
 * and for one it never got to, what a probe finds now.
 */
export async function triedLines(
  tried: readonly { server: string; error: string }[],
): Promise<string> {
  const probes = AbortSignal.timeout(1000);
  const states = await Promise.all(
    tried.map((t) =>
      t.error === "not tried"
        ? probe(t.server, probes).then((state) => `not tried; a probe now: ${state}`)
        : t.error
    ),
  );
  return tried.map((t, i) => `  ${t.server}: ${states[i]}`).join("\n");
}

/**
 * The deadline of a client command, which also fails fast: its signal fires
 * after `timeoutMs`, or at once (with a {@linkcode NothingListeningError})
 * when every address refuses a connection. {@linkcode ClientDeadline.explain}
 * turns the command's failure into its message and exit code.
 */
export class ClientDeadline {
  readonly #controller = new AbortController();
  readonly #nothingListens = new AbortController();
  readonly #probes = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #probing: Promise<void>;
  readonly #addresses: readonly string[];
  readonly #timeoutMs: number;
  readonly #start = Date.now();

  /** Starts the clock and the connection probes. */
  constructor(addresses: readonly string[], timeoutMs: number) {
    this.#addresses = addresses;
    this.#timeoutMs = timeoutMs;
    this.#timer = setTimeout(
      () => this.#controller.abort(new Error(`no answer within ${formatMs(timeoutMs)}`)),
      timeoutMs,
    );
    // A probe ends by the deadline at the latest (a host that drops packets).
    const probes = AbortSignal.any([this.#probes.signal, this.#controller.signal]);
    this.#probing = Promise.all(addresses.map((a) => probe(a, probes))).then(
      (states) => {
        if (states.length > 0 && states.every((s) => s === "connection refused")) {
          const reason = new NothingListeningError(addresses);
          this.#controller.abort(reason);
          this.#nothingListens.abort(reason);
        }
      },
    );
  }

  /** Fires on the deadline, or when nothing listens at any address. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * The options for a clerk call that keeps the deadline itself: the time
   * left, and a signal that fires only when nothing listens. The clerk's
   * own timeout error can say what it was waiting for (the sharded clerk's
   * names the group), where one cut off by {@linkcode signal} cannot.
   */
  forClerk(): { signal: AbortSignal; deadlineMs: number } {
    return {
      signal: this.#nothingListens.signal,
      deadlineMs: Math.max(0, this.#timeoutMs - (Date.now() - this.#start)),
    };
  }

  /**
   * The message and exit code for `err`, the command's failure: what was
   * tried and how each address fared when the deadline passed.
   */
  async explain(
    err: unknown,
    tried?: readonly { server: string; error: string }[],
  ): Promise<{ code: number; message: string }> {
    // A client that failed on its own (an unreachable peer) may have beaten
    // the probes: their verdict, when it is "nothing listens", says it better.
    await this.#probing;
    const reason = this.#controller.signal.reason;
    if (reason instanceof NothingListeningError) {
      return { code: EXIT.noAnswer, message: reason.message };
    }
    if (err instanceof UsageProblem || err instanceof RefusedError) {
      return { code: exitCodeOf(err), message: (err as Error).message };
    }
    // A clerk that kept the deadline itself (forClerk) may time out just before the signal fires.
    // (Told by its deadline, not by `instanceof`: importing rsm/errors.ts here would load it at
    // every command's start-up, MapReduce's too: cli/lazy_test.ts.)
    const timedOut = this.#controller.signal.aborted ||
      (err instanceof Error && typeof (err as { deadlineMs?: unknown }).deadlineMs === "number");
    if (timedOut && tried !== undefined && tried.length > 0) {
      const lines = await triedLines(tried);
      return {
        code: EXIT.noAnswer,
        message: `no answer within ${formatMs(this.#timeoutMs)} (--timeout); tried:\n${lines}\n` +
          "A node that accepts connections but does not answer may have no leader " +
          "(a majority down?) or be another kind of server.",
      };
    }
    if (timedOut) {
      const probes = AbortSignal.timeout(1000);
      const states = await Promise.all(this.#addresses.map((a) => probe(a, probes)));
      const lines = this.#addresses.map((a, i) => `  ${a}: ${states[i]}`).join("\n");
      return {
        code: EXIT.noAnswer,
        message:
          `no answer within ${formatMs(this.#timeoutMs)} (--timeout). The nodes now:\n${lines}\n` +
          "A node that accepts connections but does not answer may have no leader " +
          "(a majority down?) or be another kind of server.",
      };
    }
    return { code: exitCodeOf(err), message: (err as Error).message };
  }

  /** Stops the clock and the probes. */
  async dispose(): Promise<void> {
    clearTimeout(this.#timer);
    this.#probes.abort();
    await this.#probing;
  }
}

/** `10s`, `1.5s`, `500ms`: a duration as the options take it. */
export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 100 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
