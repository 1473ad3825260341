/**
 * Primary/backup replication, the systems of 6.824's earlier labs (the
 * viewservice, pbservice and lockservice labs), which came before Raft and
 * are simpler than it:
 *
 * - the view service ({@linkcode ViewServer}, reached with
 *   {@linkcode ViewClerk}): servers ping it, it picks a primary and a
 *   backup and moves on to a new view when one stops pinging;
 * - a primary/backup key/value service on it
 *   ({@linkcode PrimaryBackupServer}, {@linkcode PrimaryBackupClerk}):
 *   state transfer in pages, every request forwarded to the backup,
 *   exactly-once writes;
 * - a primary/backup lock service with a fixed primary and backup
 *   ({@linkcode LockServer}, {@linkcode LockClerk}): at-most-once.
 *
 * What it is not: fault tolerant the way the Raft-based services are. The
 * view service is a single point of failure, nothing is written to disk,
 * and the lock service assumes one fail-stop failure and no partition
 * between its two servers; use `/kv` for those. Its wire formats, their
 * parsers and the view service's decision logic are internal.
 *
 * @example
 * ```ts
 * import { ViewServer } from "@distkit/distkit/pb";
 * import { RpcServer } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const views = new ViewServer();
 * const rpc = new RpcServer();
 * rpc.addService("View", views.methods());
 * await rpc.dispatch("View.Ping", { server: "s1", num: 0 }); // the first server to ping is made primary
 * assert.equal(views.view.primary, "s1");
 * views.close();
 * ```
 *
 * @module
 */
export {
  DEAD_PINGS,
  PING_INTERVAL_MS,
  type View,
  ViewClerk,
  ViewServer,
  type ViewServerOptions,
  type ViewServiceOptions,
} from "./view.ts";
export { LOCK_SERVICE, MAX_LOCK_NAME_BYTES } from "./lock_protocol.ts";
export type { LockOutcome } from "./lock_table.ts";
export * from "./lock_server.ts";
export * from "./lock_clerk.ts";
export { PB_KV_LIMITS, PB_KV_SERVICE, type PbKvLimits } from "./kv_protocol.ts";
export * from "./kv_server.ts";
export * from "./kv_clerk.ts";
// The errors the clerks throw: the family every service client shares.
export {
  mayHaveApplied,
  OutcomeUnknownError,
  RequestAbortedError,
  type RequestAbortedErrorOptions,
  RequestError,
  RequestTimeoutError,
  type RequestTimeoutErrorOptions,
  type ServerAttempt,
  ServiceError,
} from "../rsm/errors.ts";
// Types from the net layer that appear in this module's signatures.
export type {
  CallContext,
  CallOptions,
  ClientEnd,
  Clock,
  Random,
  RpcServer,
  ServiceMethods,
  Timer,
  Transport,
} from "../net/mod.ts";
