/**
 * Histories and models for the linearizability checker.
 *
 * @module
 */

/**
 * One completed (or open) operation of a history.
 *
 * An operation whose outcome is unknown (it timed out, or its client
 * crashed) has `unknown: true`: it stays open until the end of the history
 * (its `return` is ignored) and the model is stepped with `output`
 * undefined, meaning "any outcome".
 *
 * @example
 * ```ts
 * import type { Operation } from "@distkit/distkit/checker";
 *
 * const put: Operation<{ op: string; key: string; value: string }, string> = {
 *   client: 1, input: { op: "put", key: "x", value: "1" }, call: 10, output: "", return: 20,
 * };
 * ```
 */
export interface Operation<I = unknown, O = unknown> {
  /** Who made the call (a client's operations never overlap). */
  client: number | string;
  /** The call's input. */
  input: I;
  /** When the call was made. */
  call: number;
  /** The returned output (undefined when `unknown`). */
  output: O;
  /** When it returned (ignored when `unknown`). */
  return: number;
  /** The outcome is unknown: the operation may have taken effect at any time after its call, or never. */
  unknown?: boolean;
  /** A note shown in the report (for example "leader killed here"). */
  annotation?: string;
}

/**
 * A history as ordered call/return events, the other way to give one.
 * Each call is matched with the return of the same `id`; a call without a
 * return stays open (unknown outcome).
 *
 * @example
 * ```ts
 * import type { HistoryEvent } from "@distkit/distkit/checker";
 *
 * const events: HistoryEvent<string, string>[] = [
 *   { kind: "call", id: 0, client: 0, value: "get x" },
 *   { kind: "return", id: 0, client: 0, value: "1" },
 * ];
 * ```
 */
export type HistoryEvent<I = unknown, O = unknown> =
  | { kind: "call"; id: number; client: number | string; value: I }
  | { kind: "return"; id: number; client: number | string; value: O };

/**
 * A sequential specification: what a correct single copy of the object does.
 *
 * `step` returns the next state, or `undefined` when `output` is not a
 * possible answer to `input` in `state`. With `unknown` outputs (undefined),
 * it must accept any outcome. A nondeterministic model returns every
 * possible next state as an array (see {@linkcode NondeterministicModel}).
 *
 * @example A register
 * ```ts
 * import type { Model } from "@distkit/distkit/checker";
 *
 * type In = { op: "read" } | { op: "write"; value: number };
 * const register: Model<number, In, number | undefined> = {
 *   init: () => 0,
 *   step: (state, input, output) => {
 *     if (input.op === "write") return input.value;
 *     return output === undefined || output === state ? state : undefined;
 *   },
 * };
 * ```
 */
export interface Model<S = unknown, I = unknown, O = unknown> {
  /** The initial state. */
  init(): S;
  /** The next state, or undefined when the output is impossible. */
  step(state: S, input: I, output: O): S | undefined;
  /** State equality (default: `===`). */
  equal?(a: S, b: S): boolean;
  /** A hash consistent with `equal` (speeds up the search's cache). */
  hash?(state: S): number;
  /** Splits a history into independent sub-histories (P-compositionality), for example by key. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /**
   * The key an operation belongs to, for a model that partitions by key: it
   * names each partition in the verdict, the CLI and the report (see
   * {@linkcode PartitionResult.key}). Without `partition`, the history is
   * also split by it.
   */
  partitionKey?(input: I): string;
  /** How to show an operation in the report. */
  describeOperation?(input: I, output: O): string;
  /** How to show a state in the report. */
  describeState?(state: S): string;
}

/**
 * A model whose step may lead to several states (or none). The checker
 * turns it into a deterministic model over sets of states.
 *
 * @example A register whose write may or may not take effect
 * ```ts
 * import type { NondeterministicModel } from "@distkit/distkit/checker";
 *
 * const flaky: NondeterministicModel<number, number | null, number | null> = {
 *   nondeterministic: true,
 *   init: () => [0],
 *   step: (s, write, read) => write !== null ? [s, write] : read === s ? [s] : [],
 * };
 * ```
 */
export interface NondeterministicModel<S = unknown, I = unknown, O = unknown> {
  /** Marks the model as nondeterministic. */
  nondeterministic: true;
  /** The possible initial states. */
  init(): S[];
  /** Every possible next state (empty when the output is impossible). */
  step(state: S, input: I, output: O): S[];
  /** State equality (default: `===`). */
  equal?(a: S, b: S): boolean;
  /** A hash consistent with `equal`. */
  hash?(state: S): number;
  /** Splits a history into independent sub-histories. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /** The key an operation belongs to (see {@linkcode Model.partitionKey}). */
  partitionKey?(input: I): string;
  /** How to show an operation in the report. */
  describeOperation?(input: I, output: O): string;
  /** How to show a state in the report. */
  describeState?(state: S): string;
}

/**
 * The verdict: `unknown` when the time or step budget ran out first.
 *
 * @example
 * ```ts
 * import type { Verdict } from "@distkit/distkit/checker";
 *
 * const v: Verdict = "linearizable";
 * ```
 */
export type Verdict = "linearizable" | "not linearizable" | "unknown";

/**
 * What the checker found in one partition.
 *
 * @example
 * ```ts
 * import type { PartitionResult } from "@distkit/distkit/checker";
 *
 * function summary(p: PartitionResult): string {
 *   return `${p.verdict}: ${p.operations.length} operations`;
 * }
 * ```
 */
export interface PartitionResult<I = unknown, O = unknown> {
  /**
   * This partition's verdict; `unknown`: never decided (a budget ran out
   * first, or the search stopped at a partition that is not linearizable).
   */
  verdict: Verdict;
  /** The key the partition's operations share, when the model partitions by key. */
  key?: string;
  /** The partition's operations; indexes below refer to this array. */
  operations: Operation<I, O>[];
  /** A linearization (operation indexes in order), when linearizable. */
  linearization?: number[];
  /**
   * When not linearizable: for each operation, the longest linearizable
   * sequence found that contains it (operation indexes in order).
   */
  partial?: number[][];
  /** When not linearizable: an operation that could never be placed, at the longest prefix. */
  firstIllegal?: number;
  /**
   * How the verdict was reached: `search` (the general search) or `inference`
   * (the order of the writes read back from the values read; see
   * `CheckOptions.inference`).
   */
  method?: "search" | "inference";
  /**
   * When inference proved the partition not linearizable: the proof in words,
   * one sentence per line, naming operations by their number in the whole
   * history (1-based) and their times.
   */
  explanation?: string[];
  /** The operations (indexes into `operations`) the explanation names. */
  witnesses?: number[];
}

/**
 * Why a check answered `unknown`: its time budget, its step budget or its
 * memory budget (`maxStates`) ran out first.
 *
 * @example
 * ```ts
 * import type { GaveUp } from "@distkit/distkit/checker";
 *
 * const why: GaveUp = "states";
 * ```
 */
export type GaveUp = "time" | "steps" | "states";

/**
 * The checker's answer.
 *
 * @example
 * ```ts
 * import type { CheckResult } from "@distkit/distkit/checker";
 *
 * function ok(r: CheckResult): boolean {
 *   return r.verdict === "linearizable";
 * }
 * ```
 */
export interface CheckResult<I = unknown, O = unknown> {
  /** The overall verdict. */
  verdict: Verdict;
  /** Per partition (in the model's partition order). */
  partitions: PartitionResult<I, O>[];
  /** Wall time taken, in milliseconds. */
  elapsedMs: number;
  /** When the verdict is `unknown`: which budget ran out. */
  gaveUp?: GaveUp;
  /** Cache entries (linearized set, state) the search held at the end, over all partitions. */
  states?: number;
}
