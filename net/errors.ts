/**
 * Typed failures of the net layer. Every failed call rejects with a subclass of
 * {@linkcode RpcError}, so callers can branch on `instanceof` or on `code`.
 *
 * @module
 */

/**
 * The machine-readable kind of an {@linkcode RpcError}.
 *
 * - `unreachable`: the request could not be delivered, or its reply was lost.
 * - `timeout`: the call's deadline passed before a reply arrived.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `closed`: the local transport end was closed.
 * - `remote`: the remote handler threw.
 * - `unknown_service` / `unknown_method`: nothing is registered under that name.
 * - `bad_arguments`: the handler rejected the shape of its arguments.
 * - `codec`: bytes could not be decoded, or a value could not be encoded.
 * - `frame_too_large`: a frame exceeded the configured size limit.
 * - `protocol`: the peer broke the wire protocol.
 * - `refused`: the connection's handshake failed (another cluster, a shared
 *   secret that does not match); retrying will not help until a side changes.
 *
 * @example Retry only what may succeed on a second try
 * ```ts
 * import type { RpcErrorCode } from "@distkit/distkit/net";
 *
 * function worthRetrying(code: RpcErrorCode): boolean {
 *   return code === "unreachable" || code === "timeout";
 * }
 * worthRetrying("unknown_method"); // false
 * ```
 */
export type RpcErrorCode =
  | "unreachable"
  | "timeout"
  | "aborted"
  | "closed"
  | "remote"
  | "unknown_service"
  | "unknown_method"
  | "bad_arguments"
  | "codec"
  | "frame_too_large"
  | "protocol"
  | "refused";

/**
 * Options of an {@linkcode RpcError}: the standard `cause`, and whether the
 * request certainly never left the caller.
 *
 * @example
 * ```ts
 * import { type RpcErrorOptions, UnreachableError } from "@distkit/distkit/net";
 *
 * const options: RpcErrorOptions = { notSent: true };
 * new UnreachableError("kv-2", "connection refused", options).notSent; // true
 * ```
 */
export interface RpcErrorOptions extends ErrorOptions {
  /**
   * True only when it is certain that the request was never handed to a
   * connection (see {@linkcode RpcError.notSent}). Default false.
   */
  notSent?: boolean;
}

/**
 * Base class of every failure the net layer reports.
 *
 * {@linkcode RpcError.notSent} tells a failure that certainly never reached
 * the server (the call failed while the client was connecting, backing off
 * or closed) from one that may have: a write whose every attempt failed
 * unsent certainly did not apply.
 *
 * @example Branch on the kind of failure
 * ```ts
 * import { RpcError, TimeoutError } from "@distkit/distkit/net";
 *
 * function describe(err: unknown): string {
 *   if (err instanceof TimeoutError) return "slow peer";
 *   if (err instanceof RpcError) return err.code;
 *   return "not an RPC failure";
 * }
 * describe(new TimeoutError("Raft.AppendEntries", 100)); // "slow peer"
 * ```
 */
export class RpcError extends Error {
  /** The machine-readable kind of failure. */
  readonly code: RpcErrorCode;
  /**
   * True when the request was certainly never sent: the call failed before
   * its request was handed to a connection (no connection could be opened,
   * the client was waiting to reconnect, the end was closed), so no server
   * can have run it. False means it may have been sent, or that nobody knows
   * (the handler may or may not have run, unless `code` says otherwise).
   * A request the network lost on the way counts as sent.
   */
  readonly notSent: boolean;

  /**
   * Creates an RPC failure.
   *
   * @param code The machine-readable kind of failure.
   * @param message What went wrong and what to do about it.
   * @param options Standard error options (`cause`), and `notSent`.
   */
  constructor(code: RpcErrorCode, message: string, options?: RpcErrorOptions) {
    const { notSent = false, ...errorOptions } = options ?? {};
    super(message, errorOptions);
    this.name = "RpcError";
    this.code = code;
    this.notSent = notSent;
  }
}

/**
 * Whether `err` is an {@linkcode RpcError} whose request was certainly never
 * sent ({@linkcode RpcError.notSent}): the call it ended did not run anywhere.
 *
 * @example
 * ```ts
 * import { neverSent, TimeoutError } from "@distkit/distkit/net";
 *
 * neverSent(new TimeoutError("KV.Put", 100, { notSent: true })); // true: timed out while connecting
 * neverSent(new TimeoutError("KV.Put", 100)); // false: it may have run
 * neverSent(new Error("boom")); // false
 * ```
 */
export function neverSent(err: unknown): boolean {
  return err instanceof RpcError && err.notSent;
}

/**
 * The request could not be delivered (no route, peer down, end disabled,
 * partitioned, dropped) or its reply was lost. The handler may or may not have
 * run (a retry must be safe to repeat), unless {@linkcode RpcError.notSent}
 * says the request never left: no connection could be opened.
 *
 * @example
 * ```ts
 * import { UnreachableError } from "@distkit/distkit/net";
 *
 * const err = new UnreachableError("kv-2", "connection refused");
 * err.message; // "kv-2 is unreachable: connection refused"
 * ```
 */
export class UnreachableError extends RpcError {
  /** The peer that could not be reached. */
  readonly peer: string;

  /**
   * Creates the error.
   *
   * @param peer The peer that could not be reached.
   * @param reason Why, in a few words.
   * @param options Standard error options (`cause`), and `notSent`.
   */
  constructor(peer: string, reason: string, options?: RpcErrorOptions) {
    super("unreachable", `${peer} is unreachable: ${reason}`, options);
    this.name = "UnreachableError";
    this.peer = peer;
  }
}

/**
 * Which end of a connection refused the other in the handshake (see
 * {@linkcode RefusedError}).
 *
 * @example
 * ```ts
 * import type { RefusingSide } from "@distkit/distkit/net";
 *
 * const side: RefusingSide = "server";
 * ```
 */
export type RefusingSide = "server" | "client";

/**
 * A TCP connection was refused in its handshake: the server serves another
 * cluster, the shared secrets do not match, one end has a secret and the
 * other has none, or the other end does not speak the handshake. No call
 * ran on it. It is not worth retrying at once: fix the `cluster` or
 * `secret` option on one end (a `TcpClient` waits before it tries again).
 *
 * @example
 * ```ts
 * import { RefusedError } from "@distkit/distkit/net";
 *
 * const err = new RefusedError("127.0.0.1:7001", "127.0.0.1:7001", 'it serves cluster "blue", not "green"');
 * err.code; // "refused"
 * err.message; // '127.0.0.1:7001 refused the connection: it serves cluster "blue", not "green"'
 * ```
 */
export class RefusedError extends RpcError {
  /** The peer's name (its address unless it was given a name). */
  readonly peer: string;
  /** The server's address, `"host:port"`. */
  readonly address: string;
  /** Why the connection was refused. */
  readonly reason: string;
  /**
   * Which end refused: the server (it did not accept this client), or this
   * client (the server did not prove what it had to).
   */
  readonly refusedBy: RefusingSide;

  /**
   * Creates the error.
   *
   * @param peer The peer's name.
   * @param address The server's address.
   * @param reason Why the connection was refused, and what to do about it.
   * @param refusedBy Which end refused. Default `"server"`.
   * @param options Standard error options (`cause`); `notSent` defaults to
   * true here, since no call runs on a refused connection.
   */
  constructor(
    peer: string,
    address: string,
    reason: string,
    refusedBy: RefusingSide = "server",
    options?: RpcErrorOptions,
  ) {
    const who = peer === address ? address : `${peer} (${address})`;
    super(
      "refused",
      refusedBy === "server"
        ? `${who} refused the connection: ${reason}`
        : `this client refused the connection to ${who}: ${reason}`,
      { notSent: true, ...options },
    );
    this.name = "RefusedError";
    this.peer = peer;
    this.address = address;
    this.reason = reason;
    this.refusedBy = refusedBy;
  }
}

/**
 * The call's deadline passed before a reply arrived. The handler may still
 * run, unless {@linkcode RpcError.notSent} says the request was never sent
 * (the deadline passed while the client was connecting).
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@distkit/distkit/net";
 *
 * new TimeoutError("KV.Get", 250).message;
 * // "KV.Get timed out after 250 ms; raise timeoutMs or check that the peer is up"
 * ```
 */
export class TimeoutError extends RpcError {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Creates the error.
   *
   * @param method The method that timed out.
   * @param timeoutMs The deadline that passed, in milliseconds.
   * @param options `notSent`: the request was never sent (it timed out while connecting).
   */
  constructor(method: string, timeoutMs: number, options?: RpcErrorOptions) {
    super(
      "timeout",
      `${method} timed out after ${timeoutMs} ms` +
        (options?.notSent ? " before the request could be sent" : "") +
        "; raise timeoutMs or check that the peer is up",
      options,
    );
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The caller's `AbortSignal` fired before a reply arrived. The handler may
 * still run, unless {@linkcode RpcError.notSent} says the request was never
 * sent.
 *
 * @example
 * ```ts
 * import { AbortedError } from "@distkit/distkit/net";
 *
 * new AbortedError("KV.Put").code; // "aborted"
 * ```
 */
export class AbortedError extends RpcError {
  /**
   * Creates the error.
   *
   * @param method The method whose call was aborted.
   * @param options Standard error options; `cause` holds the signal's reason.
   * `notSent`: the request was never sent.
   */
  constructor(method: string, options?: RpcErrorOptions) {
    super(
      "aborted",
      `${method} was aborted by the caller` +
        (options?.notSent ? " before the request was sent" : ""),
      options,
    );
    this.name = "AbortedError";
  }
}

/**
 * The local end or transport was closed; make a new one to call again.
 *
 * @example
 * ```ts
 * import { ClosedError } from "@distkit/distkit/net";
 *
 * new ClosedError("tcp client for 127.0.0.1:7000").code; // "closed"
 * ```
 */
export class ClosedError extends RpcError {
  /**
   * Creates the error.
   *
   * @param what The thing that was closed.
   * @param options `notSent`: the call's request was never sent.
   */
  constructor(what: string, options?: RpcErrorOptions) {
    super("closed", `${what} is closed; create a new one to make further calls`, options);
    this.name = "ClosedError";
  }
}

/**
 * The remote handler failed. `remoteName` is the name of the error the handler
 * threw (for example `TypeError`), and the message is the handler's message.
 *
 * @example
 * ```ts
 * import { RemoteError } from "@distkit/distkit/net";
 *
 * const err = new RemoteError("KV.Get", { remoteName: "TypeError", message: "key must be a string" });
 * err.message; // "KV.Get failed on the server: TypeError: key must be a string"
 * ```
 */
export class RemoteError extends RpcError {
  /** The name of the error the handler threw. */
  readonly remoteName: string;
  /** The handler's own message. */
  readonly remoteMessage: string;

  /**
   * Creates the error.
   *
   * @param method The method whose handler failed.
   * @param failure What the server reported.
   * @param options The failure kind (default `"remote"`; subclasses narrow it) and `cause`.
   */
  constructor(method: string, failure: RemoteFailure, options: RemoteErrorOptions = {}) {
    const { code = "remote", ...errorOptions } = options;
    super(
      code,
      `${method} failed on the server: ${failure.remoteName}: ${failure.message}`,
      errorOptions,
    );
    this.name = "RemoteError";
    this.remoteName = failure.remoteName;
    this.remoteMessage = failure.message;
  }
}

/**
 * Options for {@linkcode RemoteError}.
 *
 * @example
 * ```ts
 * import { RemoteError, type RemoteErrorOptions } from "@distkit/distkit/net";
 *
 * const options: RemoteErrorOptions = { code: "bad_arguments" };
 * new RemoteError("KV.Get", { remoteName: "BadArgumentsError", message: "no key" }, options).code; // "bad_arguments"
 * ```
 */
export interface RemoteErrorOptions extends ErrorOptions {
  /** The failure kind. Default `"remote"`. */
  code?: RpcErrorCode;
}

/**
 * What a server reports about a failed call.
 *
 * @example
 * ```ts
 * import type { RemoteFailure } from "@distkit/distkit/net";
 *
 * const failure: RemoteFailure = { remoteName: "Error", message: "disk full" };
 * ```
 */
export interface RemoteFailure {
  /** The name of the error the handler threw. */
  remoteName: string;
  /** The handler's message. */
  message: string;
}

/**
 * No service of that name is registered on the server.
 *
 * @example
 * ```ts
 * import { UnknownServiceError } from "@distkit/distkit/net";
 *
 * new UnknownServiceError("Nope.Get", "Nope").code; // "unknown_service"
 * ```
 */
export class UnknownServiceError extends RemoteError {
  /**
   * Creates the error.
   *
   * @param method The full method name that was called.
   * @param service The service part of it.
   */
  constructor(method: string, service: string) {
    super(method, {
      remoteName: "UnknownServiceError",
      message:
        `no service named "${service}" is registered; check the method name ("Service.Method")`,
    }, { code: "unknown_service" });
    this.name = "UnknownServiceError";
  }
}

/**
 * The service exists but has no method of that name.
 *
 * @example
 * ```ts
 * import { UnknownMethodError } from "@distkit/distkit/net";
 *
 * new UnknownMethodError("KV.Gett").code; // "unknown_method"
 * ```
 */
export class UnknownMethodError extends RemoteError {
  /**
   * Creates the error.
   *
   * @param method The full method name that was called.
   */
  constructor(method: string) {
    super(method, {
      remoteName: "UnknownMethodError",
      message: `the service has no method "${method}"; check the spelling and the server's version`,
    }, { code: "unknown_method" });
    this.name = "UnknownMethodError";
  }
}

/**
 * The handler rejected the shape of its arguments (see `expectShape`).
 *
 * @example
 * ```ts
 * import { BadArgumentsError } from "@distkit/distkit/net";
 *
 * new BadArgumentsError("KV.Get", "key must be a string").code; // "bad_arguments"
 * ```
 */
export class BadArgumentsError extends RemoteError {
  /**
   * Creates the error.
   *
   * @param method The method whose arguments were wrong.
   * @param problem What was wrong with them.
   */
  constructor(method: string, problem: string) {
    super(method, { remoteName: "BadArgumentsError", message: problem }, { code: "bad_arguments" });
    this.name = "BadArgumentsError";
  }
}

/**
 * A handler threw this to say its arguments have the wrong shape; the caller
 * receives a `BadArgumentsError`.
 *
 * @example
 * ```ts
 * import { ArgumentsError } from "@distkit/distkit/net";
 *
 * function handler(args: { key?: unknown }) {
 *   if (typeof args.key !== "string") throw new ArgumentsError("key must be a string");
 *   return args.key.length;
 * }
 * ```
 */
export class ArgumentsError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What is wrong with the arguments.
   */
  constructor(problem: string) {
    super(problem);
    this.name = "ArgumentsError";
  }
}

/**
 * Bytes could not be decoded (malformed, truncated, trailing bytes, forbidden
 * keys such as `__proto__`), or a value could not be encoded. A call whose
 * request could not be encoded fails with one that has
 * {@linkcode RpcError.notSent} true: nothing was sent.
 *
 * @example
 * ```ts
 * import { CodecError } from "@distkit/distkit/net";
 *
 * new CodecError("truncated input").code; // "codec"
 * ```
 */
export class CodecError extends RpcError {
  /**
   * Creates the error.
   *
   * @param problem What was wrong.
   * @param options Standard error options (`cause`), and `notSent`.
   */
  constructor(problem: string, options?: RpcErrorOptions) {
    super("codec", `malformed message: ${problem}`, options);
    this.name = "CodecError";
  }
}

/**
 * Options of a {@linkcode FrameTooLargeError}.
 *
 * @example
 * ```ts
 * import { FrameTooLargeError, type FrameTooLargeErrorOptions } from "@distkit/distkit/net";
 *
 * const options: FrameTooLargeErrorOptions = { request: "KV.Write" };
 * new FrameTooLargeError(70_000, 65_536, options).notSent; // true
 * ```
 */
export interface FrameTooLargeErrorOptions extends RpcErrorOptions {
  /**
   * The method of a request this end refused to send because its frame was
   * over the limit: the message names it, and `notSent` defaults to true.
   */
  request?: string;
}

/**
 * A frame was larger than the configured limit. A call whose own request is
 * over the limit fails with one before anything is sent
 * ({@linkcode RpcError.notSent} true).
 *
 * @example
 * ```ts
 * import { FrameTooLargeError } from "@distkit/distkit/net";
 *
 * new FrameTooLargeError(100_000_000, 64 * 1024 * 1024).code; // "frame_too_large"
 * ```
 */
export class FrameTooLargeError extends RpcError {
  /** The size of the offending frame in bytes. */
  readonly size: number;
  /** The limit in bytes. */
  readonly limit: number;

  /**
   * Creates the error.
   *
   * @param size The size of the offending frame in bytes.
   * @param limit The limit in bytes.
   * @param options `request`: the method of a request refused before it was
   * sent; `notSent`; and `cause`.
   */
  constructor(size: number, limit: number, options: FrameTooLargeErrorOptions = {}) {
    const { request, ...rpcOptions } = options;
    const advice = "send smaller values or raise maxFrameBytes on both ends";
    super(
      "frame_too_large",
      request === undefined
        ? `frame of ${size} bytes exceeds the limit of ${limit} bytes; ${advice}`
        : `the request for ${request} is ${size} bytes, over the frame limit of ${limit} ` +
          `bytes, and was not sent; ${advice}`,
      { notSent: request !== undefined, ...rpcOptions },
    );
    this.name = "FrameTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/**
 * The failure of a call whose request could not be encoded (`err`, what the
 * codec threw): a {@linkcode CodecError} or {@linkcode FrameTooLargeError}
 * that names the method and has {@linkcode RpcError.notSent} true, since
 * not one byte of it was sent. Anything else is returned as it is.
 *
 * @example
 * ```ts
 * import { CodecError, unsentRequestError } from "@distkit/distkit/net";
 *
 * const err = unsentRequestError("KV.Write", new CodecError("cannot encode value: a function"));
 * err instanceof CodecError && err.notSent; // true
 * ```
 */
export function unsentRequestError(method: string, err: unknown): unknown {
  if (err instanceof FrameTooLargeError) {
    return new FrameTooLargeError(err.size, err.limit, { request: method, cause: err });
  }
  if (err instanceof CodecError) {
    const problem = err.message.replace(/^malformed message: /, "");
    return new CodecError(
      `the request for ${method} cannot be encoded and was not sent: ${problem}`,
      {
        cause: err,
        notSent: true,
      },
    );
  }
  return err;
}

/**
 * The peer broke the wire protocol (a reply for an unknown call, a frame of
 * the wrong shape).
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@distkit/distkit/net";
 *
 * new ProtocolError("envelope is not an array").code; // "protocol"
 * ```
 */
export class ProtocolError extends RpcError {
  /**
   * Creates the error.
   *
   * @param problem What the peer did wrong.
   */
  constructor(problem: string) {
    super("protocol", `protocol violation: ${problem}`);
    this.name = "ProtocolError";
  }
}

/**
 * Builds the typed error for a failure code that arrived from a server.
 *
 * @example
 * ```ts
 * import { errorFromWire, UnknownMethodError } from "@distkit/distkit/net";
 *
 * const err = errorFromWire("KV.Nope", { code: "unknown_method", remoteName: "UnknownMethodError", message: "x" });
 * err instanceof UnknownMethodError; // true
 * ```
 */
export function errorFromWire(method: string, failure: WireFailure): RpcError {
  switch (failure.code) {
    case "unknown_service":
      return new UnknownServiceError(method, method.split(".")[0]);
    case "unknown_method":
      return new UnknownMethodError(method);
    case "bad_arguments":
      return new BadArgumentsError(method, failure.message);
    case "codec":
      // The request could not be decoded, or the reply could not be encoded:
      // the server's message says which.
      return new CodecError(`the server reported for ${method}: ${failure.message}`);
    case "frame_too_large":
      return new RpcError("frame_too_large", `${method}: ${failure.message}`);
    default:
      return new RemoteError(method, failure);
  }
}

/**
 * A failure as it travels on the wire: its code plus what the server said.
 *
 * @example
 * ```ts
 * import type { WireFailure } from "@distkit/distkit/net";
 *
 * const f: WireFailure = { code: "remote", remoteName: "Error", message: "boom" };
 * ```
 */
export interface WireFailure extends RemoteFailure {
  /** The failure kind. */
  code: RpcErrorCode;
}

/**
 * Turns anything a handler threw into a {@linkcode WireFailure}. Only the
 * server-side kinds (unknown service or method, bad arguments) keep their code;
 * anything else is reported as `remote`. (`RpcServer.dispatch` turns the
 * failure of a call the handler itself made into a plain `RemoteError`
 * first, so it never passes for a failure of the caller's own call.)
 *
 * @example
 * ```ts
 * import { failureOf } from "@distkit/distkit/net";
 *
 * failureOf(new TypeError("bad")); // { code: "remote", remoteName: "TypeError", message: "bad" }
 * ```
 */
export function failureOf(err: unknown): WireFailure {
  if (err instanceof RemoteError) {
    return { code: err.code, remoteName: err.remoteName, message: err.remoteMessage };
  }
  if (err instanceof ArgumentsError) {
    return { code: "bad_arguments", remoteName: "BadArgumentsError", message: err.message };
  }
  if (err instanceof Error) return { code: "remote", remoteName: err.name, message: err.message };
  return { code: "remote", remoteName: "Error", message: String(err) };
}

/** The failures {@linkcode isRetryable} calls worth another attempt. */
const RETRYABLE_CODES: ReadonlySet<RpcErrorCode> = new Set([
  "unreachable",
  "timeout",
  "unknown_service",
  "protocol",
]);

/**
 * Whether a failed call is worth another attempt, here or at another
 * server: the call was lost or unanswered, the server does not serve the
 * service (yet), or its answer was garbled. A closed end, an abort, a
 * refused connection, bad arguments and a failing handler are not.
 *
 * @example
 * ```ts
 * import { isRetryable, TimeoutError } from "@distkit/distkit/net";
 *
 * isRetryable(new TimeoutError("Echo.Echo", 100)); // true
 * isRetryable(new Error("boom")); // false
 * ```
 */
export function isRetryable(err: unknown): err is RpcError {
  return err instanceof RpcError && RETRYABLE_CODES.has(err.code);
}
