/**
 * `ShardClerk`: the client of the sharded key/value service. It routes each
 * key to its shard's group by the controller's configuration, refreshes the
 * configuration when a group answers `wrong-group` or cannot be reached,
 * and keeps a write's session number across groups, so a write that a
 * migration carried to another group is recognised there as a retry.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import type { Transport } from "../net/transport.ts";
import {
  refuseBadRequest,
  RequestAbortedError,
  RequestTimeoutError,
  type ServerAttempt,
} from "../rsm/errors.ts";
import {
  checkWriteResult,
  DEFAULT_KV_LIMITS,
  type KvLimits,
  parseGet,
  parseWriteOp,
} from "../kvstate/protocol.ts";
import {
  ambiguousIfProposed,
  CallDeadline,
  DEFAULT_DEADLINE_MS,
  type ReplicaClientOptions,
  ReplicaClients,
  Sessions,
  type WriteAttempts,
} from "../rsm/replica_client.ts";
import { AttemptLog } from "../rsm/call_attempts.ts";
import type { KvResult, KvWrite } from "../kvstate/state.ts";
import { type KvValue, valueAsBytes, valueAsText } from "../kvstate/value.ts";
import { keyToShard, type ShardConfig } from "./config.ts";
import { ShardControllerClerk } from "./controller.ts";
import { ShardGroupTimeoutError } from "./errors.ts";
import { SHARD_SERVICE } from "./group.ts";
import { defaultClock, defaultId } from "../net/env.ts";

/** The service's name in the clerk's errors. */
const SERVICE = "shard";

/**
 * Options of a {@linkcode ShardClerk}.
 *
 * @example
 * ```ts
 * import type { ShardClerkOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardClerkOptions = { id: "web-1", retryMs: 100 };
 * ```
 */
export interface ShardClerkOptions extends ReplicaClientOptions {
  /** The client's id, unique among all clients, without `#`. Default: a random UUID (none inside `simulate`: pass `sim.newId()`). */
  id?: string;
  /** Pause before asking the controller again after a group could not serve. Default 100 ms. */
  retryMs?: number;
  /** The limits to check requests against before sending. Default: the servers' defaults. */
  limits?: Partial<KvLimits>;
}

/**
 * Options of one operation of a {@linkcode ShardClerk}.
 *
 * @example
 * ```ts
 * import type { ShardCallOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardCallOptions = { deadlineMs: 5000 };
 * ```
 */
export interface ShardCallOptions {
  /** Gives up with a `RequestAbortedError` when it fires. */
  signal?: AbortSignal;
  /**
   * Gives up with a `RequestTimeoutError` after this long, overriding the
   * clerk's `deadlineMs` (default 30 s); `Infinity`: only the signal ends it.
   * It is a {@linkcode ShardGroupTimeoutError} when the controllers had named
   * the key's group (or none) and the group did not serve the call.
   */
  deadlineMs?: number;
}

/**
 * A client of the sharded KV service. Operations may run concurrently.
 *
 * A write that fails either certainly did not apply, or says so: its error
 * has `mayHaveApplied` true (`RequestAbortedError`, `OutcomeUnknownError`).
 * Such a write may still take effect later (it may be in a group's log);
 * unlike the single-group {@linkcode KvClerk}, a later write does not settle
 * it, since it may go to another group.
 *
 * @example
 * ```ts
 * import { ShardClerk } from "@distkit/distkit/shard";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function greet(transport: Transport) {
 *   const clerk = new ShardClerk(transport, ["ctrler-0", "ctrler-1", "ctrler-2"]);
 *   await clerk.put("greeting", "hello");
 *   return await clerk.get("greeting"); // "hello"
 * }
 * ```
 */
export class ShardClerk {
  readonly #ctrler: ShardControllerClerk;
  readonly #sessions: Sessions;
  readonly #options: ShardClerkOptions;
  readonly #clock: Clock;
  readonly #limits: KvLimits;
  readonly #groups: ReplicaClients;
  #config: ShardConfig | undefined;

  /**
   * Creates a clerk of the sharded service whose controller is run by `ctrlers`.
   *
   * @param transport How to reach the controller and the groups.
   * @param ctrlers The controller replicas' names.
   */
  constructor(transport: Transport, ctrlers: readonly string[], options: ShardClerkOptions = {}) {
    this.#options = options;
    this.#groups = new ReplicaClients(transport, {
      ...options,
      random: options.random?.fork(),
      service: SERVICE,
    });
    this.#clock = options.clock ?? defaultClock("ShardClerk");
    this.#limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    this.#sessions = new Sessions(options.id ?? defaultId("ShardClerk"));
    this.#ctrler = new ShardControllerClerk(transport, ctrlers, {
      ...options,
      id: `${this.#sessions.id}-ctrler`,
      random: options.random?.fork(),
    });
  }

  /** The client's id. */
  get id(): string {
    return this.#sessions.id;
  }

  /** The value of `key` (null when absent). */
  async get(key: string, options: ShardCallOptions = {}): Promise<KvValue | null> {
    refuseBadRequest(SERVICE, () => parseGet({ key }, this.#limits));
    const reply = await this.#route<{ value?: KvValue | null }>(key, "Get", { key }, {
      operation: "get",
      write: false,
      signal: options.signal,
      deadlineMs: options.deadlineMs,
    });
    return reply.value ?? null;
  }

  /**
   * The value of `key` as text (null when absent); a value stored as bytes
   * is decoded as UTF-8.
   *
   * @example
   * ```ts
   * import type { ShardClerk } from "@distkit/distkit/shard";
   *
   * async function greeting(clerk: ShardClerk): Promise<string> {
   *   return (await clerk.getText("greeting")) ?? "nobody said hello";
   * }
   * ```
   *
   * @throws {TypeError} when the value is bytes that are not valid UTF-8.
   */
  async getText(key: string, options: ShardCallOptions = {}): Promise<string | null> {
    const value = await this.get(key, options);
    return value === null ? null : valueAsText(value, key);
  }

  /**
   * The value of `key` as bytes (null when absent); a value stored as text
   * is encoded as UTF-8.
   *
   * @example
   * ```ts
   * import type { ShardClerk } from "@distkit/distkit/shard";
   *
   * async function size(clerk: ShardClerk): Promise<number> {
   *   return (await clerk.getBytes("photo"))?.length ?? 0;
   * }
   * ```
   */
  async getBytes(key: string, options: ShardCallOptions = {}): Promise<Uint8Array | null> {
    const value = await this.get(key, options);
    return value === null ? null : valueAsBytes(value);
  }

  /** Sets `key` to `value`. */
  async put(key: string, value: KvValue, options: ShardCallOptions = {}): Promise<void> {
    await this.#write({ type: "put", key, value }, options);
  }

  /** Appends `value` to the value of `key` (a missing key starts empty). */
  async append(key: string, value: KvValue, options: ShardCallOptions = {}): Promise<void> {
    await this.#write({ type: "append", key, value }, options);
  }

  /** Removes `key`; resolves to whether it was there (true from a server too old to say). */
  async delete(key: string, options: ShardCallOptions = {}): Promise<boolean> {
    const result = await this.#write({ type: "delete", key }, options);
    return result.existed ?? true;
  }

  async #write(write: KvWrite, options: ShardCallOptions): Promise<KvResult> {
    const clean = refuseBadRequest(SERVICE, () => parseWriteOp(write, this.#limits));
    const session = this.#sessions.take();
    let reply;
    try {
      reply = await this.#route<{ result?: KvResult }>(
        write.key,
        "Write",
        { client: session.id, seq: session.seq, write: clean },
        {
          operation: write.type,
          write: true,
          signal: options.signal,
          deadlineMs: options.deadlineMs,
          attempts: { mayHaveApplied: false },
        },
      );
    } catch (err) {
      // It may still apply in some group, after a later write of this session elsewhere.
      this.#sessions.release(session, "retired");
      throw err;
    }
    this.#sessions.release(session, "done");
    return checkWriteResult(reply.result, session.id, { service: SERVICE });
  }

  /**
   * Sends the request to the group of `key`'s shard until one serves it. A
   * write's `attempts` record spans every group tried, so a failure after
   * any attempt that may have been proposed says the write may have applied.
   */
  async #route<T extends object>(
    key: string,
    method: "Get" | "Write",
    args: unknown,
    options: ShardCallOptions & { operation: string; write: boolean; attempts?: WriteAttempts },
  ): Promise<T> {
    const { operation, attempts } = options;
    const deadlineMs = options.deadlineMs ?? this.#options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const deadline = new CallDeadline(deadlineMs, { clock: this.#clock, signal: options.signal });
    const shard = keyToShard(key);
    const route: Route = { controllersAnswered: false };
    try {
      return await this.#routeUntil<T>(shard, method, args, {
        ...options,
        signal: deadline.signal,
        route,
      });
    } catch (err) {
      if (!deadline.expired || !(err instanceof RequestAbortedError)) throw err;
      const timeout = {
        mayHaveApplied: err.mayHaveApplied || (attempts?.mayHaveApplied ?? false),
        deadlineMs,
        tried: withEarlier(route.last),
        cause: err,
      };
      // The controllers named a group (or none, just now): say it is the group that did not
      // answer, not leave the reader to suspect the controllers.
      const last = route.last;
      if (last !== undefined && (last.gid !== 0 || route.controllersAnswered)) {
        throw new ShardGroupTimeoutError(operation, {
          ...timeout,
          shard,
          gid: last.gid,
          configNum: last.configNum,
          controllersAnswered: route.controllersAnswered,
        });
      }
      throw new RequestTimeoutError(SERVICE, operation, timeout);
    } finally {
      deadline.cancel();
    }
  }

  async #routeUntil<T extends object>(
    shard: number,
    method: "Get" | "Write",
    args: unknown,
    options: {
      operation: string;
      write: boolean;
      signal?: AbortSignal;
      attempts?: WriteAttempts;
      route: Route;
    },
  ): Promise<T> {
    const { operation, attempts, signal, route } = options;
    try {
      while (true) {
        const config = this.#config ??= await this.#latest(route, signal);
        const gid = config.shards[shard];
        const earlier = route.last?.gid === gid ? route.last.tried : undefined;
        const last: Route["last"] = { configNum: config.num, gid, tried: [], earlier };
        route.last = last;
        if (gid !== 0) {
          const group = this.#groups.for(config.groups[gid]);
          // This call's own outcomes: the group's client may serve other calls at once.
          const log = new AttemptLog();
          const reply = await group.call<T>(
            `${SHARD_SERVICE}.${method}`,
            args,
            {
              operation,
              write: options.write,
              signal,
              attempts,
              rounds: 1,
              deadlineMs: Infinity,
              log,
            },
          ).finally(() => last.tried = log.list(group.servers));
          if (reply?.status === "ok") return reply;
          if (reply?.status === "wrong-group") {
            // The client counts it as an answer ("ok"); for this call it is a refusal.
            const at = last.tried.find((t) => t.server === group.leader);
            if (at) at.error = `answered wrong-group: it does not serve shard ${shard} now`;
          }
        }
        try {
          await delay(this.#options.retryMs ?? 100, { clock: this.#clock, signal });
        } catch {
          throw new RequestAbortedError(SERVICE, operation, {
            mayHaveApplied: false,
            cause: signal?.reason,
          });
        }
        this.#config = await this.#latest(route, signal);
      }
    } catch (err) {
      // A failure asking the controller, after a group may have taken the write, is no refusal.
      throw ambiguousIfProposed(err as Error, { service: SERVICE, operation, attempts });
    }
  }

  /** The latest configuration, from the controllers; notes in `route` that they answered. */
  async #latest(route: Route, signal: AbortSignal | undefined): Promise<ShardConfig> {
    const config = await this.#ctrler.query(-1, { signal });
    route.controllersAnswered = true;
    return config;
  }
}

/** What one call of the clerk learned of its route: for the error it may end with. */
interface Route {
  /** Whether the controllers answered during the call. */
  controllersAnswered: boolean;
  /**
   * The configuration the call routed by last, the group it gives the key's
   * shard to (0: none), and what each of the group's servers last did.
   */
  last?: {
    configNum: number;
    gid: number;
    tried: ServerAttempt[];
    /** What the servers did in the round before, when it asked the same group. */
    earlier?: ServerAttempt[];
  };
}

/**
 * The last round's outcomes, each with the round before's when it differs: a
 * round cut off by the deadline says only `no answer before the call was cut
 * off`, where the round before may have said `connection refused`.
 */
function withEarlier(last: Route["last"]): ServerAttempt[] {
  if (last === undefined) return [];
  return last.tried.map((t) => {
    const earlier = last.earlier?.find((e) => e.server === t.server)?.error;
    return earlier === undefined || earlier === t.error || earlier === "not tried"
      ? t
      : { server: t.server, error: `${t.error} (before that: ${earlier})` };
  });
}
