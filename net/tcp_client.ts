/**
 * The TCP client: {@linkcode TcpClient} calls one server over one lazily
 * opened connection, with the client's side of the handshake.
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";
import { Codec } from "./codec.ts";
import { deadline, delay } from "./async.ts";
import { decodeEnvelope, encodeRequest, type Envelope, settle } from "./envelope.ts";
import {
  AbortedError,
  ClosedError,
  CodecError,
  ProtocolError,
  RefusedError,
  RpcError,
  TimeoutError,
  UnreachableError,
} from "./errors.ts";
import { formatAddr, FramedConnection } from "./frame.ts";
import {
  checkCluster,
  checkSecret,
  decodeServerMessage,
  encodeHello,
  encodeProof,
  HANDSHAKE_MAX_FRAME_BYTES,
  httpLookalike,
  importSecret,
  type MemberHello,
  memberHello,
  proofOf,
  randomNonce,
  timingSafeEqual,
} from "./handshake.ts";
import type { Random } from "./random.ts";
import type { CallOptions, ClientEnd } from "./transport.ts";
import {
  type BackoffOptions,
  checkMaxFrameBytes,
  checkTimeout,
  type ClusterOptions,
  DEFAULT_TCP_TIMEOUT_MS,
  type MemberOptions,
  messageOf,
} from "./tcp_options.ts";
import { parseAddress } from "./address.ts";

/** Largest request id; ids wrap around to 1 after it (0 is reserved). */
const MAX_ID = 0xffff_ffff;
/** The failure of a call whose request was never handed to a connection. */
const UNSENT = { notSent: true } as const;
/**
 * Options for {@linkcode TcpClient}.
 *
 * @example
 * ```ts
 * import { Random, type TcpClientOptions } from "@distkit/distkit/net";
 *
 * const options: TcpClientOptions = {
 *   timeoutMs: 2_000,
 *   backoff: { baseMs: 20, maxMs: 500 },
 *   random: new Random(7),
 *   cluster: "blue",
 *   secret: "a long random string shared by the cluster",
 * };
 * ```
 */
export interface TcpClientOptions extends ClusterOptions {
  /** The peer's name in errors and in `ClientEnd.peer`. Default: the address. */
  peer?: string;
  /**
   * The deadline of a call without its own `timeoutMs`, in milliseconds;
   * `Infinity` waits for ever. A connection attempt (connecting and the
   * handshake) that takes longer is abandoned and counts as a failed one.
   * Default 10,000.
   */
  timeoutMs?: number;
  /** The largest frame sent or accepted, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /** The clock deadlines and backoff are timed on. Default: the real clock. */
  clock?: Clock;
  /** Jitter for the reconnect backoff. Default: none. */
  random?: Random;
  /**
   * How long to wait before reconnecting after a failed attempt; after a
   * refused one, the client waits `backoff.maxMs`.
   */
  backoff?: BackoffOptions;
}

interface Link {
  framed: FramedConnection;
  /** Calls sent on this connection and not yet answered, by id. */
  pending: Map<number, CallState>;
}

interface CallState {
  id: number;
  method: string;
  done: boolean;
  link: Link | undefined;
  /** Created only when the call has to wait (backoff); aborted when it ends. */
  controller: AbortController | undefined;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Calls one TCP server (see {@linkcode serveTcp}) over one connection.
 *
 * The connection opens on the first call and carries any number of
 * concurrent calls, matched to their answers by id. Calls reject with:
 *
 * - {@linkcode UnreachableError} when the server cannot be reached (the OS
 *   error is the `cause`), does not finish the handshake in time, or the
 *   connection is lost before the answer arrives (the handler may or may not
 *   have run); the next call reconnects;
 * - {@linkcode RefusedError} when the handshake fails: the server serves
 *   another cluster, or the shared secrets do not match (see
 *   {@linkcode ClusterOptions}); no call ran;
 * - {@linkcode TimeoutError} when the deadline passes (a late answer is
 *   ignored), {@linkcode AbortedError} when the call's signal fires;
 * - {@linkcode ClosedError} once {@linkcode TcpClient.close} was called;
 * - {@linkcode FrameTooLargeError} or {@linkcode CodecError} with `notSent`
 *   true when the request is over `maxFrameBytes` or cannot be encoded;
 * - the typed failure the server reported (`RemoteError`,
 *   `UnknownServiceError`, `BadArgumentsError`, ...);
 * - {@linkcode CodecError} or {@linkcode ProtocolError} when the server sends
 *   something that is not a valid answer; the connection is then closed.
 *
 * A call that fails before its request was handed to a connection (its
 * arguments could not be encoded or are over `maxFrameBytes`; while
 * connecting or backing off, refused, closed) has `notSent` true: no server
 * ran it. Once handed over, `notSent` is false: it may have run.
 *
 * After a failed connection attempt, the client waits `backoff.baseMs`
 * before the next one, doubling up to `backoff.maxMs`; a call made in that
 * window waits for it to end and then tries once, or fails at once with
 * {@linkcode UnreachableError} when its deadline would pass first (or always,
 * with `backoff.failFast`). A successful connection resets the backoff. A
 * connection attempt lasts at most the client's `timeoutMs`, and
 * {@linkcode TcpClient.close} ends one in progress at once.
 *
 * Every connection starts with the handshake, and calls go out only once it
 * has succeeded. A refusal is not retried in a loop: for `backoff.maxMs`
 * after it (2 s by default) the client makes no new attempt, and calls fail
 * at once with the same {@linkcode RefusedError}; then the next call tries
 * again, so a server whose options were fixed is reached without a new
 * client.
 *
 * @example
 * ```ts
 * import { RpcServer, serveTcp, TcpClient, TimeoutError } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("KV", { Get: ({ key }: { key: string }) => `value of ${key}` });
 * const server = serveTcp(rpc);
 * const client = new TcpClient(server.address, { timeoutMs: 1_000 });
 * const values = await Promise.all(["a", "b", "c"].map((key) => client.call("KV.Get", { key })));
 * assert.deepEqual(values, ["value of a", "value of b", "value of c"]);
 * await client.close();
 * await server.close();
 * ```
 */
export class TcpClient implements ClientEnd {
  /** The peer's name (the address unless the `peer` option was given). */
  readonly peer: string;
  #address: string;
  #hostname: string;
  #port: number;
  #codec: Codec;
  #maxFrameBytes: number;
  #timeoutMs: number;
  #clock: Clock;
  #random: Random | undefined;
  #baseMs: number;
  #maxMs: number;
  #link: Link | undefined;
  #connecting: Promise<Link> | undefined;
  readonly #failFast: boolean;
  /** Aborts the connection attempt in progress (on close, or when it takes too long). */
  #connectAbort: AbortController | undefined;
  #failures = 0;
  #retryAt = 0;
  #lastConnectError: unknown;
  /** The refusal that ended the last attempt, while the client waits after it. */
  #refusal: RefusedError | undefined;
  #cluster: string;
  #secret: Uint8Array | undefined;
  #key: Promise<CryptoKey> | undefined;
  #member: MemberOptions | undefined;
  #nextId = 1;
  #calls = new Set<CallState>();
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * Creates a client; nothing is opened until the first call.
   *
   * @param address The server's `"host:port"` (`"[::1]:7000"` for IPv6).
   * @param options Deadlines, limits, backoff, clock, jitter, cluster and secret.
   * @throws {TypeError} when the address is not `host:port`, or an option has the wrong type.
   * @throws {RangeError} when an option is out of range.
   */
  constructor(address: string, options: TcpClientOptions = {}) {
    const { hostname, port } = parseAddress(address);
    this.#hostname = hostname;
    this.#port = port;
    this.#address = formatAddr({ hostname, port });
    this.peer = options.peer ?? this.#address;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TCP_TIMEOUT_MS;
    checkTimeout(this.#timeoutMs, "timeoutMs");
    this.#maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
    this.#codec = new Codec({ maxMessageBytes: this.#maxFrameBytes });
    this.#clock = options.clock ?? realClock;
    this.#random = options.random;
    this.#baseMs = options.backoff?.baseMs ?? 50;
    this.#maxMs = options.backoff?.maxMs ?? 2000;
    this.#failFast = options.backoff?.failFast ?? false;
    if (!(this.#baseMs >= 0) || !(this.#maxMs >= this.#baseMs) || !Number.isFinite(this.#maxMs)) {
      throw new RangeError(
        `backoff needs 0 <= baseMs <= maxMs < Infinity, got baseMs ${this.#baseMs} and maxMs ${this.#maxMs}`,
      );
    }
    this.#cluster = checkCluster(options.cluster);
    this.#secret = checkSecret(options.secret);
    this.#member = options.member;
  }

  /** The server's address, `"host:port"` (the latest given to {@linkcode TcpClient.retarget}). */
  get address(): string {
    return this.#address;
  }

  /**
   * Points the client at another address of the same server (a node that
   * moved): the connection open now, if any, is closed (its calls in
   * progress fail as a lost connection: they may or may not have run), and
   * the next call connects to `address` at once.
   *
   * @param address The server's new `"host:port"`.
   * @throws {TypeError} when the address is not `host:port`.
   */
  retarget(address: string): void {
    const { hostname, port } = parseAddress(address);
    const formatted = formatAddr({ hostname, port });
    if (this.#closed || formatted === this.#address) return;
    this.#hostname = hostname;
    this.#port = port;
    this.#address = formatted;
    this.#failures = 0;
    this.#retryAt = 0;
    this.#refusal = undefined;
    const moved = new ServerMovedError(`the server moved to ${formatted}`);
    this.#connectAbort?.abort(moved);
    this.#link?.framed.close(moved).catch(() => {});
  }

  /** Closes the open connection (its calls fail as lost); the next call connects and handshakes again. */
  reconnect(reason: string): void {
    if (this.#closed) return;
    this.#link?.framed.close(new Error(reason)).catch(() => {});
  }

  /** The cluster this client belongs to (`""`: the unnamed cluster). */
  get cluster(): string {
    return this.#cluster;
  }

  /** Whether a connection is open right now. */
  get connected(): boolean {
    return this.#link !== undefined;
  }

  /** How many calls are waiting for an answer (or for a connection). */
  get pendingCalls(): number {
    return this.#calls.size;
  }

  /**
   * Calls `method` (`"Service.Method"`) on the server with `args` and
   * resolves with the answer; see {@linkcode TcpClient} for the errors.
   *
   * @param method The full method name, `"Service.Method"`.
   * @param args The arguments; anything MessagePack can carry.
   * @param options A deadline overriding the client's, and an abort signal.
   */
  call<T = unknown>(method: string, args?: unknown, options: CallOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#what(), UNSENT));
    if (typeof method !== "string") {
      return Promise.reject(
        new TypeError(`method must be a "Service.Method" string, got ${typeof method}`),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    try {
      checkTimeout(timeoutMs, "CallOptions.timeoutMs");
    } catch (err) {
      return Promise.reject(err);
    }
    const { signal } = options;
    if (signal?.aborted) {
      return Promise.reject(new AbortedError(method, { cause: signal.reason, notSent: true }));
    }
    const id = this.#allocateId();
    let payload: Uint8Array;
    try {
      payload = encodeRequest(this.#codec, { kind: "request", id, method, args });
    } catch (err) {
      return Promise.reject(err); // CodecError or FrameTooLargeError, notSent: no byte left
    }
    const state: CallState = {
      id,
      method,
      done: false,
      link: undefined,
      controller: undefined,
      resolve: () => {},
      reject: () => {},
    };
    const work = new Promise<unknown>((resolve, reject) => {
      state.resolve = resolve;
      state.reject = reject;
    });
    this.#calls.add(state);
    const deadlineAt = this.#clock.now() + timeoutMs;
    this.#start(state, payload, deadlineAt);
    return deadline(work, {
      timeoutMs: Number.isFinite(timeoutMs) ? timeoutMs : undefined,
      signal,
      clock: this.#clock,
      // Not yet handed to a connection (state.link is set just before): it never left.
      onTimeout: () => {
        const err = new TimeoutError(method, timeoutMs, { notSent: state.link === undefined });
        this.#reject(state, err);
        return err;
      },
      onAbort: (reason) => {
        const err = new AbortedError(method, { cause: reason, notSent: state.link === undefined });
        this.#reject(state, err);
        return err;
      },
    }) as Promise<T>;
  }

  /**
   * Closes the client: calls in progress reject with {@linkcode ClosedError},
   * and so does every later call. Resolves once the connection (and any
   * connection attempt in progress) is closed. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const err = new ClosedError(this.#what());
    const unsent = new ClosedError(this.#what(), UNSENT);
    for (const state of [...this.#calls]) this.#reject(state, state.link ? err : unsent);
    const connecting = this.#connecting;
    // A connection attempt to a host that does not answer can hang for minutes.
    this.#connectAbort?.abort(err);
    this.#closing = (async () => {
      await connecting?.catch(() => {});
      await this.#link?.framed.close(err);
    })();
    return this.#closing;
  }

  #what(): string {
    return `TCP client for ${this.peer}`;
  }

  #allocateId(): number {
    const pending = this.#link?.pending;
    let id = this.#nextId;
    while (pending?.has(id)) id = id >= MAX_ID ? 1 : id + 1;
    this.#nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }

  async #start(state: CallState, payload: Uint8Array, deadlineAt: number): Promise<void> {
    try {
      const link = this.#link ?? await this.#linkFor(state, deadlineAt);
      if (state.done) return;
      if (link.framed.isClosed) {
        throw new UnreachableError(
          this.peer,
          `the connection to ${this.#address} was lost before the request was sent; try again`,
          UNSENT,
        );
      }
      state.link = link;
      link.pending.set(state.id, state);
      link.framed.send(payload);
    } catch (err) {
      this.#reject(state, err);
    }
  }

  async #linkFor(state: CallState, deadlineAt: number): Promise<Link> {
    let waited = false;
    while (true) {
      if (this.#closed) throw new ClosedError(this.#what(), UNSENT);
      if (this.#link) return this.#link;
      if (this.#connecting) return await this.#connecting;
      const wait = this.#retryAt - this.#clock.now();
      if (wait > 0 && this.#refusal) {
        const { reason, refusedBy } = this.#refusal;
        throw new RefusedError(this.peer, this.#address, reason, refusedBy, {
          cause: this.#refusal,
        });
      }
      if (wait > 0) {
        const why = `the last connection attempt to ${this.#address} failed ` +
          `(${messageOf(this.#lastConnectError)})`;
        if (waited || this.#failFast) {
          throw new UnreachableError(
            this.peer,
            `${why}; the client is backing off, try again later`,
            { cause: this.#lastConnectError, notSent: true },
          );
        }
        if (deadlineAt - this.#clock.now() < wait) {
          throw new UnreachableError(
            this.peer,
            `${why}; the next attempt is in ${Math.ceil(wait)} ms, after this call's deadline`,
            { cause: this.#lastConnectError, notSent: true },
          );
        }
        state.controller ??= new AbortController();
        await delay(wait, { clock: this.#clock, signal: state.controller.signal });
        waited = true;
        continue;
      }
      return await this.#connect();
    }
  }

  #connect(): Promise<Link> {
    const abort = new AbortController();
    this.#connectAbort = abort;
    // An attempt that outlasts a call's deadline is abandoned, so that a host
    // that stopped answering cannot stall the client until the OS gives up.
    const limit = Number.isFinite(this.#timeoutMs)
      ? this.#clock.setTimer(this.#timeoutMs, () => {
        abort.abort(new Error(`no answer within ${this.#timeoutMs} ms (timeoutMs)`));
      })
      : undefined;
    const attempt = (async (): Promise<Link> => {
      try {
        let conn: Deno.TcpConn;
        try {
          conn = await Deno.connect({
            hostname: this.#hostname,
            port: this.#port,
            transport: "tcp",
            signal: abort.signal,
          });
        } catch (caught) {
          if (this.#closed) throw new ClosedError(this.#what(), UNSENT);
          const err = abort.signal.aborted ? abort.signal.reason : caught;
          if (err instanceof ServerMovedError) throw this.#moved(err);
          const wait = this.#failed(err);
          throw new UnreachableError(
            this.peer,
            `cannot connect to ${this.#address} (${messageOf(err)}); check that the server is ` +
              `running there; the next attempt waits ${Math.ceil(wait)} ms`,
            { cause: err, notSent: true },
          );
        }
        if (this.#closed) {
          conn.close();
          throw new ClosedError(this.#what(), UNSENT);
        }
        let link: Link;
        try {
          link = await this.#handshake(conn, abort.signal);
        } catch (caught) {
          if (this.#closed) throw new ClosedError(this.#what(), UNSENT);
          if (caught instanceof RefusedError) {
            // Retrying at once would be refused again: wait as long as the
            // backoff ever does.
            const window = this.#maxMs;
            const wait = this.#random ? window / 2 + this.#random.next() * (window / 2) : window;
            this.#retryAt = this.#clock.now() + wait;
            this.#lastConnectError = caught;
            this.#refusal = caught;
            throw caught;
          }
          const err = abort.signal.aborted ? abort.signal.reason : caught;
          if (err instanceof ServerMovedError) throw this.#moved(err);
          const wait = this.#failed(err);
          throw new UnreachableError(
            this.peer,
            `the handshake with ${this.#address} failed (${messageOf(err)}); check that a ` +
              `distkit server is running there; the next attempt waits ${Math.ceil(wait)} ms`,
            { cause: err, notSent: true },
          );
        }
        this.#failures = 0;
        this.#retryAt = 0;
        this.#lastConnectError = undefined;
        this.#refusal = undefined;
        return link;
      } finally {
        limit?.cancel();
        this.#connecting = undefined;
        this.#connectAbort = undefined;
      }
    })();
    this.#connecting = attempt;
    return attempt;
  }

  /** An attempt cut short by {@linkcode TcpClient.retarget}: no backoff, the next call connects at once. */
  #moved(err: ServerMovedError): UnreachableError {
    return new UnreachableError(
      this.peer,
      `${err.message} while a connection was being opened; the next call connects there`,
      { cause: err, notSent: true },
    );
  }

  /** Counts a failed attempt and returns how long to wait before the next one. */
  #failed(err: unknown): number {
    this.#failures++;
    const window = Math.min(this.#maxMs, this.#baseMs * 2 ** (this.#failures - 1));
    const wait = this.#random ? window / 2 + this.#random.next() * (window / 2) : window;
    this.#retryAt = this.#clock.now() + wait;
    this.#lastConnectError = err;
    this.#refusal = undefined;
    return wait;
  }

  /**
   * Runs the client's side of the handshake on a new connection and resolves
   * with the link (adopted as `#link`) once the server has let this client
   * in. Rejects with a {@linkcode RefusedError} when either end refuses the
   * other, or with why the connection was lost (or `signal` fired) before
   * the handshake ended; the connection is closed by then.
   */
  async #handshake(conn: Deno.TcpConn, signal: AbortSignal): Promise<Link> {
    const link: Link = { framed: undefined as unknown as FramedConnection, pending: new Map() };
    const done = Promise.withResolvers<void>();
    let phase: "hello" | "proof" | "checking" | "open" = "hello";
    let busy: Promise<void> = Promise.resolve();
    let serverProof: Uint8Array | undefined;
    const nonce = randomNonce();
    const secret = this.#secret;
    const fail = (err: unknown) => {
      done.reject(err);
      link.framed.close(err);
    };
    const refuse = (reason: string) =>
      fail(new RefusedError(this.peer, this.#address, reason, "client"));
    const member = this.#member;
    const open = () => {
      phase = "open";
      link.framed.maxFrameBytes = this.#maxFrameBytes;
      // Adopted at once, so that a close from now on finds it (onClose).
      this.#link = link;
      done.resolve();
    };
    /** Runs a step that awaits Web Crypto; closing waits for it. */
    const later = (step: () => Promise<void>) => {
      phase = "checking";
      busy = step().catch((err) => refuse(`the handshake failed here (${messageOf(err)})`));
    };
    const onHandshakeFrame = (payload: Uint8Array) => {
      if (phase === "checking") {
        refuse("it sent a frame before this client finished the handshake");
        return;
      }
      let message;
      try {
        message = decodeServerMessage(payload);
      } catch (err) {
        refuse(
          `it did not answer the hello with a distkit handshake (${messageOf(err)}); ` +
            `check that a distkit server of the same version runs there`,
        );
        return;
      }
      if (message.kind === "refuse") {
        fail(new RefusedError(this.peer, this.#address, message.reason, "server"));
        return;
      }
      if (phase === "hello" && message.kind === "challenge") {
        if (secret === undefined) {
          refuse(
            "it asks for the cluster's shared secret, and this client has none; " +
              "give the client the same secret option as the server",
          );
          return;
        }
        const serverNonce = message.nonce;
        later(async () => {
          this.#key ??= importSecret(secret);
          const key = await this.#key;
          const mac = await proofOf(key, "client", this.#cluster, nonce, serverNonce);
          // What the server's welcome must carry.
          serverProof = await proofOf(key, "server", this.#cluster, nonce, serverNonce);
          if (link.framed.isClosed) return;
          phase = "proof";
          link.framed.send(encodeProof(mac));
        });
        return;
      }
      /** Opens once the server's member identity is checked (when this client is a member). */
      const admit = (server: MemberHello | undefined) => {
        if (member === undefined) {
          open();
          return;
        }
        later(async () => {
          const problem = await member.check(server, this.peer);
          if (link.framed.isClosed) return;
          if (problem !== undefined) refuse(problem);
          else open();
        });
      };
      if (phase === "hello" && message.kind === "welcome") {
        if (secret !== undefined) {
          refuse(
            "it let this client in without checking the shared secret, so it does not have " +
              "it; give the server the same secret option as the client (or neither one)",
          );
          return;
        }
        admit(message.member);
        return;
      }
      if (phase === "proof" && message.kind === "welcome") {
        const mac = message.mac;
        if (mac === null) {
          refuse(
            "it did not prove that it knows the shared secret; give the server the same " +
              "secret option as the client",
          );
          return;
        }
        if (!timingSafeEqual(serverProof!, mac)) {
          refuse(
            "its proof of the shared secret is wrong, so it has another secret; " +
              "give the client and the server the same secret option",
          );
          return;
        }
        admit(message.member);
        return;
      }
      refuse(`it sent a ${message.kind} message out of turn in the handshake`);
    };
    link.framed = new FramedConnection(conn, {
      maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES,
      onFrame: (payload) =>
        phase === "open" ? this.#onFrame(link, payload) : onHandshakeFrame(payload),
      // Nothing to tell the server: fail the pending calls at once.
      onFrameTooLarge: (err) =>
        phase === "open" ? link.framed.close(err) : refuse(
          httpLookalike(err.size) === "response"
            ? "this looks like an HTTP server; distkit clients use the node's TCP port"
            : `it announced a frame of ${err.size} bytes during the handshake, where frames ` +
              `are at most ${HANDSHAKE_MAX_FRAME_BYTES} bytes; check that a distkit server of ` +
              `the same version runs there`,
        ),
      onClose: (reason) =>
        phase === "open"
          ? this.#onClose(link, reason)
          : done.reject(reason ?? new Error("the connection closed during the handshake")),
    });
    const onAbort = () => fail(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      link.framed.send(
        encodeHello({
          cluster: this.#cluster,
          nonce,
          hasSecret: secret !== undefined,
          member: member && memberHello(member, this.peer),
        }),
      );
      await done.promise;
      return link;
    } catch (err) {
      await link.framed.close(err);
      await busy;
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  #onFrame(link: Link, payload: Uint8Array): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(this.#codec, payload);
    } catch (err) {
      const end = "the connection was closed; the next call reconnects";
      link.framed.close(
        err instanceof CodecError
          ? new CodecError(
            `the answer from ${this.#address} cannot be decoded (${err.message}); ${end}`,
            { cause: err },
          )
          : err instanceof ProtocolError
          ? new ProtocolError(
            `${this.#address} sent a frame that is not an answer (${err.message}); ${end}`,
          )
          : err,
      );
      return;
    }
    if (envelope.kind === "request") {
      link.framed.close(
        new ProtocolError(
          `${this.#address} sent a request to a client, which only accepts answers; the connection was closed`,
        ),
      );
      return;
    }
    if (envelope.kind === "failure" && envelope.id === 0) {
      const { code, message } = envelope.failure;
      link.framed.close(
        new UnreachableError(
          this.peer,
          `the server could not read a frame from this client (${code}: ${message}); ` +
            `the connection was closed`,
        ),
      );
      return;
    }
    const state = link.pending.get(envelope.id);
    if (state === undefined) return; // The call already timed out or was aborted.
    let value: unknown;
    try {
      value = settle(state.method, envelope);
    } catch (err) {
      this.#reject(state, err);
      return;
    }
    this.#resolve(state, value);
  }

  #onClose(link: Link, reason: unknown): void {
    if (this.#link === link) this.#link = undefined;
    if (link.pending.size === 0) return;
    const err = reason instanceof RpcError && !reason.notSent ? reason : new UnreachableError(
      this.peer,
      `connection lost (${messageOf(reason)}); the call may or may not have run, ` +
        `and the next call reconnects`,
      { cause: reason },
    );
    for (const state of [...link.pending.values()]) this.#reject(state, err);
  }

  #end(state: CallState): boolean {
    if (state.done) return false;
    state.done = true;
    this.#calls.delete(state);
    state.link?.pending.delete(state.id);
    state.controller?.abort();
    return true;
  }

  #resolve(state: CallState, value: unknown): void {
    if (this.#end(state)) state.resolve(value);
  }

  #reject(state: CallState, err: unknown): void {
    if (this.#end(state)) state.reject(err);
  }
}

/** Why {@linkcode TcpClient.retarget} cut a connection or an attempt short. */
class ServerMovedError extends Error {
  override name = "ServerMovedError";
}
