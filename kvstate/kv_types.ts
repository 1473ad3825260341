/**
 * The key/value service's writes, commands and results (what the log
 * carries and the states answer).
 *
 * @module
 */
import type { KvValue } from "./value.ts";

/**
 * A write to the store.
 *
 * - `put` replaces the value; `append` adds to it (strings to strings,
 *   bytes to bytes, a mix gives bytes; appending to a missing key starts
 *   from empty);
 * - `delete` removes the key;
 * - `cas` sets `value` only when the current value equals `expected`
 *   (`null`: the key must be absent).
 *
 * @example
 * ```ts
 * import type { KvWrite } from "@distkit/distkit/kv";
 *
 * const w: KvWrite = { type: "cas", key: "leader", expected: null, value: "node-1" };
 * ```
 */
export type KvWrite =
  | { type: "put"; key: string; value: KvValue }
  | { type: "append"; key: string; value: KvValue }
  | { type: "delete"; key: string }
  | { type: "cas"; key: string; expected: KvValue | null; value: KvValue };

/**
 * A write as it goes through the log: who sent it, and its sequence number
 * for that client (1, 2, 3, ...; a retry reuses the number).
 *
 * @example
 * ```ts
 * import type { KvCommand } from "@distkit/distkit/kv";
 *
 * const cmd: KvCommand = { client: "c7", seq: 3, write: { type: "put", key: "x", value: "1" } };
 * ```
 */
export interface KvCommand {
  /** The client's id, unique among clients. */
  client: string;
  /** The client's sequence number for this write. */
  seq: number;
  /** The write. */
  write: KvWrite;
  /**
   * The write's digest (`writeDigest`), computed once by the
   * leader that proposed it and carried in its log entry, so that the other
   * replicas do not compute it again (1.7 ms per MiB of value). Absent:
   * computed where applied. It must be the digest of `write`.
   */
  digest?: number;
}

/**
 * The outcome of a write: `ok` false only for a `cas` whose expectation did
 * not hold (`current` says what was there), an append refused because the
 * value would outgrow the limit (`refused` says why), or a stale retry
 * (`stale`: the client has since sent newer writes, so nobody waits for it).
 *
 * @example
 * ```ts
 * import type { KvResult } from "@distkit/distkit/kv";
 *
 * const r: KvResult = { ok: false, current: "node-2" };
 * ```
 */
export interface KvResult {
  /** Whether the write took effect. */
  ok: boolean;
  /** For a failed `cas`: the value that was there (null: none). */
  current?: KvValue | null;
  /** The command was an old retry, superseded by a later write of the same client. */
  stale?: boolean;
  /** Why the write was refused (an append past the value limit). */
  refused?: string;
  /** For a `delete`: whether the key was there. */
  existed?: boolean;
}
