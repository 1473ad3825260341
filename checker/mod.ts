/**
 * A linearizability checker for histories of concurrent operations, in the
 * manner of porcupine (the checker 6.824's tests use): models with
 * `init`/`step`/`equal` (and optional `hash`, `partition`,
 * describe-functions), the Wing & Gong / Lowe search with memoization,
 * partitions interleaved so the first illegal one ends the search, time and
 * memory budgets that answer `unknown`, and partial linearizations for
 * histories that are not linearizable. Key/value histories whose writes are
 * told apart by their values are decided first by inference from the values
 * read (after Elle), in near-linear time, a violation explained in words.
 *
 * What it is not: part of any service. It stands alone (it imports nothing
 * from the rest of distkit); tests and the command line (`distkit check`)
 * use it, library code does not.
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel } from "@distkit/distkit/checker";
 *
 * const result = checkOperations(kvModel, [
 *   { client: 0, input: { op: "put", key: "a", value: "1" }, call: 0, output: "", return: 5 },
 *   { client: 1, input: { op: "get", key: "a" }, call: 1, output: "", return: 2 },
 * ], { timeoutMs: 1000 });
 * console.log(result.verdict); // "linearizable": the get ran before the put took effect
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./check.ts";
export * from "./models.ts";
export * from "./kv_model.ts";
export * from "./html.ts";
export * from "./wording.ts";
export * from "./formats.ts";
