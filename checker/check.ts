/**
 * Checking a history against a model: partitions interleaved, the first
 * illegal one ends the search, a time and step budget turns into `unknown`.
 *
 * @module
 */
import { Search, type SearchModel, type SearchStatus } from "./search.ts";
import type {
  CheckResult,
  HistoryEvent,
  Model,
  NondeterministicModel,
  Operation,
  PartitionResult,
} from "./types.ts";

/**
 * Options for {@linkcode checkOperations} and {@linkcode checkEvents}.
 *
 * @example
 * ```ts
 * import type { CheckOptions } from "@distkit/distkit/checker";
 *
 * const options: CheckOptions = { timeoutMs: 10_000, details: true };
 * ```
 */
export interface CheckOptions {
  /** Give up (verdict `unknown`) after this many milliseconds. Default: no limit. */
  timeoutMs?: number;
  /** Give up after this many search steps in all. Default: no limit. */
  maxSteps?: number;
  /**
   * For a history that is not linearizable, compute the partial
   * linearizations of the failing partition (recorded during the search, at
   * little cost). Default true.
   */
  details?: boolean;
}

/**
 * Search steps a partition runs before the next one gets its turn: small
 * enough that a partition which fails quickly is found before the others
 * have done much work, large enough that switching costs nothing.
 */
const SLICE = 1024;
/** A slice that takes longer than this is shrunk, so the clock is read more often. */
const SLOW_SLICE_MS = 4;

function deterministic<S, I, O>(
  model: Model<S, I, O> | NondeterministicModel<S, I, O>,
): SearchModel<unknown> {
  const eq = model.equal ?? ((a: S, b: S) => a === b);
  if (!("nondeterministic" in model && model.nondeterministic)) {
    const m = model as Model<S, I, O>;
    return {
      init: () => m.init(),
      step: (s, i, o) => m.step(s as S, i as I, o as O),
      equal: (a, b) => eq(a as S, b as S),
      hash: m.hash ? (s) => m.hash!(s as S) : undefined,
      identity: m.equal === undefined,
    };
  }
  // Power-set construction: a state is the set of states the object may be in.
  const nd = model as NondeterministicModel<S, I, O>;
  const dedupe = (states: S[]) => {
    const out: S[] = [];
    for (const s of states) if (!out.some((t) => eq(s, t))) out.push(s);
    return out;
  };
  return {
    init: () => dedupe(nd.init()),
    step: (set, i, o) => {
      const next = dedupe((set as S[]).flatMap((s) => nd.step(s, i as I, o as O)));
      return next.length === 0 ? undefined : next;
    },
    equal: (a, b) => {
      const x = a as S[];
      const y = b as S[];
      return x.length === y.length && x.every((s) => y.some((t) => eq(s, t)));
    },
    // Order-independent, so equal sets hash alike.
    hash: nd.hash
      ? (set) => (set as S[]).reduce((h, s) => (h + nd.hash!(s)) | 0, 0) >>> 0
      : undefined,
    identity: false,
  };
}

/**
 * Checks whether a history of operations is linearizable with respect to
 * `model`.
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel } from "@distkit/distkit/checker";
 *
 * const result = checkOperations(kvModel, [
 *   { client: 0, input: { op: "put", key: "x", value: "1" }, call: 0, output: "", return: 10 },
 *   { client: 1, input: { op: "get", key: "x" }, call: 5, output: "1", return: 15 },
 * ]);
 * result.verdict; // "linearizable"
 * ```
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O> | NondeterministicModel<S, I, O>,
  history: Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  const t0 = performance.now();
  const deadline = options.timeoutMs === undefined ? Infinity : t0 + options.timeoutMs;
  const maxSteps = options.maxSteps ?? Infinity;
  const details = options.details ?? true;
  const parts = model.partition ? model.partition(history) : [history];
  const search = deterministic(model);
  const searches = parts.map((ops) => new Search(search, ops as Operation[], { partial: details }));
  const status: SearchStatus[] = searches.map((s) => s.status);
  let steps = 0;
  let illegal = -1;
  let outOfBudget = false;
  let running = status.filter((s) => s === "running").length;
  // The clock is read after every slice. A slice shrinks (down to one step)
  // while slices take long, so a model with slow steps overshoots the
  // deadline by at most a few steps; it is back to full size once steps are fast.
  let slice = 16; // back to SLICE as soon as a slice is fast
  // Round-robin over the undecided partitions; the first illegal one decides.
  while (running > 0 && illegal < 0 && !outOfBudget) {
    for (let p = 0; p < searches.length; p++) {
      if (status[p] !== "running") continue;
      const budget = Math.min(slice, maxSteps - steps);
      const started = performance.now();
      status[p] = searches[p].run(budget);
      const took = performance.now() - started;
      if (took > SLOW_SLICE_MS) slice = Math.max(1, slice >> 2);
      else if (took < SLOW_SLICE_MS / 4) slice = SLICE;
      steps += budget;
      if (status[p] === "illegal") {
        illegal = p;
        break;
      }
      if (status[p] !== "running") running--;
      if (performance.now() > deadline || steps >= maxSteps) {
        outOfBudget = running > 0;
        break;
      }
    }
  }
  const partitions: PartitionResult<I, O>[] = parts.map((operations, p) => {
    const verdict = status[p] === "linearizable"
      ? "linearizable"
      : status[p] === "illegal"
      ? "not linearizable"
      : "unknown";
    const result: PartitionResult<I, O> = { verdict, operations };
    if (verdict === "linearizable") result.linearization = searches[p].linearization();
    return result;
  });
  if (illegal >= 0) {
    if (details) partitions[illegal].partial = searches[illegal].longest();
    partitions[illegal].firstIllegal = searches[illegal].stuckOn;
  }
  const verdict = illegal >= 0 ? "not linearizable" : outOfBudget ? "unknown" : "linearizable";
  return { verdict, partitions, elapsedMs: performance.now() - t0 };
}

/**
 * Turns ordered call/return events into operations (times are the events'
 * positions); a call without a return is open, with an unknown outcome.
 *
 * @throws {Error} when a return has no earlier call of the same id.
 *
 * @example
 * ```ts
 * import { eventsToOperations } from "@distkit/distkit/checker";
 *
 * const ops = eventsToOperations([
 *   { kind: "call", id: 0, client: 0, value: "a" },
 *   { kind: "return", id: 0, client: 0, value: "b" },
 * ]);
 * ops[0].call; // 0
 * ops[0].return; // 1
 * ```
 */
export function eventsToOperations<I, O>(events: HistoryEvent<I, O>[]): Operation<I, O>[] {
  const open = new Map<number, Operation<I, O>>();
  const out: Operation<I, O>[] = [];
  events.forEach((e, t) => {
    if (e.kind === "call") {
      if (open.has(e.id)) throw new Error(`event ${t}: call id ${e.id} is already open`);
      const op: Operation<I, O> = {
        client: e.client,
        input: e.value,
        call: t,
        output: undefined as O,
        return: Infinity,
        unknown: true,
      };
      open.set(e.id, op);
      out.push(op);
    } else {
      const op = open.get(e.id);
      if (op === undefined) throw new Error(`event ${t}: return id ${e.id} has no open call`);
      open.delete(e.id);
      op.output = e.value;
      op.return = t;
      delete op.unknown;
    }
  });
  return out;
}

/**
 * Checks a history given as ordered call/return events.
 *
 * @example
 * ```ts
 * import { checkEvents, registerModel } from "@distkit/distkit/checker";
 *
 * const result = checkEvents(registerModel, [
 *   { kind: "call", id: 0, client: 0, value: { op: "write", value: 1 } },
 *   { kind: "call", id: 1, client: 1, value: { op: "read" } },
 *   { kind: "return", id: 1, client: 1, value: 0 },
 *   { kind: "return", id: 0, client: 0, value: undefined },
 * ]);
 * result.verdict; // "linearizable"
 * ```
 */
export function checkEvents<S, I, O>(
  model: Model<S, I, O> | NondeterministicModel<S, I, O>,
  events: HistoryEvent<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  return checkOperations(model, eventsToOperations(events), options);
}
