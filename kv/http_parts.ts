/**
 * The pieces of the KV node's HTTP API (`http.ts`) that read a request or
 * make an answer: bodies within their limits, values, sessions, JSON
 * answers. They work on {@linkcode LightRequest} and
 * {@linkcode LightResponse}, which the listener hands over without a
 * `Request` or `Response` per request (issue 20).
 *
 * @module
 */
import { deadline } from "../net/async.ts";
import { concatBytes, decodeUtf8 } from "../net/bytes.ts";
import type { LightRequest, LightResponse } from "../net/http_light.ts";
import { OverloadedError, RequestAbortedError, RequestError } from "../rsm/errors.ts";
import type { KvValue } from "../kvstate/value.ts";
import { checkSession } from "../rsm/checks.ts";
import type { Session } from "../rsm/replica_client.ts";

/** Asks the HTTP server to close the connection after the answer (its body may be unread). */
export const CLOSE = { connection: "close" };

/**
 * The bytes a request's body may take in memory: its declared length, or the limit.
 *
 * @example
 * ```ts ignore
 * const reserved = req.hasBody ? bodyReservation(req, maxBody) : 0;
 * ```
 */
export function bodyReservation(req: LightRequest, limit: number): number {
  const declared = Number(req.header("content-length") ?? NaN);
  return Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, limit + 1) : limit;
}

/**
 * At most `n` holders at once; at most `queue` others wait in line, and more are refused.
 *
 * @example
 * ```ts ignore
 * const writes = new Semaphore(64, 256);
 * await writes.run(() => local.write(write, options));
 * ```
 */
export class Semaphore {
  #free: number;
  #queue: number;
  #waiting: (() => void)[] = [];
  constructor(n: number, queue: number) {
    this.#free = n;
    this.#queue = queue;
  }
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else if (this.#waiting.length >= this.#queue) {
      throw new OverloadedError("kv", `${this.#waiting.length} writes are waiting for their turn`);
    } else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/**
 * A JSON answer.
 *
 * @example
 * ```ts ignore
 * json(200, { ok: true });
 * ```
 */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): LightResponse {
  return {
    status,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * An error answer: JSON `{"error": ..., ...extra}`.
 *
 * @example
 * ```ts ignore
 * failure(503, "no leader is known yet; retry shortly", { mayHaveApplied: false }, { "retry-after": "1" });
 * ```
 */
export function failure(
  status: number,
  error: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): LightResponse {
  return json(status, { error, ...extra }, headers);
}

/**
 * Constant-time comparison, so the secret cannot be guessed byte by byte from timings.
 *
 * @example
 * ```ts ignore
 * sameSecret(auth.slice(7), secret);
 * ```
 */
export function sameSecret(given: string, secret: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(secret);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}

/**
 * Reads the body, up to `limit` bytes and until `signal` fires (a client that stops sending).
 *
 * @example
 * ```ts ignore
 * const body = await readBody(req, maxBody, deadline.signal);
 * ```
 *
 * @throws {BodyTooLarge} when it is over `limit`.
 * @throws {RequestAbortedError} (not applied) when `signal` fires first.
 */
export async function readBody(
  req: LightRequest,
  limit: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const length = req.header("content-length");
  const declared = Number(length ?? "0");
  if (declared > limit) throw new BodyTooLarge(limit);
  if (!req.hasBody) return new Uint8Array();
  if (length !== null) {
    // The common case, read at once (a stream reader costs more per request);
    // the declared length is within the limit, and the signal ends a stall.
    const body = await deadline(req.bytes(), {
      signal,
      onAbort: () => new RequestAbortedError("kv", "body read", { mayHaveApplied: false }),
    });
    if (body.byteLength > limit) throw new BodyTooLarge(limit);
    return body;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.stream()!.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) {
        throw new RequestAbortedError("kv", "body read", { mayHaveApplied: false });
      }
      if (done) break;
      size += value.length;
      if (size > limit) throw new BodyTooLarge(limit);
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener("abort", cancel);
  }
  return concatBytes(chunks, size);
}

/**
 * A request body over the limit (answered 413, not applied).
 *
 * @example
 * ```ts ignore
 * if (err instanceof BodyTooLarge) return failure(413, err.message, definite, CLOSE);
 * ```
 */
export class BodyTooLarge extends Error {
  /** The error for a body over `limit` bytes. */
  constructor(limit: number) {
    super(`the request body is over the limit of ${limit} bytes`);
  }
}

/**
 * The value a body carries: bytes when sent as `application/octet-stream`, else UTF-8 text.
 *
 * @example
 * ```ts ignore
 * const value = valueFrom(req, await readBody(req, maxBody, signal));
 * ```
 *
 * @throws {RequestError} when text is not valid UTF-8.
 */
export function valueFrom(req: LightRequest, body: Uint8Array): KvValue {
  if (req.header("content-type")?.startsWith("application/octet-stream")) return body;
  const text = decodeUtf8(body);
  if (text !== undefined) return text;
  throw new RequestError(
    "kv",
    "the body is not valid UTF-8 text; send bytes with content-type application/octet-stream",
  );
}

/**
 * The answer to a get of `value`: 200, as text or bytes.
 *
 * @example
 * ```ts ignore
 * valueResponse("hello"); // 200, text/plain; charset=utf-8
 * ```
 */
export function valueResponse(value: KvValue): LightResponse {
  return typeof value === "string"
    ? { status: 200, headers: { "content-type": "text/plain; charset=utf-8" }, body: value }
    : { status: 200, headers: { "content-type": "application/octet-stream" }, body: value };
}

/**
 * A value as JSON shows it: text as a string, bytes as `{"base64": ...}`.
 *
 * @example
 * ```ts ignore
 * shown(Uint8Array.of(1)); // { base64: "AQ==" }
 * ```
 */
export function shown(value: KvValue | null | undefined): unknown {
  if (!(value instanceof Uint8Array)) return value ?? null;
  let binary = "";
  for (let i = 0; i < value.length; i += 8192) {
    binary += String.fromCharCode(...value.subarray(i, i + 8192));
  }
  return { base64: btoa(binary) };
}

/**
 * The session an HTTP client numbers its writes in, from its headers; undefined without them.
 *
 * @example
 * ```ts ignore
 * const session = sessionFrom(req); // X-Distkit-Client and X-Distkit-Seq
 * ```
 *
 * @throws {RequestError} when only one is sent, or either is malformed.
 */
export function sessionFrom(req: LightRequest): Session | undefined {
  const client = req.header("x-distkit-client");
  const seq = req.header("x-distkit-seq");
  if (client === null && seq === null) return undefined;
  if (client === null || seq === null) {
    throw new RequestError(
      "kv",
      "send X-Distkit-Client and X-Distkit-Seq together (a client id, and the write's number)",
    );
  }
  if (!/^[1-9][0-9]{0,15}$/.test(seq)) {
    throw new RequestError(
      "kv",
      `X-Distkit-Seq must be a positive integer, got ${JSON.stringify(seq)}`,
    );
  }
  try {
    const checked = checkSession(client, Number(seq));
    return { id: checked.client, seq: checked.seq };
  } catch (err) {
    throw new RequestError("kv", `X-Distkit-Client: ${(err as Error).message}`);
  }
}

/**
 * The path of a request target as sent (without the query), not normalized.
 *
 * @example
 * ```ts ignore
 * rawPath("/kv/a/../b?op=append"); // "/kv/a/../b"
 * ```
 */
export function rawPath(target: string): string {
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/**
 * The change a compare-and-swap's body asks for.
 *
 * @example
 * ```ts ignore
 * parseCas(new TextEncoder().encode('{"expected": null, "value": "v"}'));
 * ```
 *
 * @throws {RequestError} when the body is not `{"expected": string | null, "value": string}`.
 */
export function parseCas(body: Uint8Array): { expected: string | null; value: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new RequestError(
      "kv",
      'cas takes a JSON body {"expected": string | null, "value": string}',
    );
  }
  const { expected, value } = (parsed ?? {}) as { expected?: unknown; value?: unknown };
  if ((typeof expected !== "string" && expected !== null) || typeof value !== "string") {
    throw new RequestError(
      "kv",
      'cas takes a JSON body {"expected": string | null, "value": string}',
    );
  }
  return { expected, value };
}
