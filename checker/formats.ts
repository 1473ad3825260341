/**
 * Readers for history files: distkit's own JSON lines, the EDN-like
 * Jepsen/Knossos format of 6.824-style key/value testers, and the log of
 * Jepsen's etcd tests.
 *
 * ## JSON lines (`jsonl`)
 *
 * One JSON object per line; blank lines are skipped. An optional first line
 * names the model: `{"model": "kv"}` (one of {@linkcode ModelName}). The other
 * lines are either all operations or all events.
 *
 * An operation has `client` (number or string), `input`, `call` and `return`
 * (numbers, `return` ≥ `call`), `output` (absent means `undefined`), and
 * optionally `"unknown": true` (the outcome is unknown: `return` and `output`
 * may be left out, and the operation stays open until the end) and an
 * `annotation` (a string shown in reports):
 *
 * ```json
 * {"model": "kv"}
 * {"client": 0, "input": {"op": "put", "key": "x", "value": "1"}, "call": 0, "output": "", "return": 10}
 * {"client": 1, "input": {"op": "get", "key": "x"}, "call": 5, "output": "1", "return": 15}
 * {"client": 2, "input": {"op": "append", "key": "x", "value": "2"}, "call": 12, "unknown": true}
 * ```
 *
 * An event has `kind` (`"call"` or `"return"`), an `id` (a number; a return
 * closes the open call of the same id), `client` and `value` (the call's input
 * or the return's output); times are the events' positions, and a call that is
 * never returned stays open with an unknown outcome (see
 * {@linkcode eventsToOperations}):
 *
 * ```json
 * {"kind": "call", "id": 0, "client": 0, "value": {"op": "write", "value": 1}}
 * {"kind": "call", "id": 1, "client": 1, "value": {"op": "read"}}
 * {"kind": "return", "id": 1, "client": 1, "value": 0}
 * {"kind": "return", "id": 0, "client": 0, "value": null}
 * ```
 *
 * Inputs are those of the models in `models.ts`: `{"op": "get" | "put" |
 * "append", "key", "value"}` for `kv` and `kv-map`, `{"op": "read"}` /
 * `{"op": "write", "value"}` for `register` (and `{"op": "cas", "from", "to"}`
 * for `cas-register`), `{"op": "add" | "remove", "value"}` / `{"op": "read"}`
 * for `set`, `{"op": "lock" | "unlock", "name"}` for `lock` (outputs true or
 * false). Without a header line the model is guessed from the inputs.
 *
 * ## EDN (`edn`)
 *
 * One Jepsen/Knossos operation map per line, an invocation and later its
 * completion by the same process:
 * `{:process 3, :type :invoke, :f :append, :key "7", :value "x 3 12 y"}` then
 * `{:process 3, :type :ok, :f :append, :key "7", :value "x 3 12 y"}`. `:f` is
 * `:get`, `:put` or `:append` with a string `:key` (model `kv`; a `:get`
 * completion carries the value read, nil reading as ""), or `:read`, `:write`
 * and `:cas` (model `cas-register`, as in the Jepsen log below). Times are line
 * numbers.
 *
 * ## Jepsen etcd log (`jepsen`)
 *
 * Lines `INFO  jepsen.util - <process> :<type> :<f> <value>`, fields separated
 * by tabs or runs of spaces. `:f` is `:read` (value nil on invoke; on `:ok`
 * nil or an integer), `:write` (an integer) or `:cas` (`[from to]`). Lines of
 * other loggers and of the `:nemesis` process are skipped. Model:
 * `cas-register`. Times are line numbers.
 *
 * ## Completions (EDN and Jepsen)
 *
 * - `:ok`: the operation happened, with that output.
 * - `:info` (indeterminate, for example timed out): the operation stays open
 *   until the end of the history with an unknown outcome
 *   (`Operation.unknown`); it may or may not have taken effect.
 * - `:fail` of a `:cas`: it executed and returned false (the value was not
 *   `from`), as porcupine and the etcd tests read it.
 * - `:fail` of a read (`:read`, `:get`; for example `:timed-out`): a read
 *   whose result is unknown; it returned at that line (output `undefined`).
 * - `:fail` of a write (`:write`, `:put`, `:append`): it did not take effect,
 *   so it is left out of the operations (counted in
 *   {@linkcode ParsedHistory.omitted}).
 * - an invocation without a completion by the end of the file: open, with an
 *   unknown outcome, like `:info`.
 *
 * @module
 */
import { eventsToOperations } from "./check.ts";
import {
  casRegisterModel,
  kvMapModel,
  kvModel,
  lockModel,
  registerModel,
  setModel,
} from "./models.ts";
import type { HistoryEvent, Model, NondeterministicModel, Operation } from "./types.ts";
import { kvServiceModel } from "./kv_model.ts";

/**
 * The history formats {@linkcode parseHistory} reads.
 *
 * @example
 * ```ts
 * import type { HistoryFormat } from "@distkit/distkit/checker";
 *
 * const format: HistoryFormat = "jepsen";
 * ```
 */
export type HistoryFormat = "jsonl" | "edn" | "jepsen";

/**
 * The names of the ready-made models, as the command line and history
 * headers spell them.
 *
 * @example
 * ```ts
 * import type { ModelName } from "@distkit/distkit/checker";
 *
 * const name: ModelName = "cas-register";
 * ```
 */
export type ModelName =
  | "kv"
  | "kv-map"
  | "kv-service"
  | "register"
  | "cas-register"
  | "set"
  | "lock";

/**
 * The ready-made models by name: `kv` ({@linkcode kvModel}), `kv-map`
 * ({@linkcode kvMapModel}), `kv-service` ({@linkcode kvServiceModel}), `register` ({@linkcode registerModel}),
 * `cas-register` ({@linkcode casRegisterModel}), `set`
 * ({@linkcode setModel}) and `lock` ({@linkcode lockModel}).
 *
 * @example
 * ```ts
 * import { checkOperations, modelsByName, parseHistory } from "@distkit/distkit/checker";
 *
 * const parsed = parseHistory(""); // an empty history: no model suggested
 * const model = modelsByName[parsed.model ?? "register"];
 * checkOperations(model, parsed.operations).verdict; // "linearizable"
 * ```
 */
export const modelsByName: Readonly<
  // deno-lint-ignore no-explicit-any
  Record<ModelName, Model<any, any, any> | NondeterministicModel<any, any, any>>
> = {
  "kv": kvModel,
  "kv-map": kvMapModel,
  "kv-service": kvServiceModel,
  "register": registerModel,
  "cas-register": casRegisterModel,
  "set": setModel,
  "lock": lockModel,
};

/** The `op` values each model accepts. */
const MODEL_OPS: Record<ModelName, readonly string[]> = {
  "kv": ["get", "put", "append"],
  "kv-map": ["get", "put", "append"],
  "kv-service": ["get", "put", "append", "delete", "cas"],
  "register": ["read", "write"],
  "cas-register": ["read", "write", "cas"],
  "set": ["add", "remove", "read"],
  "lock": ["lock", "unlock"],
};

/**
 * Whether `input` has the shape the named model expects (an object with one
 * of the model's `op` values and the fields that op needs). Feeding a model
 * inputs of another shape would make every history look not linearizable.
 *
 * @example
 * ```ts
 * import { acceptsInput } from "@distkit/distkit/checker";
 *
 * acceptsInput("kv", { op: "get", key: "x" }); // true
 * acceptsInput("kv", { op: "read" }); // false
 * ```
 */
export function acceptsInput(model: ModelName, input: unknown): boolean {
  if (typeof input !== "object" || input === null) return false;
  const i = input as Record<string, unknown>;
  if (typeof i.op !== "string" || !MODEL_OPS[model].includes(i.op)) return false;
  switch (model) {
    case "kv":
    case "kv-map":
      return typeof i.key === "string" &&
        (i.op === "get" || i.value === undefined || typeof i.value === "string");
    case "kv-service":
      return typeof i.key === "string" && (
        i.op === "get" || i.op === "delete" || typeof i.value === "string" &&
          (i.op !== "cas" || i.expected === null || typeof i.expected === "string")
      );
    case "register":
      return i.op === "read" || "value" in i;
    case "cas-register":
      return i.op === "read" || (i.op === "write" && isCasValue(i.value)) ||
        (i.op === "cas" && isCasValue(i.from) && isCasValue(i.to));
    case "set":
      return i.op === "read" || typeof i.value === "string";
    case "lock":
      return typeof i.name === "string";
  }
}

function isCasValue(v: unknown): boolean {
  return typeof v === "number" && Number.isFinite(v);
}

/**
 * A history read from a file.
 *
 * @example
 * ```ts
 * import { parseHistory, type ParsedHistory } from "@distkit/distkit/checker";
 *
 * const parsed: ParsedHistory = parseHistory("INFO  jepsen.util - 0\t:invoke\t:read\tnil");
 * parsed.model; // "cas-register"
 * parsed.operations[0].unknown; // true: never completed
 * ```
 */
export interface ParsedHistory {
  /** The format it was read as. */
  format: HistoryFormat;
  /** The model the file suggests (its header, its format or its inputs), if any. */
  model?: ModelName;
  /** The operations, in order of their calls. */
  operations: Operation[];
  /** Operations left out because they failed without taking effect (a `:fail` write). */
  omitted: number;
}

/**
 * Options for {@linkcode parseHistory}.
 *
 * @example
 * ```ts
 * import type { ParseHistoryOptions } from "@distkit/distkit/checker";
 *
 * const options: ParseHistoryOptions = { format: "edn" };
 * ```
 */
export interface ParseHistoryOptions {
  /** The format; `auto` (the default) tells it from the first non-empty line. */
  format?: "auto" | HistoryFormat;
}

/**
 * A history file that cannot be read: where, what was expected there and
 * what was found instead.
 *
 * @example
 * ```ts
 * import { HistoryFormatError, parseHistory } from "@distkit/distkit/checker";
 *
 * try {
 *   parseHistory('{"client": 0, "input": {"op": "read"}, "call": "soon"}', { format: "jsonl" });
 * } catch (err) {
 *   if (err instanceof HistoryFormatError) console.log(err.line, err.expected); // 1 "a number for \"call\""
 * }
 * ```
 */
export class HistoryFormatError extends Error {
  /** The 1-based line number. */
  readonly line: number;
  /** What the reader expected there. */
  readonly expected: string;
  /** What it found instead (shortened). */
  readonly found: string;

  /**
   * Creates the error; the message reads `line N: expected X, found Y`.
   *
   * @example
   * ```ts
   * import { HistoryFormatError } from "@distkit/distkit/checker";
   *
   * const err = new HistoryFormatError(3, { expected: "an integer", found: '"x"' });
   * err.message; // 'line 3: expected an integer, found "x"'
   * ```
   */
  constructor(line: number, problem: { expected: string; found: string }) {
    const { expected, found } = problem;
    super(`line ${line}: expected ${expected}, found ${found}`);
    this.name = "HistoryFormatError";
    this.line = line;
    this.expected = expected;
    this.found = found;
  }
}

function formatError(line: number, expected: string, found: string): HistoryFormatError {
  return new HistoryFormatError(line, { expected, found });
}

/** Shortens text for an error message. */
function show(text: string): string {
  const t = text.trim();
  if (t === "") return "an empty line";
  return JSON.stringify(t.length > 60 ? `${t.slice(0, 57)}...` : t);
}

function lines(text: string): string[] {
  return text.split(/\r\n|\n|\r/);
}

/**
 * Tells the format of a history from its first non-empty line: a JSON
 * object (`jsonl`), an EDN map starting `{:` (`edn`), or a log line of a
 * Jepsen logger (`jepsen`). An empty text is `jsonl`.
 *
 * @throws {HistoryFormatError} when the first line is none of these.
 *
 * @example
 * ```ts
 * import { detectFormat } from "@distkit/distkit/checker";
 *
 * detectFormat('\n{:process 0, :type :invoke, :f :get, :key "1", :value nil}'); // "edn"
 * detectFormat("INFO  jepsen.util - 3\t:invoke\t:write\t4"); // "jepsen"
 * ```
 */
export function detectFormat(text: string): HistoryFormat {
  const all = lines(text);
  const index = all.findIndex((l) => l.trim() !== "");
  if (index < 0) return "jsonl";
  const first = all[index].trim();
  if (/^\{\s*:/.test(first)) return "edn";
  if (first.startsWith("{")) return "jsonl";
  if (/^[A-Z]+\s+jepsen\.[\w.-]+\s+-\s/.test(first)) return "jepsen";
  throw formatError(
    index + 1,
    'a history: a JSON object ({"client": ...} or {"model": ...}), an EDN map ({:process ...}) or a Jepsen log line (INFO  jepsen.util - ...)',
    show(first),
  );
}

/**
 * Reads a history in any of the supported formats (see the module
 * documentation for each); `format` defaults to `auto`.
 *
 * @throws {HistoryFormatError} for malformed input, naming the line, what
 * was expected and what was found.
 *
 * @example
 * ```ts
 * import { checkOperations, modelsByName, parseHistory } from "@distkit/distkit/checker";
 *
 * const parsed = parseHistory([
 *   '{:process 0, :type :invoke, :f :put, :key "a", :value "1"}',
 *   '{:process 1, :type :invoke, :f :get, :key "a", :value nil}',
 *   '{:process 0, :type :ok, :f :put, :key "a", :value "1"}',
 *   '{:process 1, :type :ok, :f :get, :key "a", :value "1"}',
 * ].join("\n"));
 * parsed.format; // "edn"
 * checkOperations(modelsByName[parsed.model!], parsed.operations).verdict; // "linearizable"
 * ```
 */
export function parseHistory(text: string, options: ParseHistoryOptions = {}): ParsedHistory {
  const format = options.format === undefined || options.format === "auto"
    ? detectFormat(text)
    : options.format;
  switch (format) {
    case "jsonl":
      return parseJsonLines(text);
    case "edn":
      return parseEdn(text);
    case "jepsen":
      return parseJepsenLog(text);
    default:
      throw new TypeError(`unknown history format "${format}": use auto, jsonl, edn or jepsen`);
  }
}

// ---------------------------------------------------------------------------
// JSON lines

const MODEL_NAMES = Object.keys(MODEL_OPS) as ModelName[];

function describeJson(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function parseJsonLines(text: string): ParsedHistory {
  let model: ModelName | undefined;
  let kind: "operations" | "events" | undefined;
  let kindLine = 0;
  const operations: Operation[] = [];
  const events: HistoryEvent[] = [];
  const open = new Set<number>();
  let first = true;
  lines(text).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw formatError(
        line,
        "a JSON object",
        `${show(raw)} (${(err as Error).message})`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw formatError(line, "a JSON object", show(raw));
    }
    const o = value as Record<string, unknown>;
    const isFirst = first;
    first = false;
    if (isFirst && "model" in o && !("client" in o) && !("kind" in o)) {
      if (typeof o.model !== "string" || !(MODEL_NAMES as string[]).includes(o.model)) {
        throw formatError(
          line,
          `"model" to be one of ${MODEL_NAMES.map((m) => `"${m}"`).join(", ")}`,
          describeJson(o.model),
        );
      }
      model = o.model as ModelName;
      return;
    }
    const thisKind = "kind" in o ? "events" : "operations";
    if (kind === undefined) {
      kind = thisKind;
      kindLine = line;
    } else if (kind !== thisKind) {
      throw formatError(
        line,
        kind === "events"
          ? `an event ({"kind": ...}) like line ${kindLine}'s`
          : `an operation ({"client": ..., "call": ...}) like line ${kindLine}'s`,
        show(raw),
      );
    }
    if (thisKind === "events") events.push(readEvent(o, line, open));
    else operations.push(readOperation(o, line));
  });
  const ops = kind === "events" ? eventsToOperations(events) : operations;
  return { format: "jsonl", model: model ?? guessModel(ops), operations: ops, omitted: 0 };
}

function readClient(o: Record<string, unknown>, line: number): number | string {
  const client = o.client;
  if (typeof client === "string" || (typeof client === "number" && Number.isFinite(client))) {
    return client;
  }
  throw formatError(line, 'a number or string for "client"', describeJson(client));
}

function readTime(o: Record<string, unknown>, field: string, line: number): number {
  const t = o[field];
  if (typeof t !== "number" || !Number.isFinite(t)) {
    throw formatError(line, `a number for "${field}"`, describeJson(t));
  }
  return t;
}

function readOperation(o: Record<string, unknown>, line: number): Operation {
  const client = readClient(o, line);
  if (!("input" in o)) throw formatError(line, 'an "input" field', "none");
  const call = readTime(o, "call", line);
  if (o.unknown !== undefined && typeof o.unknown !== "boolean") {
    throw formatError(line, 'true or false for "unknown"', describeJson(o.unknown));
  }
  if (o.annotation !== undefined && typeof o.annotation !== "string") {
    throw formatError(line, 'a string for "annotation"', describeJson(o.annotation));
  }
  const op: Operation = { client, input: o.input, call, output: o.output, return: Infinity };
  if (o.unknown === true) {
    op.unknown = true;
    op.output = undefined;
    if (o.return !== undefined && o.return !== null) op.return = readTime(o, "return", line);
  } else {
    op.return = readTime(o, "return", line);
    if (op.return < call) {
      throw formatError(
        line,
        `"return" at or after "call" (${call})`,
        describeJson(op.return),
      );
    }
  }
  if (o.annotation !== undefined) op.annotation = o.annotation as string;
  return op;
}

function readEvent(o: Record<string, unknown>, line: number, open: Set<number>): HistoryEvent {
  if (o.kind !== "call" && o.kind !== "return") {
    throw formatError(line, '"kind" to be "call" or "return"', describeJson(o.kind));
  }
  const id = o.id;
  if (typeof id !== "number" || !Number.isFinite(id)) {
    throw formatError(line, 'a number for "id"', describeJson(id));
  }
  const client = readClient(o, line);
  if (o.kind === "call") {
    if (open.has(id)) {
      throw formatError(line, `a new id (call ${id} is still open)`, `call ${id}`);
    }
    if (!("value" in o)) throw formatError(line, 'a "value" (the input)', "none");
    open.add(id);
    return { kind: "call", id, client, value: o.value };
  }
  if (!open.has(id)) {
    throw formatError(line, `an open call with id ${id} before its return`, "none");
  }
  open.delete(id);
  return { kind: "return", id, client, value: o.value };
}

/** The model the inputs fit, when they all fit one. */
function guessModel(operations: Operation[]): ModelName | undefined {
  if (operations.length === 0) return undefined;
  const candidates: ModelName[] = ["kv", "kv-service", "register", "cas-register", "set", "lock"];
  return candidates.find((m) => operations.every((op) => acceptsInput(m, op.input)));
}

// ---------------------------------------------------------------------------
// EDN and Jepsen logs: invocations and completions matched per process.

type Completion = "ok" | "fail" | "info";

interface Pending {
  op: Operation;
  f: string;
  line: number;
  index: number;
}

/** Matches invocations with completions per process, with Jepsen's semantics. */
class ProcessHistory {
  readonly #ops: (Operation | null)[] = [];
  readonly #pending = new Map<string, Pending>();
  #omitted = 0;

  invoke(process: string, f: string, input: unknown, line: number, found: string): void {
    const busy = this.#pending.get(process);
    if (busy !== undefined) {
      throw formatError(
        line,
        `a completion (:ok, :fail or :info) of process ${process}'s :${busy.f} invoked on line ${busy.line}`,
        found,
      );
    }
    const op: Operation = {
      client: clientId(process),
      input,
      call: line,
      output: undefined,
      return: Infinity,
    };
    this.#pending.set(process, { op, f, line, index: this.#ops.length });
    this.#ops.push(op);
  }

  /** Completes the pending operation; `output` is used for `ok` (and `fail` of a cas). */
  complete(
    process: string,
    type: Completion,
    f: string,
    line: number,
    found: string,
    output: () => unknown,
  ): Pending {
    const pending = this.#pending.get(process);
    if (pending === undefined) {
      throw formatError(
        line,
        `an :invoke by process ${process} before its :${type}`,
        found,
      );
    }
    if (pending.f !== f) {
      throw formatError(
        line,
        `:${pending.f}, the function process ${process} invoked on line ${pending.line}`,
        `:${f}`,
      );
    }
    this.#pending.delete(process);
    const op = pending.op;
    if (type === "ok") {
      op.output = output();
      op.return = line;
    } else if (type === "info") {
      op.unknown = true;
      op.annotation = `indeterminate (:info on line ${line})`;
    } else if (f === "cas") {
      op.output = false;
      op.return = line;
      op.annotation = `:fail on line ${line}`;
    } else if (f === "read" || f === "get") {
      op.output = undefined;
      op.return = line;
      op.annotation = `failed read, result unknown (:fail on line ${line})`;
    } else {
      this.#ops[pending.index] = null;
      this.#omitted++;
    }
    return pending;
  }

  finish(format: HistoryFormat, model: ModelName | undefined): ParsedHistory {
    for (const pending of this.#pending.values()) {
      pending.op.unknown = true;
      pending.op.annotation = "never completed";
    }
    return {
      format,
      model,
      operations: this.#ops.filter((op): op is Operation => op !== null),
      omitted: this.#omitted,
    };
  }
}

function clientId(process: string): number | string {
  return /^-?\d+$/.test(process) ? Number(process) : process;
}

const TYPES = ["invoke", "ok", "fail", "info"];

// --- Jepsen log -------------------------------------------------------------

const INTEGER = /^-?\d+$/;

function parseJepsenLog(text: string): ParsedHistory {
  const history = new ProcessHistory();
  const shape = "INFO  jepsen.util - <process> :<type> :<f> <value>";
  lines(text).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "") return;
    const fields = trimmed.split(/\s+/);
    const found = show(raw);
    if (fields.length < 3 || fields[2] !== "-" || !/^[A-Z]+$/.test(fields[0])) {
      throw formatError(line, `a Jepsen log line (${shape})`, found);
    }
    if (fields[1] !== "jepsen.util") return; // another logger's line
    const [process, typeField, fField, ...rest] = fields.slice(3);
    if (process === ":nemesis") return;
    if (process === undefined || !INTEGER.test(process)) {
      throw formatError(
        line,
        `a process number after "jepsen.util -" (${shape})`,
        found,
      );
    }
    const type = typeField?.startsWith(":") ? typeField.slice(1) : undefined;
    if (type === undefined || !TYPES.includes(type)) {
      throw formatError(
        line,
        "a type :invoke, :ok, :fail or :info after the process",
        show(typeField ?? ""),
      );
    }
    const f = fField?.startsWith(":") ? fField.slice(1) : undefined;
    if (f !== "read" && f !== "write" && f !== "cas") {
      throw formatError(line, "a function :read, :write or :cas", show(fField ?? ""));
    }
    const value = rest.join(" ");
    const integer = (what: string): number => {
      if (!INTEGER.test(value)) throw formatError(line, what, show(value));
      return Number(value);
    };
    const pair = (): [number, number] => {
      const m = /^\[\s*(-?\d+)[\s,]+(-?\d+)\s*\]$/.exec(value);
      if (m === null) throw formatError(line, "[from to] for :cas", show(value));
      return [Number(m[1]), Number(m[2])];
    };
    if (type === "invoke") {
      let input: unknown;
      if (f === "read") {
        if (value !== "nil") {
          throw formatError(line, "nil for an :invoke :read", show(value));
        }
        input = { op: "read" };
      } else if (f === "write") {
        input = { op: "write", value: integer("an integer for :write") };
      } else {
        const [from, to] = pair();
        input = { op: "cas", from, to };
      }
      history.invoke(process, f, input, line, found);
      return;
    }
    const done = history.complete(process, type as Completion, f, line, found, () => {
      if (f === "read") return value === "nil" ? null : integer("nil or an integer for :ok :read");
      return f === "cas" ? true : undefined;
    });
    if (type === "ok" || (type === "fail" && f === "cas")) {
      // The completion repeats the invocation's argument.
      const input = done.op.input as { value?: number; from?: number; to?: number };
      if (f === "write" && integer("an integer for :write") !== input.value) {
        throw formatError(
          line,
          `${input.value}, the value written on line ${done.line}`,
          show(value),
        );
      }
      if (f === "cas") {
        const [from, to] = pair();
        if (from !== input.from || to !== input.to) {
          throw formatError(
            line,
            `[${input.from} ${input.to}], the cas invoked on line ${done.line}`,
            show(value),
          );
        }
      }
    }
  });
  return history.finish("jepsen", "cas-register");
}

// --- EDN ----------------------------------------------------------------------

type EdnValue =
  | { kind: "keyword"; name: string }
  | { kind: "string"; value: string }
  | { kind: "number"; value: number }
  | { kind: "nil" }
  | { kind: "boolean"; value: boolean }
  | { kind: "vector"; items: EdnValue[] };

/** A reader for one line holding one EDN map of simple values. */
class EdnReader {
  #pos = 0;
  constructor(readonly text: string, readonly line: number) {}

  #fail(expected: string): never {
    const rest = this.text.slice(this.#pos);
    throw formatError(
      this.line,
      `${expected} at column ${this.#pos + 1}`,
      rest.trim() === "" ? "the end of the line" : show(rest),
    );
  }

  #skip(): void {
    while (this.#pos < this.text.length && /[\s,]/.test(this.text[this.#pos])) this.#pos++;
  }

  map(): Map<string, EdnValue> {
    this.#skip();
    if (this.text[this.#pos] !== "{") this.#fail('an EDN map starting with "{"');
    this.#pos++;
    const out = new Map<string, EdnValue>();
    for (;;) {
      this.#skip();
      if (this.text[this.#pos] === "}") {
        this.#pos++;
        break;
      }
      if (this.#pos >= this.text.length) this.#fail('a keyword or "}"');
      if (this.text[this.#pos] !== ":") this.#fail('a keyword (":name") or "}"');
      const key = this.#value();
      if (key.kind !== "keyword") this.#fail("a keyword");
      this.#skip();
      if (this.text[this.#pos] === "}" || this.#pos >= this.text.length) {
        this.#fail(`a value for :${key.name}`);
      }
      out.set(key.name, this.#value());
    }
    this.#skip();
    if (this.#pos < this.text.length) this.#fail("the end of the line after the map");
    return out;
  }

  #value(): EdnValue {
    const c = this.text[this.#pos];
    if (c === '"') return this.#string();
    if (c === "[") {
      this.#pos++;
      const items: EdnValue[] = [];
      for (;;) {
        this.#skip();
        if (this.text[this.#pos] === "]") {
          this.#pos++;
          return { kind: "vector", items };
        }
        if (this.#pos >= this.text.length) this.#fail('a value or "]"');
        items.push(this.#value());
      }
    }
    const m = /^[^\s,{}[\]"]+/.exec(this.text.slice(this.#pos));
    if (m === null) this.#fail("a value");
    const token = m[0];
    if (c === ":") {
      if (token.length === 1) this.#fail("a keyword name");
      this.#pos += token.length;
      return { kind: "keyword", name: token.slice(1) };
    }
    if (token === "nil") {
      this.#pos += token.length;
      return { kind: "nil" };
    }
    if (token === "true" || token === "false") {
      this.#pos += token.length;
      return { kind: "boolean", value: token === "true" };
    }
    if (/^[-+]?\d+(\.\d+)?$/.test(token)) {
      this.#pos += token.length;
      return { kind: "number", value: Number(token) };
    }
    this.#fail("a keyword, string, number, nil, true, false or vector");
  }

  #string(): EdnValue {
    // Runs without escapes are taken as slices: a value read back from an append history is
    // long, and adding it one character at a time made a rope of a node per character.
    let out = "";
    this.#pos++;
    while (this.#pos < this.text.length) {
      const quote = this.text.indexOf('"', this.#pos);
      const backslash = this.text.indexOf("\\", this.#pos);
      const stop = backslash >= 0 && (quote < 0 || backslash < quote) ? backslash : quote;
      if (stop < 0) break;
      out += this.text.slice(this.#pos, stop);
      this.#pos = stop + 1;
      if (stop === quote) return { kind: "string", value: out };
      const e = this.text[this.#pos++];
      const escapes: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\" };
      if (e === undefined || !(e in escapes)) {
        this.#pos -= 2;
        this.#fail('a string escape (\\", \\\\, \\n, \\t or \\r)');
      }
      out += escapes[e];
    }
    this.#pos = this.text.length;
    this.#fail('a closing " of the string');
  }
}

function ednText(v: EdnValue): string {
  switch (v.kind) {
    case "keyword":
      return `:${v.name}`;
    case "string":
      return JSON.stringify(v.value);
    case "number":
      return String(v.value);
    case "nil":
      return "nil";
    case "boolean":
      return String(v.value);
    case "vector":
      return `[${v.items.map(ednText).join(" ")}]`;
  }
}

const KV_FS = ["get", "put", "append"];
const REGISTER_FS = ["read", "write", "cas"];

function parseEdn(text: string): ParsedHistory {
  const history = new ProcessHistory();
  let family: "kv" | "cas-register" | undefined;
  let familyLine = 0;
  lines(text).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    const map = new EdnReader(raw, line).map();
    const found = show(raw);
    const field = (name: string): EdnValue => {
      const v = map.get(name);
      if (v === undefined) throw formatError(line, `a :${name} field`, found);
      return v;
    };
    const process = field("process");
    if (process.kind === "keyword" && process.name === "nemesis") return;
    if (process.kind !== "number" || !Number.isInteger(process.value)) {
      throw formatError(line, "an integer :process (or :nemesis)", ednText(process));
    }
    const typeValue = field("type");
    if (typeValue.kind !== "keyword" || !TYPES.includes(typeValue.name)) {
      throw formatError(line, ":type :invoke, :ok, :fail or :info", ednText(typeValue));
    }
    const type = typeValue.name;
    const fValue = field("f");
    const f = fValue.kind === "keyword" ? fValue.name : "";
    const thisFamily = KV_FS.includes(f)
      ? "kv"
      : REGISTER_FS.includes(f)
      ? "cas-register"
      : undefined;
    if (thisFamily === undefined) {
      throw formatError(
        line,
        ":f :get, :put or :append (key/value) or :read, :write or :cas (register)",
        ednText(fValue),
      );
    }
    if (family === undefined) {
      family = thisFamily;
      familyLine = line;
    } else if (family !== thisFamily) {
      throw formatError(
        line,
        `${
          family === "kv" ? ":get, :put or :append" : ":read, :write or :cas"
        } like line ${familyLine}`,
        `:${f}`,
      );
    }
    const value = map.get("value") ?? { kind: "nil" };
    const key = (): string => {
      const k = field("key");
      if (k.kind === "string") return k.value;
      if (k.kind === "number" || k.kind === "keyword") return ednText(k).replace(/^:/, "");
      throw formatError(line, "a string :key", ednText(k));
    };
    const str = (what: string): string => {
      if (value.kind !== "string") throw formatError(line, what, ednText(value));
      return value.value;
    };
    const num = (what: string): number => {
      if (value.kind !== "number") throw formatError(line, what, ednText(value));
      return value.value;
    };
    const pair = (): [number, number] => {
      if (
        value.kind !== "vector" || value.items.length !== 2 ||
        value.items.some((i) => i.kind !== "number")
      ) {
        throw formatError(line, "[from to] for :cas", ednText(value));
      }
      return value.items.map((i) => (i as { value: number }).value) as [number, number];
    };
    const process_ = String(process.value);
    if (type === "invoke") {
      let input: unknown;
      switch (f) {
        case "get":
          input = { op: "get", key: key() };
          break;
        case "put":
        case "append":
          input = { op: f, key: key(), value: str(`a string :value for :${f}`) };
          break;
        case "read":
          input = { op: "read" };
          break;
        case "write":
          input = { op: "write", value: num("a number :value for :write") };
          break;
        default: {
          const [from, to] = pair();
          input = { op: "cas", from, to };
        }
      }
      history.invoke(process_, f, input, line, found);
      return;
    }
    const done = history.complete(process_, type as Completion, f, line, found, () => {
      switch (f) {
        case "get":
          return value.kind === "nil" ? "" : str("a string or nil :value for :ok :get");
        case "put":
        case "append":
          return "";
        case "read":
          return value.kind === "nil" ? null : num("a number or nil :value for :ok :read");
        case "write":
          return undefined;
        default:
          return true;
      }
    });
    if (thisFamily === "kv" && map.has("key")) {
      const invoked = (done.op.input as { key: string }).key;
      if (key() !== invoked) {
        throw formatError(
          line,
          `:key ${JSON.stringify(invoked)}, the key invoked on line ${done.line}`,
          ednText(field("key")),
        );
      }
    }
  });
  return history.finish("edn", family ?? "kv");
}
