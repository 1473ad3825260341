/**
 * Storage building blocks on Deno KV (issue 19, "the state lives on disk"):
 *
 * - {@linkcode KvLike}: the narrow interface of `Deno.Kv` distkit's storage
 *   uses; {@linkcode SimKv}: an in-memory one for tests and simulations,
 *   with Deno KV's key order, limits and errors, and a crash rule.
 * - {@linkcode StateStore}: a replicated service's state (data, session
 *   rows, the applied point) in Deno KV with a bounded read cache: batches
 *   of applied entries committed so a crash leaves an applied prefix,
 *   point-in-time views streamed in pages while writes go on, and installs
 *   of such a stream into a fresh generation switched by one commit.
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
export { StateStore } from "./state_store.ts";
export type { StateStoreOptions } from "./state_store_options.ts";
export type { StateListOptions } from "./state_list.ts";
export type { EndEntryOptions, StateBatch, ValueInLog } from "./state_batch.ts";
export type { LoggedValues } from "./state_logged.ts";
export type { StatePage, StatePagesOptions, StateRow, StateView } from "./state_view.ts";
export type { StateInstall } from "./state_install.ts";
export type { AppliedPoint } from "./state_layout.ts";
export {
  StateInstallError,
  StateInvariantError,
  StateLimitError,
  StateStoreFailedError,
} from "./errors.ts";
export type { StateValue } from "./state_value.ts";
export type { LogLocation } from "./log_location.ts";
export type { Codec } from "../net/codec.ts";
