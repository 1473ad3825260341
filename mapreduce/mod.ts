/**
 * MapReduce (6.824's lab 1): a coordinator and any number of worker
 * processes over TCP.
 *
 * - {@linkcode Coordinator}: splits the inputs into map tasks, hands out map
 *   then reduce tasks, re-issues a task whose worker failed or went silent.
 * - {@linkcode runWorker}: a worker's loop; {@linkcode loadApp} loads an
 *   application (a built-in such as `wc`, or any module exporting `map` and
 *   `reduce`, the {@linkcode MapReduceApp} shape); {@linkcode appIdentity}
 *   names it, so a job's coordinator refuses workers of another app.
 * - {@linkcode runSequential}: the reference runner, in one process
 *   (6.824's mrsequential).
 *
 * What it is not: replicated. It stands on the net layer alone (no Raft):
 * the coordinator is a single process whose failure fails the job, and
 * workers share the file system the coordinator names (no GFS).
 *
 * @example
 * ```ts
 * import { loadApp } from "@distkit/distkit/mapreduce";
 *
 * const wc = await loadApp("wc");
 * const pairs = [...await wc.map("doc", "the cat and the hat")];
 * pairs.find(([word]) => word === "the"); // ["the", "2"]
 * ```
 *
 * @module
 */
export * from "./app.ts";
export * from "./coordinator.ts";
// The engine's steps (split, map, group, reduce, write) are the runners' own.
export { DEFAULT_CHUNK_BYTES, type MapTask, runSequential } from "./engine.ts";
export * from "./worker.ts";
export { countWords, WordCounter, words } from "./apps/wc.ts";
// Types from the net layer that appear in this module's signatures.
export type { ClientEnd, Clock } from "../net/mod.ts";

// Types of other modules in this module's signatures (deno doc --lint of this entry point alone).
export type { CallOptions, Timer } from "../net/mod.ts";
