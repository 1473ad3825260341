/**
 * The HTTP/JSON API of a KV node, for `curl` and load tools:
 *
 * - `GET /kv/<key>`: the value (`text/plain` for strings,
 *   `application/octet-stream` for bytes), 404 when absent;
 * - `PUT /kv/<key>` with the value as the body (bytes when the content type
 *   is `application/octet-stream`, else UTF-8 text): 204;
 * - `POST /kv/<key>?op=append` with the value: 204;
 * - `POST /kv/<key>?op=cas` with `{"expected": string | null, "value": string}`:
 *   `{"ok": true}` or `{"ok": false, "current": ...}`;
 * - `DELETE /kv/<key>`: 204;
 * - `GET /status`: the node's Raft status and KV counters as JSON;
 * - `GET /metrics`: the same in Prometheus' text format.
 *
 * Keys and values go straight to the node's own replica, in client
 * sessions, so writes are applied exactly once and reads are linearizable. A node that does not lead answers
 * `/kv/` requests with `307 Temporary Redirect` to the leader's HTTP address
 * (`curl -L` follows it), or 503 with `Retry-After` while there is no leader.
 * Errors are JSON `{"error": "..."}`.
 *
 * Every error answer to a write says `"mayHaveApplied": false` (certainly
 * not applied: resend it freely) or `true` (the outcome is unknown: the
 * write may have been applied, and may still be). A write sent with
 * `X-Distkit-Client: <id>` and `X-Distkit-Seq: <n>` (the client's own
 * session: a unique id, and a number that rises with each new write) is
 * applied at most once however often it is resent with the same two
 * headers, so an unknown outcome is settled by resending it (a resend of a
 * number older than the client's latest applied one is answered 409: its
 * outcome can no longer be told); without them, read the key to find out
 * rather than resend.
 *
 * @module
 */
import { serveMembersHttp } from "./members_http.ts";
import type { Clock } from "../net/clock.ts";
import { ByteBudget } from "../net/frame_limits.ts";
import { type HttpServerStats, serveLightHttp } from "../net/http_server.ts";
import {
  lightFromRequest,
  type LightRequest,
  type LightResponse,
  responseFromLight,
} from "../net/http_light.ts";
import type { Logger } from "../net/logger.ts";
import { TimerQueue } from "../net/timer_queue.ts";
import type { TcpServerStats } from "../net/tcp_limits.ts";
import { defaultClock, defaultId, defaultRandom } from "../net/env.ts";
import type { Random } from "../net/random.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import { LocalKv, RequestDeadline } from "./http_local.ts";
import { DEFAULT_REFUSAL_PACE_MS, RefusalPace } from "./refusal_pace.ts";
import {
  mayHaveApplied,
  OutcomeUnknownError,
  OverloadedError,
  RequestAbortedError,
  RequestError,
  WrongLeaderError,
} from "../rsm/errors.ts";
import type { KvServer } from "./server.ts";
import { metrics } from "./http_metrics.ts";
import { ArgumentsError } from "../net/errors.ts";
import { DEFAULT_KV_LIMITS, type KvLimits } from "../kvstate/protocol.ts";
import { SMALL_WRITE_BYTES, smallWriteReserve } from "../rsm/replica_sizing.ts";
import type { Session } from "../rsm/replica_client.ts";
import {
  bodyReservation,
  BodyTooLarge,
  CLOSE,
  failure,
  json,
  parseCas,
  rawPath,
  readBody,
  sameSecret,
  Semaphore,
  sessionFrom,
  shown,
  valueFrom,
  valueResponse,
} from "./http_parts.ts";

/** Default of {@linkcode KvHttpOptions.maxBufferedBodyBytes}. */
const DEFAULT_MAX_BUFFERED_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Options of {@linkcode serveKvHttp}.
 *
 * @example
 * ```ts
 * import type { KvHttpOptions } from "@distkit/distkit/kv";
 *
 * const options: KvHttpOptions = { port: 8001, addresses: { "0": "127.0.0.1:8001" } };
 * ```
 */
export interface KvHttpOptions {
  /** The address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The port; 0 picks a free one. Default 0. */
  port?: number;
  /** Every node's HTTP address (`host:port`) by Raft id, to send clients to the leader. */
  addresses?: Record<string, string>;
  /** When set, requests must carry `Authorization: Bearer <secret>`. */
  secret?: string;
  /** The cluster id; a request naming another one in `X-Distkit-Cluster` is refused. */
  cluster?: string;
  /** Key and value limits (the node's). Default: the defaults. */
  limits?: Partial<KvLimits>;
  /** Largest request body, in bytes. Default: the value limit + 1 KiB. */
  maxBodyBytes?: number;
  /** Writes in progress at once; more wait their turn (each needs a client session). Default 64. */
  maxConcurrentWrites?: number;
  /**
   * Writes waiting for their turn, at most; beyond it a write is refused
   * at once (503, overloaded, not applied). Default 4 × `maxConcurrentWrites`.
   */
  maxQueuedWrites?: number;
  /**
   * Request bodies held in memory at once, in bytes (each counted from its
   * `Content-Length`, or as `maxBodyBytes` when sent chunked, from before it
   * is read until its answer); beyond it a request is refused before its
   * body is read (503, overloaded, not applied); the listener reads and
   * drops a small unread body (the connection goes on) and closes the
   * connection rather than read a large one (see `maxDrainBytes` of `serveHttp`).
   * A body over 64 KiB may take all of it but an eighth, kept for smaller
   * ones, so that small writes get in while large ones fill it.
   * Default 16 MiB (four times what the replica admits in progress by default).
   */
  maxBufferedBodyBytes?: number;
  /** How long one request may take before 503. Default 5,000 ms. */
  timeoutMs?: number;
  /**
   * A write over 64 KiB refused as overloaded before its body was read is
   * answered after this many milliseconds (its `Retry-After`, rounded to whole
   * seconds, at most), not at once: clients that resend large bodies sooner
   * than told made the leader spend more on refusals than on writes (issue
   * 16). The answer is the same 503, not applied; small writes are answered at
   * once. At most 512 wait at a time. 0: no pacing.
   * Default 1,000.
   */
  refusalPaceMs?: number;
  /** The clock that times requests and the pauses before a resend. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /**
   * A request's head must arrive within this many milliseconds of its first
   * byte, or the connection is closed. Default 10,000.
   */
  headerTimeoutMs?: number;
  /** A request's body must arrive within this many milliseconds once it is read. Default 30,000. */
  bodyTimeoutMs?: number;
  /** A kept-alive connection with no request for this long is closed. Default 5,000 ms. */
  idleTimeoutMs?: number;
  /** Connections open at once; more are answered 503 unread. Default 1,024. */
  maxConnections?: number;
  /** Connections open at once from one client IP address. Default 256. */
  maxConnectionsPerAddress?: number;
  /** Where the listener's summary line goes (refused and timed-out connections, counted). */
  logger?: Logger;
  /** The node's TCP listener's counters, for `/metrics` (e.g. `listener.stats` of `hostNode`). */
  tcpStats?: () => TcpServerStats;
  /** Randomness of the pauses before a write is resent (backoff jitter). Default: seeded from `SEED` or at random (none inside `simulate`). */
  random?: Random;
  /**
   * The id the handler's own client sessions are named after (writes sent without
   * `X-Distkit-Client` go in them). Default: a random UUID (none inside `simulate`: pass `sim.newId()`).
   * Unique to this run of this process: only it ever sends in those sessions, so
   * their writes' digests are its own (`KvServeWriteOptions.ownSession`).
   */
  clerkId?: string;
}

/**
 * A running HTTP API, as returned by {@linkcode serveKvHttp}.
 *
 * @example
 * ```ts
 * import type { KvHttpServer } from "@distkit/distkit/kv";
 *
 * function where(http: KvHttpServer): string {
 *   return `http://${http.address}/status`;
 * }
 * ```
 */
export interface KvHttpServer {
  /** Where it listens, `host:port`. */
  readonly address: string;
  /** Stops listening and waits for requests in progress. */
  close(): Promise<void>;
}

/**
 * Serves the HTTP API of the node whose KV server is `kv` and whose RPC
 * server (the one `kv` registered on) is `rpc`.
 *
 * @example
 * ```ts ignore
 * import { serveKvHttp } from "@distkit/distkit/kv";
 *
 * const http = serveKvHttp(kv, rpc, { port: 8001 });
 * // curl -L -X PUT --data hello http://127.0.0.1:8001/kv/greeting
 * await http.close();
 * ```
 */
export function serveKvHttp(
  kv: KvServer,
  rpc: RpcServer,
  options: KvHttpOptions = {},
): KvHttpServer {
  // The handler is made before the listener it reports on.
  const made: { server?: ReturnType<typeof serveLightHttp> } = {};
  const closing = new AbortController();
  const internal: InternalOptions = {
    ...options,
    [HTTP_STATS]: () => made.server?.stats(),
    [CLOSING]: closing.signal,
  };
  const handler = kvLightHandler(kv, rpc, internal);
  const timeoutMs = options.timeoutMs ?? 5000;
  // Our own listener, not Deno.serve: it has head, body and idle deadlines and connection caps,
  // and hands the handler a light request, not a Request, Headers and a body stream (issue 20).
  const listening = serveLightHttp(handler, {
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    headerTimeoutMs: options.headerTimeoutMs,
    bodyTimeoutMs: options.bodyTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxConnections: options.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress,
    logger: options.logger,
    onError: (err) => failure(500, `internal error: ${(err as Error).message}`),
  });
  made.server = listening;
  return {
    address: listening.address,
    // Requests in progress get a few seconds to finish, not for ever; paced refusals at once.
    close: () => {
      closing.abort();
      return listening.close(timeoutMs + 1000);
    },
  };
}

/** `Retry-After` of an overload refusal: whole seconds, at least 1. */
function retryAfterSeconds(err: OverloadedError): number {
  return Math.max(1, Math.ceil(err.retryAfterMs / 1000));
}

/** Where serveKvHttp hands its handler the listener's counters, for /metrics. */
const HTTP_STATS = Symbol("http listener stats");
/** Where serveKvHttp hands its handler a signal that fires when the listener closes. */
const CLOSING = Symbol("http listener closing");
type InternalOptions = KvHttpOptions & {
  [HTTP_STATS]?: () => HttpServerStats | undefined;
  [CLOSING]?: AbortSignal;
};

/**
 * The request handler of {@linkcode serveKvHttp}, for a server of the
 * caller's own (or a test that calls it with `Request`s directly).
 *
 * @example
 * ```ts ignore
 * import { kvHttpHandler } from "@distkit/distkit/kv";
 *
 * Deno.serve({ port: 8001 }, kvHttpHandler(kv, rpc));
 * ```
 */
export function kvHttpHandler(
  kv: KvServer,
  rpc: RpcServer,
  options: KvHttpOptions = {},
): (req: Request) => Promise<Response> {
  const handle = kvLightHandler(kv, rpc, options);
  return async (req) => {
    const answer = await handle(lightFromRequest(req));
    return answer instanceof Response ? answer : responseFromLight(answer);
  };
}

/** The handler of {@linkcode kvHttpHandler}, on light requests and answers (`/members`: a `Response`). */
function kvLightHandler(
  kv: KvServer,
  rpc: RpcServer,
  options: KvHttpOptions,
): (req: LightRequest) => Promise<LightResponse | Response> {
  const id = kv.raft.id;
  const clock = options.clock ?? defaultClock("kvHttpHandler");
  const timeoutMs = options.timeoutMs ?? 5000;
  // The requests' deadlines share one timer: nearly all are answered long before theirs.
  const timers = new TimerQueue(clock);
  const limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
  const maxBody = options.maxBodyBytes ?? limits.maxValueBytes + 1024;
  // Keys and values go straight to this node's replica, in sessions of the
  // handler's own when the client brings none (issue 20: no RPC layer).
  const local = new LocalKv(kv, {
    clock,
    random: options.random ?? defaultRandom("kvHttpHandler"),
    id: options.clerkId ?? defaultId("kvHttpHandler"),
  });
  const maxWrites = options.maxConcurrentWrites ?? 64;
  const writes = new Semaphore(maxWrites, options.maxQueuedWrites ?? 4 * maxWrites);
  const bodies = new ByteBudget(options.maxBufferedBodyBytes ?? DEFAULT_MAX_BUFFERED_BODY_BYTES);
  const requests = new Map<string, number>();
  /** Requests this handler refused as overloaded (its own limits, and the replica's). */
  let overloads = 0;
  const pace = new RefusalPace({
    ms: options.refusalPaceMs ?? DEFAULT_REFUSAL_PACE_MS,
    clock,
    signal: (options as InternalOptions)[CLOSING],
  });

  /** The HTTP address of `leaderId`, unless it is unknown or this node. */
  function addressOf(leaderId: string | null): string | undefined {
    return leaderId === null || leaderId === id ? undefined : options.addresses?.[leaderId];
  }

  /** Sends the client to the leader; the request was certainly not proposed here. */
  function redirect(
    url: () => URL,
    leaderId: string | null,
    extra: Record<string, unknown>,
  ): LightResponse {
    const leader = addressOf(leaderId);
    if (leader === undefined) {
      return failure(503, "no leader is known yet; retry shortly", { leader: leaderId, ...extra }, {
        "retry-after": "1",
      });
    }
    const { pathname, search } = url();
    const location = `http://${leader}${pathname}${search}`;
    return json(307, { error: "this node does not lead", leader: leaderId, location, ...extra }, {
      location,
    });
  }

  /**
   * The answer to a write whose outcome is unknown. With the client's own
   * session a resend is applied at most once, so it is invited (and a
   * redirect may be followed); without, a resend could apply it twice, so
   * the answer neither redirects nor says when to retry.
   */
  function unknownOutcome(
    url: () => URL,
    err: Error,
    session: Session | undefined,
  ): LightResponse {
    const cause = err.cause;
    const reason = cause instanceof WrongLeaderError
      ? "this node stopped leading before it learned whether the write was committed"
      : err instanceof OutcomeUnknownError
      ? err.reason
      : `not finished within ${timeoutMs} ms`;
    const leaderId = cause instanceof WrongLeaderError ? cause.leader : kv.raft.status().leader;
    const known = { mayHaveApplied: true, outcome: "unknown", leader: leaderId };
    if (err instanceof OutcomeUnknownError && err.superseded) {
      return failure(
        409,
        `this client has had a later write applied (X-Distkit-Seq above ${session?.seq}), so ` +
          `whether this one was applied can no longer be told; read the key to find out, and ` +
          `number each new write higher than the last, one at a time`,
        known,
      );
    }
    if (session !== undefined) {
      const error = `the write may or may not have been applied (${reason}); resend it with the ` +
        `same X-Distkit-Client and X-Distkit-Seq, which applies it at most once`;
      const leader = cause instanceof WrongLeaderError ? addressOf(leaderId) : undefined;
      if (leader === undefined) return failure(503, error, known, { "retry-after": "1" });
      const { pathname, search } = url();
      const location = `http://${leader}${pathname}${search}`;
      return json(307, { error, ...known, location }, { location });
    }
    return failure(
      503,
      `the write may or may not have been applied (${reason}), and may still be; do not resend ` +
        `it blindly: read the key to find out, or send writes with X-Distkit-Client and ` +
        `X-Distkit-Seq headers, which make a resend with the same ones apply at most once`,
      known,
    );
  }

  async function serveKey(req: LightRequest, url: () => URL, key: string): Promise<LightResponse> {
    const write = req.method !== "GET";
    const definite = write ? { mayHaveApplied: false } : {};
    if (kv.stopped) {
      return failure(503, "this node has stopped; use another", definite, { "retry-after": "1" });
    }
    const session = write ? sessionFrom(req) : undefined;
    const status = kv.raft.status();
    if (status.role !== "leader") return redirect(url, status.leader, definite);
    // The request's one timer: its deadline, and the replica's for each attempt.
    const timer = new RequestDeadline(timers, { timeoutMs, attemptMs: kv.requestTimeoutMs });
    try {
      return await serveLeader(req, url, key, { deadline: timer, session });
    } catch (err) {
      // Not proposed here: the leader may take it.
      if (err instanceof WrongLeaderError) return redirect(url, err.leader, definite);
      if (write && mayHaveApplied(err)) return unknownOutcome(url, err as Error, session);
      throw err;
    } finally {
      timer.cancel();
    }
  }

  async function serveLeader(
    req: LightRequest,
    url: () => URL,
    key: string,
    options: { deadline: RequestDeadline; session?: Session },
  ): Promise<LightResponse> {
    const { deadline } = options;
    const body = () => readBody(req, maxBody, deadline.signal);
    switch (req.method) {
      case "GET": {
        const value = await local.get(key, deadline);
        return value === null
          ? failure(404, `no key ${JSON.stringify(key)}`)
          : valueResponse(value);
      }
      case "PUT": {
        const value = valueFrom(req, await body());
        await writes.run(() => local.write({ type: "put", key, value }, options));
        return { status: 204 };
      }
      case "DELETE":
        await writes.run(() => local.write({ type: "delete", key }, options));
        return { status: 204 };
      case "POST": {
        const op = url().searchParams.get("op");
        if (op === "append") {
          const value = valueFrom(req, await body());
          await writes.run(() => local.write({ type: "append", key, value }, options));
          return { status: 204 };
        }
        if (op === "cas") {
          const change = parseCas(await body());
          const outcome = await writes.run(() =>
            local.write(
              { type: "cas", key, expected: change.expected, value: change.value },
              options,
            )
          );
          return json(
            200,
            outcome.ok ? { ok: true } : { ok: false, current: shown(outcome.current ?? null) },
          );
        }
        return failure(400, `POST needs ?op=append or ?op=cas, got ${JSON.stringify(op)}`, {
          mayHaveApplied: false,
        });
      }
      default:
        return failure(405, `${req.method} is not supported on /kv/`, { mayHaveApplied: false }, {
          allow: "GET, PUT, POST, DELETE",
        });
    }
  }

  async function handle(req: LightRequest): Promise<LightResponse | Response> {
    // Every refusal of a write says whether it may have been applied; these certainly were not.
    const definite = req.method === "GET" ? {} : { mayHaveApplied: false };
    if (options.secret !== undefined) {
      const auth = req.header("authorization") ?? "";
      if (!auth.startsWith("Bearer ") || !sameSecret(auth.slice(7), options.secret)) {
        return failure(
          401,
          "missing or wrong secret; send Authorization: Bearer <secret>",
          definite,
          {
            "www-authenticate": "Bearer",
          },
        );
      }
    }
    const theirs = req.header("x-distkit-cluster");
    if (theirs !== null && theirs !== (options.cluster ?? "")) {
      return failure(
        421,
        `this node serves cluster ${JSON.stringify(options.cluster ?? "")}, not ${
          JSON.stringify(theirs)
        }`,
        definite,
      );
    }
    // Parsed only when needed (a redirect, a POST's op): most requests need the raw path alone.
    let parsed: URL | undefined;
    const url = () => parsed ??= new URL(req.url);
    // The path as sent: URL parsing would resolve "." and ".." segments inside keys.
    const raw = rawPath(req.target);
    if (raw === "/status" || raw === "/metrics") {
      if (req.method !== "GET") {
        return failure(405, `${raw} answers GET only`, {}, { allow: "GET" });
      }
      if (raw === "/status") {
        return json(200, {
          ...kv.raft.status(),
          leaderChanges: kv.raft.leaderChanges,
          stopped: kv.stopped,
          cluster: options.cluster ?? "",
          kv: kv.stats(),
        });
      }
      const listeners = {
        http: (options as InternalOptions)[HTTP_STATS]?.(),
        tcp: options.tcpStats?.(),
      };
      return {
        status: 200,
        headers: { "content-type": "text/plain; version=0.0.4" },
        body: metrics(kv, requests, overloads, listeners),
      };
    }
    if (raw === "/members" || raw.startsWith("/members/")) {
      return await serveMembersHttp(rpc, req.toRequest(), {
        path: raw,
        redirect: (leader, extra) => responseFromLight(redirect(url, leader, extra)),
      });
    }
    if (!raw.startsWith("/kv/") || raw.length === 4) {
      return failure(404, "not found; use /kv/<key>, /members, /status or /metrics", definite);
    }
    let key: string;
    try {
      key = decodeURIComponent(raw.slice(4));
    } catch {
      return failure(400, "the key is not valid percent-encoded UTF-8", definite);
    }
    // The body's memory is reserved before it is read, and held until the answer.
    const reserved = !req.hasBody ? 0 : bodyReservation(req, maxBody);
    // A leader that would refuse the write anyway refuses before the body is read.
    const refusal = req.method === "GET" || kv.raft.status().role !== "leader"
      ? undefined
      : kv.overloadRefusal(reserved);
    if (refusal !== undefined) {
      // The body is left unread: the listener drops a small one, and closes rather than read a
      // large one (issue 16: draining refused 1 MiB bodies was a large part of a leader's work).
      return await refusedUnread(new OverloadedError("kv", refusal), reserved, definite);
    }
    // A large body leaves a part of the budget to small ones (a canary's put, a lock).
    const leave = reserved > SMALL_WRITE_BYTES ? smallWriteReserve(bodies.limit) : 0;
    if (!bodies.tryTake(reserved, { leave })) {
      const held = bodies.limit - bodies.available;
      const err = new OverloadedError(
        "kv",
        `${held} bytes of request bodies are held and this one needs ${reserved}; ` +
          `the limit is ${bodies.limit}` +
          (leave > 0
            ? `, less ${leave} kept for bodies of ${SMALL_WRITE_BYTES} bytes or less`
            : ""),
      );
      return await refusedUnread(err, reserved, definite);
    }
    try {
      return await serveKey(req, url, key);
    } catch (err) {
      // The body may be unread: the client is asked to close the connection (Deno.serve
      // itself keeps it open while the client goes on sending, dropping what it reads).
      if (err instanceof BodyTooLarge) return failure(413, err.message, definite, CLOSE);
      if (err instanceof OverloadedError) return overloaded(err, definite);
      if (err instanceof RequestError || err instanceof ArgumentsError) {
        return failure(400, err.message, definite);
      }
      if (err instanceof RequestAbortedError) {
        return failure(503, `not finished within ${timeoutMs} ms; retry`, definite, {
          "retry-after": "1",
        });
      }
      if (req.method === "GET" || err instanceof OutcomeUnknownError) throw err;
      // A failure of our own during a write: it may have been proposed.
      return failure(
        500,
        `internal error: ${(err as Error).message}; the write may or may not have been applied, ` +
          `read the key to find out`,
        { mayHaveApplied: true, outcome: "unknown" },
      );
    } finally {
      bodies.give(reserved);
    }
  }

  /** 503 for a write refused before its body was read: a large one after its Retry-After. */
  async function refusedUnread(
    err: OverloadedError,
    reserved: number,
    definite: Record<string, unknown>,
  ): Promise<LightResponse> {
    if (reserved > SMALL_WRITE_BYTES) await pace.hold(retryAfterSeconds(err) * 1000);
    return overloaded(err, definite);
  }

  /** 503 for a request refused before it was proposed, because the node is at a limit. */
  function overloaded(
    err: OverloadedError,
    definite: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): LightResponse {
    overloads++;
    return failure(503, err.message, { ...definite, overloaded: true }, {
      "retry-after": String(retryAfterSeconds(err)),
      ...headers,
    });
  }

  return async (req) => {
    const response = await handle(req);
    const code = String(response.status);
    requests.set(code, (requests.get(code) ?? 0) + 1);
    return response;
  };
}
