/**
 * The KV service's wire protocol: the requests a clerk sends, the replies a
 * server gives, and the limits both check. One parser serves the server
 * (refusing bad input from anyone) and the clerk (refusing it before it is
 * sent).
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import { OutcomeUnknownError, RequestError } from "../rsm/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import type { ReplicaReply } from "../rsm/replica.ts";
import type { KvCommand, KvResult, KvWrite } from "./state.ts";
import { type KvValue, valueBytes } from "./value.ts";
import { checkSession, checkString, checkText, typeOf } from "../rsm/checks.ts";

/**
 * Size limits on keys and values. All servers of one cluster must use the
 * same limits, since an append past the value limit is refused when it is
 * applied, on every replica alike.
 *
 * @example
 * ```ts
 * import type { KvLimits } from "@distkit/distkit/kv";
 *
 * const limits: KvLimits = { maxKeyBytes: 256, maxValueBytes: 64 * 1024 };
 * ```
 */
export interface KvLimits {
  /** Longest key, in UTF-8 bytes. Default 1,024. */
  maxKeyBytes: number;
  /** Longest value, in bytes (UTF-8 for strings), also after an append. Default 1 MiB. */
  maxValueBytes: number;
}

/**
 * The default {@linkcode KvLimits}: keys up to 1 KiB, values up to 1 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 *
 * DEFAULT_KV_LIMITS.maxKeyBytes; // 1024
 * ```
 */
export const DEFAULT_KV_LIMITS: Readonly<KvLimits> = Object.freeze({
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
});

/**
 * What a server answers to `KV.Get` and `KV.Write`: the outcome, or where to
 * go instead. A malformed request fails the call with a `BadArgumentsError`.
 *
 * - `ok`: done; `value` for a read, `result` for a write;
 * - `not-leader`: this server cannot serve it; `leader` is a hint (may be null);
 * - `retry`: this server could not finish it in time (it may have lost
 *   leadership or a quorum); try again, here or elsewhere.
 *
 * (The KV service never answers `wrong-group`; the sharded service does.)
 *
 * @example
 * ```ts
 * import type { KvReply } from "@distkit/distkit/kv";
 *
 * const reply: KvReply = { status: "not-leader", leader: "2" };
 * ```
 */
export type KvReply = ReplicaReply<{ value?: KvValue | null; result?: KvResult }>;

function checkKey(key: unknown, limits: KvLimits): string {
  return checkString(key, { field: "key", maxBytes: limits.maxKeyBytes });
}

function checkValue(value: unknown, limits: KvLimits, field = "value"): KvValue {
  if (typeof value !== "string" && !(value instanceof Uint8Array)) {
    throw new ArgumentsError(`${field} must be a string or bytes, got ${typeOf(value)}`);
  }
  if (typeof value === "string") checkText(value, field);
  const size = valueBytes(value);
  if (size > limits.maxValueBytes) {
    throw new ArgumentsError(`${field} is ${size} bytes; the limit is ${limits.maxValueBytes}`);
  }
  return value;
}

/**
 * Checks a `KV.Get` request; returns its key.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 * import { parseGet } from "./protocol.ts";
 *
 * parseGet({ key: "x" }, DEFAULT_KV_LIMITS); // "x"
 * ```
 */
export function parseGet(args: unknown, limits: KvLimits): string {
  const { key } = expectShape<{ key: unknown }>(args, { key: "any" });
  return checkKey(key, limits);
}

/**
 * Checks a write (the `write` field of a `KV.Write` request) and returns a
 * clean copy holding only the known fields.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 * import { parseWriteOp } from "./protocol.ts";
 *
 * parseWriteOp({ type: "put", key: "x", value: "1" }, DEFAULT_KV_LIMITS).type; // "put"
 * ```
 */
export function parseWriteOp(args: unknown, limits: KvLimits): KvWrite {
  const w = expectShape<{ type: unknown; key: unknown; value?: unknown; expected?: unknown }>(
    args,
    { type: "string", key: "any", value: "any?", expected: "any?" },
  );
  const key = checkKey(w.key, limits);
  switch (w.type) {
    case "put":
    case "append":
      return { type: w.type, key, value: checkValue(w.value, limits) };
    case "delete":
      return { type: "delete", key };
    case "cas":
      return {
        type: "cas",
        key,
        expected: w.expected === null ? null : checkValue(w.expected, limits, "expected"),
        value: checkValue(w.value, limits),
      };
    default:
      throw new ArgumentsError(
        `write type must be "put", "append", "delete" or "cas", got ${JSON.stringify(w.type)}`,
      );
  }
}

/**
 * Checks a `KV.Write` request: a client id, its sequence number (a positive
 * integer) and the write.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 * import { parseWrite } from "./protocol.ts";
 *
 * const cmd = parseWrite(
 *   { client: "c1", seq: 1, write: { type: "delete", key: "x" } },
 *   DEFAULT_KV_LIMITS,
 * );
 * cmd.seq; // 1
 * ```
 */
export function parseWrite(args: unknown, limits: KvLimits): KvCommand {
  const r = expectShape<{ client: string; seq: number; write: unknown }>(
    args,
    { client: "string", seq: "integer", write: "object" },
  );
  const command: KvCommand = {
    ...checkSession(r.client, r.seq),
    write: parseWriteOp(r.write, limits),
  };
  // A log entry's digest, as its leader computed it; one that is not a digest is left out (and
  // computed again where applied, the same on every replica).
  const digest = (args as { digest?: unknown }).digest;
  if (Number.isInteger(digest) && (digest as number) >= 0 && (digest as number) < 2 ** 32) {
    command.digest = digest as number;
  }
  return command;
}

/**
 * Checks the result a server gave for a write of session `session`: returns
 * it when the write happened or a `cas` did not match; throws when the
 * reply is malformed, the write was refused, or the session's numbering
 * shows another client uses the same id. The errors name
 * `options.service` (`kv`, `shard`).
 *
 * @throws {RequestError} saying which.
 * @throws {OutcomeUnknownError} when the session has applied a later write
 * (this one may have been applied before it).
 *
 * @example
 * ```ts
 * import { checkWriteResult } from "./protocol.ts";
 *
 * checkWriteResult({ ok: true }, "c1", { service: "kv" }); // { ok: true }
 * ```
 */
export function checkWriteResult(
  result: KvResult | undefined,
  session: string,
  options: { service: string },
): KvResult {
  const { service } = options;
  if (result === undefined || typeof result.ok !== "boolean") {
    throw new RequestError(service, "the server's reply to a write carried no result");
  }
  if (result.refused) throw new RequestError(service, result.refused);
  if (result.stale) {
    // This write may have been applied before the later one: its outcome is unknown.
    throw new OutcomeUnknownError(service, "write", {
      reason: `the servers have applied a later write of session ${session}: another clerk ` +
        `uses its id, or a restarted one reuses it; give every clerk instance its own id`,
      superseded: true,
    });
  }
  return result;
}
