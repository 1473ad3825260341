/**
 * The sharded clerk's own error: a call that timed out waiting for the group
 * that holds its key's shard, once the controllers had said which group that
 * is. A plain `RequestTimeoutError` would leave the reader to guess whether
 * the controllers or the group failed to answer.
 *
 * @module
 */
import { RequestTimeoutError, type RequestTimeoutErrorOptions } from "../rsm/errors.ts";

/**
 * Options of a {@linkcode ShardGroupTimeoutError}: the deadline's, and where
 * the clerk routed the call.
 *
 * @example
 * ```ts
 * import type { ShardGroupTimeoutErrorOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardGroupTimeoutErrorOptions = {
 *   mayHaveApplied: false,
 *   deadlineMs: 30_000,
 *   tried: [{ server: "127.0.0.1:7101", error: "connection refused" }],
 *   shard: 3,
 *   gid: 100,
 *   configNum: 1,
 *   controllersAnswered: true,
 * };
 * ```
 */
export interface ShardGroupTimeoutErrorOptions
  extends Omit<RequestTimeoutErrorOptions, "waitedFor" | "advice"> {
  /** The shard of the call's key. */
  shard: number;
  /** The group the configuration gives the shard to; 0 when it gives it to none. */
  gid: number;
  /** The configuration the clerk routed by. */
  configNum: number;
  /**
   * Whether the controllers answered during the call; false when the clerk
   * routed by a configuration it had from an earlier call and the controllers
   * did not answer since.
   */
  controllersAnswered: boolean;
}

/**
 * The clerk's deadline passed while it waited for the group that holds the
 * key's shard (a {@linkcode RequestTimeoutError}, so `mayHaveApplied` means
 * the same): the controllers said which group that is, and the group's
 * servers did not serve the call. `tried` holds each of the group's servers
 * and its last failure (`answered wrong-group` for one that does not serve
 * the shard in the configuration it has reached). With `gid` 0 the
 * configuration gives the shard to no group: join one.
 *
 * @example
 * ```ts
 * import { ShardGroupTimeoutError } from "@distkit/distkit/shard";
 *
 * const err = new ShardGroupTimeoutError("get", {
 *   mayHaveApplied: false,
 *   deadlineMs: 30_000,
 *   tried: [{ server: "127.0.0.1:7101", error: "connection refused" }],
 *   shard: 3,
 *   gid: 100,
 *   configNum: 1,
 *   controllersAnswered: true,
 * });
 * err.message.startsWith(
 *   "shard: get: no answer within 30000 ms from group 100, which holds shard 3 in configuration 1",
 * ); // true
 * ```
 */
export class ShardGroupTimeoutError extends RequestTimeoutError {
  /** The shard of the call's key. */
  readonly shard: number;
  /** The group the configuration gives the shard to; 0 when it gives it to none. */
  readonly gid: number;
  /** The configuration the clerk routed by. */
  readonly configNum: number;
  /** Whether the controllers answered during the call. */
  readonly controllersAnswered: boolean;

  /**
   * Creates the error (of the service `shard`).
   *
   * @param operation The operation abandoned (`get`, `put`...).
   * @param options The deadline, the group's servers and their last failures, where the call was routed, and `cause`.
   */
  constructor(operation: string, options: ShardGroupTimeoutErrorOptions) {
    const { shard, gid, configNum, controllersAnswered, ...timeoutOptions } = options;
    const controllers = controllersAnswered
      ? "the controllers answered"
      : "the last the controllers gave; they did not answer during this call";
    super("shard", operation, {
      ...timeoutOptions,
      waitedFor: gid === 0
        ? `a group for shard ${shard}: configuration ${configNum} gives it to none (${controllers})`
        : `group ${gid}, which holds shard ${shard} in configuration ${configNum} (${controllers})`,
      advice: gid === 0
        ? "join a group (`ShardControllerClerk.join`)"
        : `check that group ${gid}'s servers are up and reachable at these addresses, and that ` +
          `configuration ${configNum} lists the group at its servers' right addresses`,
    });
    this.name = "ShardGroupTimeoutError";
    this.shard = shard;
    this.gid = gid;
    this.configNum = configNum;
    this.controllersAnswered = controllersAnswered;
  }
}
