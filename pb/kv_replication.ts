/**
 * The wire protocol between the primary and the backup of the
 * primary/backup key/value service: every client request forwarded
 * (`PbKV.Forward`), and the whole state copied in pages (`PbKV.Transfer`),
 * each tagged with the primary's view, and the backup's answer.
 *
 * @module
 */
import { ArgumentsError, ProtocolError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import { checkPbKey, parsePbWrite, type PbKvLimits, type PbWriteRequest } from "./kv_protocol.ts";

/** Who sends a request to the backup: the primary of a view, as it says. */
export interface FromPrimary {
  /** The view the primary is in. */
  view: number;
  /** The primary's name. */
  primary: string;
}

/** A client request the primary forwards: a Get (its key) or a write. */
export interface ForwardRequest extends FromPrimary {
  /** The key of a forwarded Get. */
  get?: string;
  /** A forwarded write. */
  write?: PbWriteRequest;
  /** The transfer that brought the backup up to date, as the primary knows it. */
  transfer: number;
}

/** One page of the primary's state. */
export interface TransferRequest extends FromPrimary {
  /** The transfer's number: the primary's count of transfers it started. */
  transfer: number;
  /** The page's position in the transfer, from 0. */
  index: number;
  /** Whether this page ends the transfer. */
  last: boolean;
  /** Key/value pairs (checked when added). */
  data: unknown;
  /** Deduplication entries (checked when the transfer is complete). */
  sessions: unknown;
}

/**
 * The backup's answer: done, or refused (nothing applied). `view` is the
 * backup's view; `resync` says the backup is in the primary's view but does
 * not hold its state, so the primary must transfer it again.
 */
export type BackupReply =
  | { status: "ok" }
  | { status: "rejected"; view: number; resync: boolean; reason: string };

/**
 * Checks a `PbKV.Forward` request.
 *
 * @throws {ArgumentsError} naming what is wrong.
 */
export function parseForward(args: unknown, limits: PbKvLimits): ForwardRequest {
  const r = expectShape<ForwardRequest & { get?: unknown; write?: unknown }>(args, {
    view: "integer",
    primary: "string",
    transfer: "integer",
    get: "any?",
    write: "object?",
  });
  if ((r.get === undefined) === (r.write === undefined)) {
    throw new ArgumentsError("a forward carries exactly one of get (a key) and write");
  }
  return {
    view: r.view,
    primary: r.primary,
    transfer: r.transfer,
    ...(r.write === undefined
      ? { get: checkPbKey(r.get, limits) }
      : { write: parsePbWrite(r.write, limits) }),
  };
}

/**
 * Checks a `PbKV.Transfer` request (the page's contents are checked as
 * they are added).
 *
 * @throws {ArgumentsError} naming what is wrong.
 */
export function parseTransfer(args: unknown): TransferRequest {
  const r = expectShape<TransferRequest>(args, {
    view: "integer",
    primary: "string",
    transfer: "integer",
    index: "integer",
    last: "boolean",
    data: "array",
    sessions: "array",
  });
  if (r.index < 0) throw new ArgumentsError(`index must not be negative, got ${r.index}`);
  return r;
}

/**
 * Checks a backup's answer.
 *
 * @throws {ProtocolError} when it is not one.
 */
export function parseBackupReply(value: unknown): BackupReply {
  const r = value as Partial<{ status: string; view: number; resync: boolean; reason: string }>;
  if (r?.status === "ok") return { status: "ok" };
  if (
    r?.status === "rejected" && Number.isSafeInteger(r.view) && typeof r.resync === "boolean" &&
    typeof r.reason === "string"
  ) {
    return { status: "rejected", view: r.view!, resync: r.resync, reason: r.reason };
  }
  throw new ProtocolError(`not a backup's answer: ${JSON.stringify(value)?.slice(0, 200)}`);
}
