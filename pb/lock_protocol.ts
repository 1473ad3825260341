/**
 * The primary/backup lock service's wire protocol: what a clerk asks
 * (`Lock.Lock`, `Lock.Unlock`), what the primary forwards to the backup
 * (`Lock.Forward`) and how it hands the backup its whole state
 * (`Lock.Transfer`), the replies, and the checks every server applies to
 * what it receives. One parser serves the server (refusing bad input from
 * anyone) and the clerk (refusing it before it is sent).
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import { checkSession, checkString } from "../rsm/checks.ts";

/**
 * The name the lock service registers on an `RpcServer`: its methods are
 * `Lock.Lock`, `Lock.Unlock`, `Lock.Forward`, `Lock.Transfer` and
 * `Lock.Status`.
 *
 * @example
 * ```ts
 * import { LOCK_SERVICE } from "@distkit/distkit/pb";
 *
 * `${LOCK_SERVICE}.Lock`; // "Lock.Lock"
 * ```
 */
export const LOCK_SERVICE = "Lock";

/**
 * Longest lock name, in UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { MAX_LOCK_NAME_BYTES } from "@distkit/distkit/pb";
 *
 * "printer".length <= MAX_LOCK_NAME_BYTES; // true
 * ```
 */
export const MAX_LOCK_NAME_BYTES = 1024;

/** Longest server incarnation id, in UTF-8 bytes (a UUID is 36). */
const MAX_INCARNATION_BYTES = 64;

/**
 * The two operations of the lock service.
 *
 * @example
 * ```ts
 * import type { LockOpKind } from "./lock_protocol.ts";
 *
 * const kind: LockOpKind = "unlock";
 * ```
 */
export type LockOpKind = "lock" | "unlock";

/**
 * What a clerk sends with `Lock.Lock` and `Lock.Unlock`: the lock's name and
 * the session numbering that makes a retry recognisable.
 *
 * @example
 * ```ts
 * import type { LockRequest } from "./lock_protocol.ts";
 *
 * const request: LockRequest = { client: "c1", seq: 4, name: "printer" };
 * ```
 */
export interface LockRequest {
  /** The client session's id (see `Sessions` in the KV module). */
  client: string;
  /** The number of the session's request: 1, 2, 3... one at a time. */
  seq: number;
  /** The lock. */
  name: string;
}

/**
 * One operation of a session: a request and which method carried it.
 *
 * @example
 * ```ts
 * import type { LockOp } from "./lock_protocol.ts";
 *
 * const op: LockOp = { op: "lock", client: "c1", seq: 1, name: "printer" };
 * ```
 */
export interface LockOp extends LockRequest {
  /** Lock or unlock. */
  op: LockOpKind;
}

/**
 * An operation the primary applied, as it forwards it: with the result it
 * got, which the backup records so it can answer a retry the same way.
 *
 * @example
 * ```ts
 * import type { LockForwardedOp } from "./lock_protocol.ts";
 *
 * const op: LockForwardedOp = { op: "lock", client: "c1", seq: 1, name: "printer", result: true };
 * ```
 */
export interface LockForwardedOp extends LockOp {
  /** What the primary answered (or will answer) the client. */
  result: boolean;
}

/**
 * What the primary sends with `Lock.Forward`: the operations it applied
 * since its previous forward, in the order it applied them. Batches are
 * numbered in one sequence with the state transfers
 * ({@linkcode LockTransferRequest}) and sent one at a time, so a retried
 * batch is recognised by its number, and a number the backup cannot
 * follow tells it that it lacks the state before.
 *
 * @example
 * ```ts
 * import type { LockForwardRequest } from "./lock_protocol.ts";
 *
 * const forward: LockForwardRequest = {
 *   from: "p",
 *   incarnation: "4f1c0a9e-0d52-4c57-9a36-64b2f1d7e0c3",
 *   batch: 2,
 *   ops: [{ op: "lock", client: "c1", seq: 1, name: "printer", result: true }],
 * };
 * ```
 */
export interface LockForwardRequest {
  /** The sender, which must be the primary. */
  from: string;
  /**
   * The sending server's incarnation: a random id it drew when it started.
   * A primary that restarted has a new one, so the backup can tell it from
   * the one whose state it holds.
   */
  incarnation: string;
  /** The batch's number. */
  batch: number;
  /** The operations, in the primary's order. */
  ops: LockForwardedOp[];
}

/**
 * One client session as a state transfer carries it: the session's last
 * operation, a digest of it (to tell a retry from another clerk reusing the
 * number) and its result.
 *
 * @example
 * ```ts
 * import type { LockSessionRecord } from "./lock_protocol.ts";
 *
 * const record: LockSessionRecord = { client: "c1", seq: 3, digest: 0x1234, result: true };
 * ```
 */
export interface LockSessionRecord {
  /** The session's id. */
  client: string;
  /** The number of its last operation. */
  seq: number;
  /** A 32-bit digest of that operation. */
  digest: number;
  /** What that operation answered. */
  result: boolean;
}

/**
 * One page of what the primary sends with `Lock.Transfer`: its whole state
 * (the held locks and the client sessions), taken at one instant, to a
 * backup that lacks it (one that restarted, or missed operations while
 * the primary served alone). Pages are numbered from 0 and sent one at a
 * time; the backup takes the state as its own at the `last` page, and the
 * transfer's `batch` number takes a place in the sequence of forwards, so
 * the next forward is `batch + 1`.
 *
 * @example
 * ```ts
 * import type { LockTransferRequest } from "./lock_protocol.ts";
 *
 * const page: LockTransferRequest = {
 *   from: "p",
 *   incarnation: "4f1c0a9e-0d52-4c57-9a36-64b2f1d7e0c3",
 *   batch: 1,
 *   page: 0,
 *   last: true,
 *   locks: ["printer"],
 *   sessions: [{ client: "c1", seq: 1, digest: 0x1234, result: true }],
 * };
 * ```
 */
export interface LockTransferRequest {
  /** The sender, which must be the primary. */
  from: string;
  /** The sending server's incarnation (see {@linkcode LockForwardRequest.incarnation}). */
  incarnation: string;
  /** The transfer's place in the sequence of batches. */
  batch: number;
  /** The page's number, from 0. */
  page: number;
  /** Whether this page ends the transfer. */
  last: boolean;
  /** Held locks. */
  locks: string[];
  /** Client sessions, the least recently used first. */
  sessions: LockSessionRecord[];
}

/**
 * A server's answer to `Lock.Lock` or `Lock.Unlock`. A malformed request
 * fails the call with a `BadArgumentsError` instead.
 *
 * - `ok`: done; `result` is the operation's outcome (lock: the lock was
 *   free and is now held; unlock: it was held and is now free);
 * - `not-primary`: this server does not serve clients (any more); ask the
 *   other one;
 * - `refused`: the request can never succeed (its session numbering shows
 *   that two clerks share an id); `reason` says why.
 *
 * @example
 * ```ts
 * import type { LockReply } from "./lock_protocol.ts";
 *
 * const reply: LockReply = { status: "ok", result: true };
 * ```
 */
export type LockReply =
  | { status: "ok"; result: boolean }
  | { status: "not-primary"; reason: string }
  | { status: "refused"; reason: string };

/**
 * The backup's answer to `Lock.Forward` and `Lock.Transfer`:
 *
 * - `ok`: it has applied the batch or page (or had already);
 * - `refused`: it serves clients itself, or it holds the state of another
 *   incarnation of the primary (the primary restarted, and lost its state):
 *   the primary must never answer a client again;
 * - `behind`: it lacks the state the batch follows on (it restarted, or a
 *   transfer was cut short): the primary sends it a whole
 *   {@linkcode LockTransferRequest}, and meanwhile the backup serves no
 *   client.
 *
 * @example
 * ```ts
 * import type { LockForwardReply } from "./lock_protocol.ts";
 *
 * const reply: LockForwardReply = { status: "refused", reason: "b serves clients itself" };
 * ```
 */
export type LockForwardReply =
  | { status: "ok" }
  | { status: "refused"; reason: string }
  | { status: "behind"; reason: string };

/**
 * Checks a lock name: a string of 1 to {@linkcode MAX_LOCK_NAME_BYTES}
 * UTF-8 bytes, valid Unicode.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { checkLockName } from "./lock_protocol.ts";
 *
 * checkLockName("printer"); // "printer"
 * ```
 */
export function checkLockName(name: unknown): string {
  return checkString(name, { field: "name", maxBytes: MAX_LOCK_NAME_BYTES, nonEmpty: true });
}

/**
 * Checks a `Lock.Lock` or `Lock.Unlock` request.
 *
 * @throws {ArgumentsError} naming the first thing wrong.
 *
 * @example
 * ```ts
 * import { parseLockRequest } from "./lock_protocol.ts";
 *
 * parseLockRequest({ client: "c1", seq: 1, name: "printer" }).name; // "printer"
 * ```
 */
export function parseLockRequest(args: unknown): LockRequest {
  const r = expectShape<LockRequest>(args, { client: "string", seq: "integer", name: "string" });
  const session = checkSession(r.client, r.seq);
  checkLockName(r.name);
  return { ...session, name: r.name };
}

/**
 * Checks a `Lock.Forward` request, and every operation in it.
 *
 * @throws {ArgumentsError} naming the first thing wrong.
 *
 * @example
 * ```ts
 * import { parseLockForward } from "./lock_protocol.ts";
 *
 * parseLockForward({ from: "p", incarnation: "i1", batch: 1, ops: [] }).batch; // 1
 * ```
 */
export function parseLockForward(args: unknown): LockForwardRequest {
  const f = expectShape<LockForwardRequest>(args, {
    from: "string",
    incarnation: "string",
    batch: "integer",
    ops: "array",
  });
  checkString(f.incarnation, {
    field: "incarnation",
    maxBytes: MAX_INCARNATION_BYTES,
    nonEmpty: true,
  });
  if (f.batch < 1) throw new ArgumentsError(`batch must be at least 1, got ${f.batch}`);
  const ops = f.ops.map((raw, i) => {
    let op: LockForwardedOp;
    try {
      op = expectShape<LockForwardedOp>(raw, { op: "string", result: "boolean" });
      if (op.op !== "lock" && op.op !== "unlock") {
        throw new ArgumentsError(`op must be "lock" or "unlock", got ${JSON.stringify(op.op)}`);
      }
      return { op: op.op, ...parseLockRequest(raw), result: op.result };
    } catch (err) {
      throw new ArgumentsError(`ops[${i}]: ${(err as Error).message}`);
    }
  });
  return { from: f.from, incarnation: f.incarnation, batch: f.batch, ops };
}

/**
 * Checks a `Lock.Transfer` page, and every lock and session in it.
 *
 * @throws {ArgumentsError} naming the first thing wrong.
 *
 * @example
 * ```ts
 * import { parseLockTransfer } from "./lock_protocol.ts";
 *
 * const page = { from: "p", incarnation: "i1", batch: 1, page: 0, last: true, locks: ["a"], sessions: [] };
 * parseLockTransfer(page).locks; // ["a"]
 * ```
 */
export function parseLockTransfer(args: unknown): LockTransferRequest {
  const t = expectShape<LockTransferRequest>(args, {
    from: "string",
    incarnation: "string",
    batch: "integer",
    page: "integer",
    last: "boolean",
    locks: "array",
    sessions: "array",
  });
  checkString(t.incarnation, {
    field: "incarnation",
    maxBytes: MAX_INCARNATION_BYTES,
    nonEmpty: true,
  });
  if (t.batch < 1) throw new ArgumentsError(`batch must be at least 1, got ${t.batch}`);
  if (t.page < 0) throw new ArgumentsError(`page must be at least 0, got ${t.page}`);
  const locks = t.locks.map((name, i) => {
    try {
      return checkLockName(name);
    } catch (err) {
      throw new ArgumentsError(`locks[${i}]: ${(err as Error).message}`);
    }
  });
  const sessions = t.sessions.map((raw, i) => {
    try {
      const r = expectShape<LockSessionRecord>(raw, {
        client: "string",
        seq: "integer",
        digest: "integer",
        result: "boolean",
      });
      checkSession(r.client, r.seq);
      if (r.digest < 0 || r.digest > 0xffffffff) {
        throw new ArgumentsError(`digest must be a 32-bit unsigned integer, got ${r.digest}`);
      }
      return { client: r.client, seq: r.seq, digest: r.digest, result: r.result };
    } catch (err) {
      throw new ArgumentsError(`sessions[${i}]: ${(err as Error).message}`);
    }
  });
  return {
    from: t.from,
    incarnation: t.incarnation,
    batch: t.batch,
    page: t.page,
    last: t.last,
    locks,
    sessions,
  };
}
