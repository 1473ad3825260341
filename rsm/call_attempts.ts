/**
 * What the attempts of one client call did, for the errors the call may end
 * with: each server's outcome in this call ({@linkcode AttemptLog}), and how
 * a failed attempt is judged (sent or not; a request too large to send).
 *
 * @module
 */
import {
  AbortedError,
  CodecError,
  FrameTooLargeError,
  neverSent,
  RpcError,
} from "../net/errors.ts";
import { RequestError, type ServerAttempt } from "./errors.ts";

/**
 * Each server's outcome in ONE call: `ok`, or its last failure in a few
 * words. A call's errors list only what its own attempts did, never what an
 * earlier (or concurrent) call of the same client heard.
 *
 * @example
 * ```ts
 * import { AttemptLog } from "@distkit/distkit/rsm";
 *
 * const log = new AttemptLog();
 * log.note("a", "connection refused");
 * log.list(["a", "b"]);
 * // [{ server: "a", error: "connection refused" }, { server: "b", error: "not tried" }]
 * ```
 */
export class AttemptLog {
  readonly #outcomes = new Map<string, string>();

  /** Records `server`'s latest outcome in this call. */
  note(server: string, outcome: string): void {
    this.#outcomes.set(server, outcome);
  }

  /** Each of `servers` (in that order) with its outcome in this call, or `not tried`. */
  list(servers: readonly string[]): ServerAttempt[] {
    return servers.map((server) => ({ server, error: this.#outcomes.get(server) ?? "not tried" }));
  }
}

/** A failed attempt in a few words: `connection refused`, `timed out after 2500 ms`... */
export function describeAttempt(err: unknown): string {
  if (err instanceof AbortedError) {
    return err.notSent ? "cut off before it was sent" : "no answer before the call was cut off";
  }
  if (err instanceof RpcError) {
    const refused = /connection refused/i.test(err.message);
    return refused ? "connection refused" : err.message;
  }
  return (err as Error)?.message ?? String(err);
}

/**
 * Whether a failed call certainly never reached a handler: it was never sent
 * (`RpcError.notSent`), or nothing served that service or method there. Any
 * other failure (lost, timed out, a garbled reply, a failing handler) may have run it.
 */
export function neverRan(err: unknown): boolean {
  return neverSent(err) || err instanceof RpcError &&
      (err.code === "unknown_service" || err.code === "unknown_method");
}

/**
 * The {@linkcode RequestError} of `service` for a request the transport
 * could not encode (over its frame limit, or a value MessagePack cannot
 * carry): nothing was sent, so it was not applied, and resending it cannot
 * help. Its `cause` is the transport's `FrameTooLargeError` or `CodecError`.
 * Undefined for any other failure, and for one that may have been sent.
 * When an earlier attempt of the same call was sent (`earlierMayHaveApplied`),
 * the message says so instead: only this retry was not sent, and the caller
 * answers "may have applied" (the size of a request can grow between
 * attempts, with its request id).
 *
 * @example
 * ```ts
 * import { unsendableRequest } from "@distkit/distkit/rsm";
 * import { FrameTooLargeError } from "@distkit/distkit/net";
 *
 * const err = unsendableRequest("kv", new FrameTooLargeError(70_000, 65_536, { request: "KV.Write" }));
 * err?.message;
 * // "kv: request refused: the request is 70000 bytes, over the frame limit of 65536 bytes: it was not sent, so it was not applied; send a smaller value, or raise maxFrameBytes on the servers and the client"
 * ```
 */
export function unsendableRequest(
  service: string,
  err: unknown,
  options: { earlierMayHaveApplied?: boolean } = {},
): RequestError | undefined {
  if (!neverSent(err)) return undefined;
  const unsent = options.earlierMayHaveApplied
    ? "this retry was not sent, but an earlier attempt was and may have applied"
    : "it was not sent, so it was not applied";
  if (err instanceof FrameTooLargeError) {
    return new RequestError(
      service,
      `the request is ${err.size} bytes, over the frame limit of ${err.limit} bytes: ${unsent}; ` +
        `send a smaller value, or raise maxFrameBytes on the servers and the client`,
      { cause: err },
    );
  }
  if (err instanceof CodecError) {
    const problem = (err.cause as Error | undefined)?.message ?? err.message;
    return new RequestError(
      service,
      `the request cannot be encoded (${problem.replace(/^malformed message: /, "")}): ${unsent}`,
      { cause: err },
    );
  }
  return undefined;
}
