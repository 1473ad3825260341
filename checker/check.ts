/**
 * Checking a history against a model: partitions interleaved, the first
 * illegal one ends the search, a time and step budget turns into `unknown`.
 *
 * @module
 */
import { MAX_STATES_LIMIT, Search, type SearchModel, type SearchStatus } from "./search.ts";
import { type Contradiction, inferKv } from "./infer.ts";
import { kvModel, partitionBy } from "./models.ts";
import type {
  CheckResult,
  GaveUp,
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
   * Give up (verdict `unknown`) once the search holds this many states (its
   * cache of (linearized operations, model state) pairs, over all
   * partitions): the memory budget. Default {@linkcode DEFAULT_MAX_STATES};
   * at most 8,388,608 (V8's maps hold at most 2^24 entries, and the search
   * stays well under that whatever the budget).
   */
  maxStates?: number;
  /**
   * Decide {@linkcode kvModel} partitions whose writes are unique by
   * inference from the values read (Elle's method: reads of appended values
   * reveal the order of the writes) before any search: near-linear time,
   * and a contradiction explained in words. Partitions where it does not
   * apply (a value written twice, say) are searched. Default true.
   */
  inference?: boolean;
  /**
   * For a history that is not linearizable, compute the partial
   * linearizations of the failing partition (recorded during the search, at
   * little cost). Default true.
   */
  details?: boolean;
}

/**
 * The default memory budget of a check, in search states (see
 * {@linkcode CheckOptions.maxStates}): 4,194,304 cache entries. With the
 * key/value model's string states that is about 1 GiB (measured: 1.03 GiB
 * peak for the whole process on key "0" of c50-bad), well under a small
 * machine's memory; V8 itself would fail at 2^24 entries.
 *
 * @example
 * ```ts
 * import { checkOperations, DEFAULT_MAX_STATES, registerModel } from "@distkit/distkit/checker";
 *
 * checkOperations(registerModel, [], { maxStates: DEFAULT_MAX_STATES / 4 }).verdict; // "linearizable"
 * ```
 */
export const DEFAULT_MAX_STATES = 1 << 22;

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
  const maxStates = Math.min(options.maxStates ?? DEFAULT_MAX_STATES, MAX_STATES_LIMIT);
  if (!(maxStates >= 1)) throw new RangeError(`maxStates must be at least 1, got ${maxStates}`);
  const parts = model.partition
    ? model.partition(history)
    : model.partitionKey
    ? partitionBy(history, model.partitionKey)
    : [history];
  const search = deterministic(model);
  // Inference first: it decides most append-style partitions in near-linear time.
  const inferred = new Map<number, { linearization?: number[]; proof?: Contradiction }>();
  let illegal = -1;
  if ((options.inference ?? true) && model === (kvModel as unknown)) {
    for (let p = 0; p < parts.length && illegal < 0; p++) {
      const r = inferKv(parts[p] as Operation[]);
      if (r.verdict === "linearizable") inferred.set(p, { linearization: r.linearization });
      else if (r.verdict === "not linearizable") {
        inferred.set(p, { proof: r });
        illegal = p;
      }
    }
  }
  const searches = parts.map((ops, p) =>
    inferred.has(p) || illegal >= 0
      ? undefined
      : new Search(search, ops as Operation[], { partial: details, maxStates })
  );
  const status: SearchStatus[] = searches.map((s, p) =>
    s ? s.status : p === illegal ? "illegal" : inferred.has(p) ? "linearizable" : "running"
  );
  let steps = 0;
  let outOfBudget: GaveUp | undefined = undefined;
  let running = illegal >= 0 ? 0 : status.filter((s) => s === "running").length;
  const held = () => searches.reduce((sum, s) => sum + (s?.size ?? 0), 0);
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
      status[p] = searches[p]!.run(budget);
      const took = performance.now() - started;
      if (took > SLOW_SLICE_MS) slice = Math.max(1, slice >> 2);
      else if (took < SLOW_SLICE_MS / 4) slice = SLICE;
      steps += budget;
      if (status[p] === "illegal") {
        illegal = p;
        break;
      }
      if (status[p] === "full") {
        outOfBudget = "states";
        break;
      }
      if (status[p] !== "running") running--;
      if (running > 0 && held() >= maxStates) {
        outOfBudget = "states";
        break;
      }
      if (performance.now() > deadline || steps >= maxSteps) {
        if (running > 0) outOfBudget = steps >= maxSteps ? "steps" : "time";
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
    if (model.partitionKey && operations.length > 0) {
      result.key = model.partitionKey(operations[0].input);
    }
    const by = inferred.get(p);
    if (by) result.method = "inference";
    else if (searches[p] && verdict !== "unknown") result.method = "search";
    if (verdict === "linearizable") {
      result.linearization = by?.linearization ?? searches[p]!.linearization();
    } else if (verdict === "unknown" && details && searches[p] && illegal < 0) {
      // The furthest the search got: the partial linearizations so far.
      result.partial = searches[p]!.longest();
    }
    return result;
  });
  if (illegal >= 0) {
    const proof = inferred.get(illegal)?.proof;
    const failed = partitions[illegal];
    if (proof) {
      const number = numbering(history);
      failed.witnesses = proof.witnesses;
      failed.firstIllegal = proof.witnesses[0];
      failed.explanation = proof.explain((i) => `operation ${number(failed.operations[i])}`);
    } else {
      if (details) failed.partial = searches[illegal]!.longest();
      failed.firstIllegal = searches[illegal]!.stuckOn;
    }
  }
  const verdict = illegal >= 0 ? "not linearizable" : outOfBudget ? "unknown" : "linearizable";
  const result: CheckResult<I, O> = {
    verdict,
    partitions,
    elapsedMs: performance.now() - t0,
    states: held(),
  };
  if (verdict === "unknown") result.gaveUp = outOfBudget;
  return result;
}

/** An operation's 1-based number in the history (by identity; indexes only when asked). */
function numbering<I, O>(history: Operation<I, O>[]): (op: Operation<I, O>) => number {
  let index: Map<Operation<I, O>, number> | undefined;
  return (op) => {
    index ??= new Map(history.map((o, k) => [o, k + 1]));
    return index.get(op) ?? 0;
  };
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
