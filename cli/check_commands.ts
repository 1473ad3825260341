/**
 * The `distkit check` command: reads a history file, checks it for
 * linearizability and prints the verdict; optionally writes an HTML report.
 *
 * ```sh
 * deno run --allow-read cli.ts check ../shared/data/histories/kv/c10-ok.txt
 * deno run --allow-read --allow-write cli.ts check --html report.html history.jsonl
 * ```
 *
 * Exit codes (the project's convention): 0 linearizable, 1 not linearizable,
 * 2 usage error (bad options; a missing, unreadable or malformed file; a
 * model that does not fit), 3 no answer (the time or memory budget ran out
 * first, the report could not be written, or an internal error: never a
 * verdict's code).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { checkOperations, DEFAULT_MAX_STATES } from "../checker/check.ts";
import { MAX_STATES_LIMIT as MAX_STATES } from "../checker/search.ts";
import {
  acceptsInput,
  type HistoryFormat,
  HistoryFormatError,
  type ModelName,
  modelsByName,
  parseHistory,
} from "../checker/formats.ts";
import { partitionName, unknownReason } from "../checker/wording.ts";
import { UsageProblem } from "./util.ts";
import type { CheckResult, Operation } from "../checker/types.ts";
import { SUMMARIES } from "./summaries.ts";

/**
 * The exit codes of `distkit check`.
 *
 * @example
 * ```ts
 * import { CHECK_EXIT } from "./check_commands.ts";
 *
 * CHECK_EXIT["not linearizable"]; // 1
 * ```
 */
export const CHECK_EXIT = {
  "linearizable": 0,
  "not linearizable": 1,
  /** Bad options; a missing, unreadable or malformed file; a model that does not fit. */
  "usage": 2,
  /** No answer: a budget ran out, the report could not be written (internal errors: 3 too). */
  "unknown": 3,
} as const;

const MODEL_NAMES = Object.keys(modelsByName) as ModelName[];
const FORMATS = ["auto", "jsonl", "edn", "jepsen"];

const USAGE =
  `usage: distkit check [--model name] [--format auto|jsonl|edn|jepsen] [--html out.html]
                     [--timeout ms] [--max-states n] [--search-only] FILE...

Checks whether the history in FILE is linearizable and prints the verdict, the
time taken and, for a history that is not, the operation that could not be
placed. Given several files, checks each in turn in this one process and prints
one line per file (FILE: verdict, operations, time); the exit code is then the
highest of the files' codes. Needs --allow-read (and --allow-write for --html).

options:
  --model <name>     ${MODEL_NAMES.join(", ")} (default: the one the file suggests:
                     kv for EDN key/value files, cas-register for Jepsen logs,
                     the header or the inputs of JSON lines)
  --format <format>  auto (default: told from the first line), jsonl, edn or jepsen
  --html <file>      also write a self-contained HTML report to <file> (one FILE only)
  --timeout <ms>     give up with the verdict "unknown" after this long (default 60000)
  --max-states <n>   the memory budget: give up with "unknown" once the search holds n
                     states (default ${DEFAULT_MAX_STATES}, about 1 GiB; at most ${MAX_STATES})
  --search-only      no inference: decide kv histories by the general search alone

For the kv model, partitions whose written values tell the writes apart are decided
by inference from the values read (near-linear time); a violation is explained in
words. The others are searched (Wing & Gong with Lowe's memoization, as porcupine).

exit codes:
  0  linearizable
  1  not linearizable
  2  usage error: bad options; a missing, unreadable or malformed file; a model that
     does not fit the history
  3  no answer: the time or memory budget ran out first ("unknown", with the reason),
     the report could not be written, or an internal error (a distkit bug)`;

/**
 * Runs `distkit check` with the arguments after `check` and resolves with
 * the exit code (see {@linkcode CHECK_EXIT}). Prints to stdout, and errors to
 * stderr.
 *
 * @example
 * ```ts
 * import { runCheck } from "./check_commands.ts";
 *
 * const code = await runCheck(["--help"]); // prints the usage
 * code; // 0
 * ```
 */
export async function runCheck(args: string[]): Promise<number> {
  try {
    return await check(args);
  } catch (err) {
    if (err instanceof UsageProblem) {
      console.error(`distkit check: ${err.message}\n\n${USAGE}`);
      return CHECK_EXIT.usage;
    }
    throw err;
  }
}

async function check(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        model: { type: "string" },
        format: { type: "string" },
        html: { type: "string" },
        timeout: { type: "string" },
        "max-states": { type: "string" },
        "search-only": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageProblem((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageProblem("expected a history FILE");
  if (positionals.length > 1 && values.html !== undefined) {
    throw new UsageProblem("--html writes the report of one history: give one FILE with it");
  }
  const format = values.format ?? "auto";
  if (!FORMATS.includes(format)) {
    throw new UsageProblem(`--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
  }
  if (values.model !== undefined && !(MODEL_NAMES as string[]).includes(values.model)) {
    throw new UsageProblem(
      `--model must be one of ${MODEL_NAMES.join(", ")}, got "${values.model}"`,
    );
  }
  let timeoutMs = 60_000;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (values.timeout.trim() === "" || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new UsageProblem(
        `--timeout must be a non-negative number of milliseconds, got "${values.timeout}"`,
      );
    }
  }

  let maxStates = DEFAULT_MAX_STATES;
  if (values["max-states"] !== undefined) {
    maxStates = Number(values["max-states"]);
    if (!Number.isInteger(maxStates) || maxStates < 1 || maxStates > MAX_STATES) {
      throw new UsageProblem(
        `--max-states must be a whole number from 1 to ${MAX_STATES}, got "${
          values["max-states"]
        }"`,
      );
    }
  }

  const options: CheckFileOptions = {
    format: format as "auto" | HistoryFormat,
    model: values.model as ModelName | undefined,
    timeoutMs,
    maxStates,
    inference: !values["search-only"],
    html: values.html,
    brief: positionals.length > 1,
  };
  let worst = 0;
  for (const file of positionals) worst = Math.max(worst, await checkFile(file, options));
  return worst;
}

/** How `distkit check` checks each file. */
interface CheckFileOptions {
  format: "auto" | HistoryFormat;
  model: ModelName | undefined;
  timeoutMs: number;
  maxStates: number;
  inference: boolean;
  html: string | undefined;
  /** One line for the file (several files), not the full account. */
  brief: boolean;
}

/** Checks one history file, prints what it found, and returns its exit code. */
async function checkFile(file: string, options: CheckFileOptions): Promise<number> {
  const { format, timeoutMs, maxStates, brief } = options;
  const values = { model: options.model, html: options.html };
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    // Deno's messages say which permission flag is missing.
    console.error(`distkit check: cannot read ${file}: ${(err as Error).message}`);
    return CHECK_EXIT.usage;
  }

  let history;
  try {
    history = parseHistory(text, { format });
  } catch (err) {
    if (err instanceof HistoryFormatError) {
      console.error(
        `distkit check: ${file}:${err.line}: malformed ${
          format === "auto" ? "history" : `${format} history`
        }: expected ${err.expected}, found ${err.found}`,
      );
      return CHECK_EXIT.usage;
    }
    throw err;
  }

  const modelName = (values.model as ModelName | undefined) ?? history.model;
  if (modelName === undefined) {
    console.error(
      `distkit check: ${file}: the history does not say which model to use; pass --model (${
        MODEL_NAMES.join(", ")
      }) or start it with a line like {"model": "kv"}`,
    );
    return CHECK_EXIT.usage;
  }
  const misfit = history.operations.findIndex((op) => !acceptsInput(modelName, op.input));
  if (misfit >= 0) {
    const op = history.operations[misfit];
    console.error(
      `distkit check: ${file}: operation ${misfit + 1} (client ${op.client}, input ${
        JSON.stringify(op.input)
      }) is not an operation of the ${modelName} model; choose another --model`,
    );
    return CHECK_EXIT.usage;
  }

  const model = modelsByName[modelName];
  const result = checkOperations(model, history.operations, {
    timeoutMs,
    maxStates,
    inference: options.inference,
  });
  if (brief) {
    console.log(
      `${file}: ${result.verdict} (${modelName}, ${history.operations.length} operations, ${
        formatMs(result.elapsedMs)
      })`,
    );
    return CHECK_EXIT[result.verdict];
  }
  const lineTimes = history.format !== "jsonl";
  const source = values.model === undefined ? `suggested by the ${history.format} file` : "--model";
  console.log(`${file}: ${result.verdict}`);
  console.log(`  model:      ${modelName} (${source})`);
  console.log(
    `  operations: ${history.operations.length}${
      history.omitted > 0 ? ` (and ${history.omitted} failed writes left out)` : ""
    }, ${history.operations.filter((o) => o.unknown).length} with unknown outcome`,
  );
  const tally = (["not linearizable", "unknown", "linearizable"] as const)
    .map((v) => [result.partitions.filter((x) => x.verdict === v).length, v] as const)
    .filter(([n]) => n > 0).map(([n, v]) => `${n} ${v}`);
  console.log(
    `  partitions: ${result.partitions.length}${tally.length > 1 ? ` (${tally.join(", ")})` : ""}`,
  );
  if (result.verdict === "not linearizable") {
    for (const line of describeFailure(result, history.operations, model, lineTimes)) {
      console.log(`  ${line}`);
    }
  } else if (result.verdict === "unknown") {
    const decided = result.partitions.filter((p) => p.verdict !== "unknown").length;
    const why = result.gaveUp === "states"
      ? `when the search held ${result.states} states, its memory budget (--max-states ${maxStates})`
      : `after the ${timeoutMs} ms time budget (--timeout)`;
    console.log(
      `  gave up:    ${why}; ${decided} of ${result.partitions.length} partitions decided, all linearizable`,
    );
    const furthest = result.partitions.map((p, k) => ({
      k,
      p,
      longest: Math.max(0, ...(p.partial ?? []).map((seq) => seq.length)),
    })).filter((x) => x.p.verdict === "unknown" && x.longest > 0);
    for (const { k, p, longest } of furthest.slice(0, 3)) {
      console.log(
        `  furthest:   ${
          partitionName(result, k)
        }: ${longest} of its ${p.operations.length} operations linearized so far`,
      );
    }
  }
  console.log(`  time:       ${formatMs(result.elapsedMs)}`);

  if (values.html !== undefined) {
    // The report's code (a quarter of the checker's) loads only when a report is asked for.
    const { renderHtml } = await import("../checker/html.ts");
    const page = renderHtml(result, { model, title: `${file}: ${result.verdict}` });
    try {
      await Deno.writeTextFile(values.html, page);
    } catch (err) {
      console.error(
        `distkit check: cannot write the report ${values.html}: ${(err as Error).message}`,
      );
      return CHECK_EXIT.unknown;
    }
    console.log(`  report:     ${values.html}`);
  }
  return CHECK_EXIT[result.verdict];
}

function formatMs(ms: number): string {
  return ms < 10
    ? `${ms.toFixed(2)} ms`
    : ms < 10_000
    ? `${Math.round(ms)} ms`
    : `${(ms / 1000).toFixed(1)} s`;
}

function describeFailure(
  result: CheckResult,
  all: Operation[],
  model: { describeOperation?(input: unknown, output: unknown): string },
  lineTimes: boolean,
): string[] {
  const p = result.partitions.findIndex((part) => part.verdict === "not linearizable");
  if (p < 0) return [];
  const part = result.partitions[p];
  const unknown = result.partitions.filter((x) => x.verdict === "unknown").length;
  const out = [
    `failed:     ${partitionName(result, p)} (${part.operations.length} operations)`,
  ];
  if (unknown > 0) {
    out.push(
      `unknown:    ${unknown} of the ${result.partitions.length} partitions: ${
        unknownReason(result, result.partitions.findIndex((x) => x.verdict === "unknown"))
      }`,
    );
  }
  if (part.explanation) {
    out.push(`decided by: inference from the values read${lineTimes ? " (t = line number)" : ""}`);
    part.explanation.forEach((line, k) => out.push(`${k === 0 ? "why:" : "    "}        ${line}`));
    return out;
  }
  if (part.firstIllegal !== undefined && part.firstIllegal >= 0) {
    const op = part.operations[part.firstIllegal];
    const what = model.describeOperation
      ? model.describeOperation(op.input, op.unknown ? undefined : op.output)
      : `${JSON.stringify(op.input)} → ${op.unknown ? "?" : JSON.stringify(op.output)}`;
    const at = lineTimes ? "line" : "time";
    const span = op.unknown
      ? `called at ${at} ${op.call}, outcome unknown`
      : `${at}s ${op.call}–${op.return}`;
    out.push(
      `stuck on:   operation ${all.indexOf(op) + 1}: client ${op.client}, ${what} (${span})`,
    );
    if (part.partial !== undefined) {
      const longest = Math.max(0, ...part.partial.map((seq) => seq.length));
      out.push(
        `longest:    ${longest} of the partition's ${part.operations.length} operations linearize`,
      );
    }
  }
  return out;
}

/**
 * The `distkit check` command, as `cli.ts` registers it.
 *
 * @example
 * ```ts
 * import { checkCommand } from "./check_commands.ts";
 *
 * console.log(checkCommand.usage.split("\n")[0]); // "usage: distkit check ..."
 * ```
 */
export const checkCommand: {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
} = {
  summary: SUMMARIES.check,
  usage: USAGE,
  run: runCheck,
};
