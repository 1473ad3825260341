/**
 * The wire protocol between a clerk and the primary of the primary/backup
 * key/value service: the requests, the replies, and the limits both sides
 * check. One parser serves the server (refusing bad input from anyone) and
 * the clerk (refusing it before it is sent).
 *
 * @module
 */
import { checkSession, checkString } from "../rsm/checks.ts";
import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";

/**
 * The name the key/value service is registered under on an `RpcServer`.
 *
 * @example
 * ```ts
 * import { PB_KV_SERVICE } from "@distkit/distkit/pb";
 *
 * `${PB_KV_SERVICE}.Get`; // "PbKV.Get"
 * ```
 */
export const PB_KV_SERVICE = "PbKV";

/**
 * Size limits on keys and values. Every server and clerk of one service
 * should use the same.
 *
 * @example
 * ```ts
 * import type { PbKvLimits } from "@distkit/distkit/pb";
 *
 * const limits: PbKvLimits = { maxKeyBytes: 256, maxValueBytes: 64 * 1024 };
 * ```
 */
export interface PbKvLimits {
  /** Longest key, in UTF-8 bytes. Default 1,024. */
  maxKeyBytes: number;
  /** Longest value, in UTF-8 bytes, also after an append. Default 1 MiB. */
  maxValueBytes: number;
}

/**
 * The default {@linkcode PbKvLimits}: keys up to 1 KiB, values up to 1 MiB
 * (those of the Raft key/value service).
 *
 * @example
 * ```ts
 * import { PB_KV_LIMITS } from "@distkit/distkit/pb";
 *
 * PB_KV_LIMITS.maxValueBytes; // 1048576
 * ```
 */
export const PB_KV_LIMITS: Readonly<PbKvLimits> = DEFAULT_KV_LIMITS;

/**
 * A write: `put` replaces the value, `append` adds to it (a missing key
 * starts from "").
 *
 * @example
 * ```ts
 * import type { PbWriteOp } from "./kv_protocol.ts";
 *
 * const op: PbWriteOp = "append";
 * ```
 */
export type PbWriteOp = "put" | "append";

/**
 * A `PbKV.Write` request: the write, and who sends it (client session id
 * and the session's sequence number; a retry reuses both).
 *
 * @example
 * ```ts
 * import type { PbWriteRequest } from "./kv_protocol.ts";
 *
 * const w: PbWriteRequest = { client: "c1", seq: 1, op: "put", key: "x", value: "1" };
 * ```
 */
export interface PbWriteRequest {
  /** The client session's id, unique among clients. */
  client: string;
  /** The session's sequence number for this write (1, 2, 3, ...). */
  seq: number;
  /** What to do. */
  op: PbWriteOp;
  /** The key. */
  key: string;
  /** The value to put or append. */
  value: string;
}

/**
 * A reply of the key/value service: done (`ok`, with the operation's
 * result), or `wrong-server`: this server is not the primary of the
 * current view or cannot serve right now (it is bringing its backup up to
 * date, or its backup did not confirm it is still the primary). Ask the
 * view service for the view and try again. A malformed request fails the
 * call with a `BadArgumentsError` instead.
 *
 * @example
 * ```ts
 * import type { PbKvReply } from "./kv_protocol.ts";
 *
 * const reply: PbKvReply<{ value: string | null }> = { status: "ok", value: null };
 * ```
 */
export type PbKvReply<T extends object = Record<never, never>> =
  | ({ status: "ok" } & T)
  | { status: "wrong-server"; reason: string };

/**
 * The reply to `PbKV.Get`: the value, null when the key is absent.
 *
 * @example
 * ```ts
 * import type { PbGetReply } from "./kv_protocol.ts";
 *
 * const reply: PbGetReply = { status: "wrong-server", reason: "not the primary of view 3" };
 * ```
 */
export type PbGetReply = PbKvReply<{ value: string | null }>;

/**
 * Checks a key against the limits.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { PB_KV_LIMITS } from "@distkit/distkit/pb";
 * import { checkPbKey } from "./kv_protocol.ts";
 *
 * checkPbKey("x", PB_KV_LIMITS); // "x"
 * ```
 */
export function checkPbKey(key: unknown, limits: PbKvLimits): string {
  return checkString(key, { field: "key", maxBytes: limits.maxKeyBytes });
}

/**
 * Checks a `PbKV.Get` request (`{ key }`); returns its key.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { PB_KV_LIMITS } from "@distkit/distkit/pb";
 * import { parsePbGet } from "./kv_protocol.ts";
 *
 * parsePbGet({ key: "x" }, PB_KV_LIMITS); // "x"
 * ```
 */
export function parsePbGet(args: unknown, limits: PbKvLimits): string {
  const { key } = expectShape<{ key: unknown }>(args, { key: "any" });
  return checkPbKey(key, limits);
}

/**
 * Checks a `PbKV.Write` request and returns a clean copy holding only the
 * known fields.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { PB_KV_LIMITS } from "@distkit/distkit/pb";
 * import { parsePbWrite } from "./kv_protocol.ts";
 *
 * parsePbWrite({ client: "c1", seq: 1, op: "append", key: "x", value: "a" }, PB_KV_LIMITS).op; // "append"
 * ```
 */
export function parsePbWrite(args: unknown, limits: PbKvLimits): PbWriteRequest {
  const w = expectShape<
    { client: unknown; seq: number; op: unknown; key: unknown; value: unknown }
  >(
    args,
    { client: "any", seq: "integer", op: "any", key: "any", value: "any" },
  );
  const { client, seq } = checkSession(w.client, w.seq);
  if (w.op !== "put" && w.op !== "append") {
    throw new ArgumentsError(`op must be "put" or "append", got ${JSON.stringify(w.op)}`);
  }
  const key = checkPbKey(w.key, limits);
  const value = checkString(w.value, { field: "value", maxBytes: limits.maxValueBytes });
  return { client, seq, op: w.op, key, value };
}
