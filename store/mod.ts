/**
 * Storage building blocks on Deno KV: the narrow interface of `Deno.Kv`
 * distkit's storage uses ({@linkcode KvLike}), and an in-memory
 * implementation of it for tests and simulations ({@linkcode SimKv}) with
 * Deno KV's key order, limits and errors and a crash rule.
 *
 * @example
 * ```ts
 * import { SimKv } from "@distkit/distkit/store";
 *
 * const kv = new SimKv();
 * await kv.atomic().set(["a"], new Uint8Array([1])).commit();
 * kv.crash();
 * (await kv.reopen().get(["a"])).value; // Uint8Array [ 1 ]
 * ```
 *
 * @module
 */
export type { KvAtomicLike, KvLike, KvListIteratorLike } from "./kv_like.ts";
export { SimKv, type SimKvCrash, SimKvCrashedError, type SimKvOptions } from "./sim_kv.ts";
// Types from the net layer that appear in this module's signatures.
export type { Clock, Timer } from "../net/clock.ts";
