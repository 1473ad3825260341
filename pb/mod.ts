/**
 * Primary/backup replication, the systems of 6.824's earlier labs: a view
 * service that picks a primary and a backup from pinging servers, a
 * primary/backup key/value service on it, and a primary/backup lock
 * service.
 *
 * @example
 * ```ts
 * import { ViewService } from "@distkit/distkit/pb";
 *
 * const vs = new ViewService();
 * vs.ping("s1", 0, 0).primary; // "s1"
 * ```
 *
 * @module
 */
export * from "./view.ts";
export * from "./lock_protocol.ts";
export * from "./lock_table.ts";
export * from "./lock_server.ts";
export * from "./lock_clerk.ts";
export * from "./kv_protocol.ts";
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
  CallOptions,
  ClientEnd,
  Clock,
  Random,
  RpcServer,
  Timer,
  Transport,
} from "../net/mod.ts";
// RpcServer's signatures use these (RpcServer is re-exported above for the lock service).
export type { CallContext, ServiceMethods } from "../net/mod.ts";
