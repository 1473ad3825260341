/**
 * A lighter request and answer for {@linkcode serveLightHttp} than the
 * WHATWG `Request` and `Response`: the method, the target as sent, a header
 * lookup, the body read at once into one array; an answer of a status, a
 * few header fields and text or bytes. A small put over HTTP built a
 * `Request`, its `Headers`, a body stream and a `Response` per request:
 * about a fifth of what the leader allocated per put (issue 20).
 *
 * Adapters either way ({@linkcode lightFromRequest},
 * {@linkcode responseFromLight}, {@linkcode LightRequest.toRequest}) let a
 * handler written for one serve the other.
 *
 * @module
 */
import type { BodyReader } from "./http_body.ts";
import type { RequestHead } from "./http_parse.ts";

/**
 * A request as {@linkcode serveLightHttp} hands it to its handler.
 *
 * @example
 * ```ts
 * import type { LightRequest } from "@distkit/distkit/net";
 *
 * const isPut = (req: LightRequest) => req.method === "PUT" && req.header("content-length") !== null;
 * ```
 */
export interface LightRequest {
  /** The method, normalized as `Request` does (`put` is `PUT`; other methods as sent). */
  readonly method: string;
  /** `http://<Host><target>`: the target as sent, not normalized (see {@linkcode target}). */
  readonly url: string;
  /** The request target as sent (`/path?query`). */
  readonly target: string;
  /**
   * The value of header `name` (lower case), as `Headers.get` gives it: the
   * values of a repeated field joined with `", "`; null when absent.
   */
  header(name: string): string | null;
  /** Whether the request has a body (`Content-Length` over 0, or chunked). */
  readonly hasBody: boolean;
  /**
   * The whole body in one array (empty when there is none). It may be read
   * once, by this or by {@linkcode stream}; a body that does not arrive in
   * time (the server's `bodyTimeoutMs`) or is malformed rejects.
   */
  bytes(): Promise<Uint8Array>;
  /** The body as a stream (null when there is none); the alternative to {@linkcode bytes}. */
  stream(): ReadableStream<Uint8Array> | null;
  /** The same request as a WHATWG `Request` (its body the same stream: read one of them). */
  toRequest(): Request;
}

/**
 * An answer for {@linkcode serveLightHttp}: written as a `Response` with the
 * same status, headers and body would be (a text body without a
 * content type is sent as `text/plain;charset=UTF-8`, as `Response` does).
 *
 * @example
 * ```ts
 * import type { LightResponse } from "@distkit/distkit/net";
 *
 * const created: LightResponse = { status: 204 };
 * const found: LightResponse = { status: 200, headers: { "content-type": "text/plain" }, body: "v" };
 * ```
 */
export interface LightResponse {
  /** The status code. */
  status: number;
  /** Header fields by lower-case name. `content-length` is the server's; `connection: close` asks it to close. */
  headers?: Record<string, string>;
  /** The body: text (sent as UTF-8) or bytes. None when left out. */
  body?: string | Uint8Array;
}

/** The content type `Response` gives a text body that names none. */
const TEXT_TYPE = "text/plain;charset=UTF-8";

/** Methods `Request` upper-cases when sent in another case. */
const NORMALIZED = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);

/**
 * The method as `Request` gives it: one of the six it normalizes in upper
 * case, any other as sent.
 *
 * @example
 * ```ts
 * import { normalizeMethod } from "@distkit/distkit/net";
 *
 * normalizeMethod("put"); // "PUT"
 * normalizeMethod("patch"); // "patch"
 * ```
 */
export function normalizeMethod(method: string): string {
  if (NORMALIZED.has(method)) return method;
  const upper = method.toUpperCase();
  return NORMALIZED.has(upper) ? upper : method;
}

/**
 * A `Request` seen as a {@linkcode LightRequest} (for a handler written
 * for `serveLightHttp` called with `Request`s).
 *
 * @example
 * ```ts
 * import { lightFromRequest } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const req = lightFromRequest(new Request("http://x/kv/a?op=append", { method: "POST", body: "b" }));
 * assert.equal(req.target, "/kv/a?op=append");
 * assert.equal(new TextDecoder().decode(await req.bytes()), "b");
 * ```
 */
export function lightFromRequest(request: Request): LightRequest {
  const url = request.url;
  const slashes = url.indexOf("//");
  const start = url.indexOf("/", slashes < 0 ? 0 : slashes + 2);
  return {
    method: request.method,
    url,
    target: start < 0 ? "/" : url.slice(start),
    header: (name) => request.headers.get(name),
    hasBody: request.body !== null,
    bytes: async () => new Uint8Array(await request.arrayBuffer()),
    stream: () => request.body,
    toRequest: () => request,
  };
}

/**
 * A {@linkcode LightResponse} as a `Response` (for a caller that wants one).
 *
 * @example
 * ```ts
 * import { responseFromLight } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const res = responseFromLight({ status: 404, headers: { "content-type": "application/json" }, body: "{}" });
 * assert.equal(res.status, 404);
 * assert.equal(await res.text(), "{}");
 * ```
 */
export function responseFromLight(answer: LightResponse): Response {
  const body = answer.body instanceof Uint8Array ? answer.body.slice() : answer.body ?? null;
  return new Response(body, { status: answer.status, headers: answer.headers ?? {} });
}

/** Fields the server writes itself: the handler's are dropped. */
const OWN_FIELDS = new Set(["content-length", "connection", "transfer-encoding"]);

/**
 * The header lines of an answer (each `name: value\r\n`), in the order
 * `Headers` iterates them (names lower-cased and sorted), without the
 * fields the server writes itself.
 *
 * @example
 * ```ts ignore
 * headerLines({ status: 200, body: "hi" }); // "content-type: text/plain;charset=UTF-8\r\n"
 * ```
 */
export function headerLines(answer: LightResponse): string {
  const given = answer.headers;
  const fields: [string, string][] = [];
  let typed = false;
  if (given !== undefined) {
    for (const name in given) {
      const lower = name.toLowerCase();
      if (lower === "content-type") typed = true;
      if (!OWN_FIELDS.has(lower)) fields.push([lower, trimField(given[name])]);
    }
  }
  if (!typed && typeof answer.body === "string") fields.push(["content-type", TEXT_TYPE]);
  if (fields.length > 1) fields.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let text = "";
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  return text;
}

/**
 * Whether an answer's `connection` field asks to close the connection.
 *
 * @example
 * ```ts ignore
 * asksClose({ status: 413, headers: { connection: "close" } }); // true
 * ```
 */
export function asksClose(answer: LightResponse): boolean {
  const given = answer.headers;
  if (given === undefined) return false;
  for (const name in given) {
    if (name.toLowerCase() === "connection" && /(^|,)\s*close\s*(,|$)/i.test(given[name])) {
      return true;
    }
  }
  return false;
}

const encoder = new TextEncoder();

/**
 * An answer's body as bytes (empty when it has none).
 *
 * @example
 * ```ts ignore
 * bodyBytes({ status: 200, body: "hi" }); // Uint8Array [104, 105]
 * ```
 */
export function bodyBytes(answer: LightResponse): Uint8Array {
  const body = answer.body;
  if (body === undefined) return new Uint8Array(0);
  return typeof body === "string" ? encoder.encode(body) : body;
}

/** A field value as `Headers` keeps it: without leading or trailing HTTP whitespace. */
function trimField(value: string): string {
  const last = value.length - 1;
  if (last < 0 || (value.charCodeAt(0) > 0x20 && value.charCodeAt(last) > 0x20)) return value;
  return value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
}

/**
 * The {@linkcode LightRequest} the server hands its handler: the parsed
 * head, and the body read from the connection when asked for. No `Headers`
 * nor stream is made unless asked for ({@linkcode ServedRequest.stream},
 * {@linkcode ServedRequest.toRequest}).
 *
 * @example
 * ```ts ignore
 * const request = new ServedRequest(head, `http://${host}${head.target}`, body);
 * ```
 */
export class ServedRequest implements LightRequest {
  readonly method: string;
  readonly url: string;
  readonly target: string;
  readonly hasBody: boolean;
  readonly #head: RequestHead;
  readonly #body: BodyReader | undefined;
  #request: Request | undefined;

  /** The request of `head`, its body read by `body` (undefined when it has none). */
  constructor(head: RequestHead, url: string, body: BodyReader | undefined) {
    this.method = normalizeMethod(head.method);
    this.url = url;
    this.target = head.target;
    this.hasBody = body !== undefined;
    this.#head = head;
    this.#body = body;
  }

  header(name: string): string | null {
    const lower = name.toLowerCase();
    let value: string | null = null;
    for (const [n, v] of this.#head.headers) {
      if (n === lower) value = value === null ? v : `${value}, ${v}`;
    }
    return value;
  }

  bytes(): Promise<Uint8Array> {
    return this.#body === undefined ? Promise.resolve(new Uint8Array(0)) : this.#body.readAll();
  }

  stream(): ReadableStream<Uint8Array> | null {
    return this.#body?.stream ?? null;
  }

  /**
   * @throws {TypeError} when `Request` refuses it (a forbidden method, a URL it cannot parse).
   */
  toRequest(): Request {
    if (this.#request !== undefined) return this.#request;
    const headers = new Headers();
    for (const [name, value] of this.#head.headers) headers.append(name, value);
    const request = new Request(this.url, {
      method: this.#head.method,
      headers,
      body: this.stream(),
      duplex: "half",
    } as RequestInit);
    // The target as sent: URL parsing would resolve "." and ".." segments.
    Object.defineProperty(request, "url", { value: this.url });
    this.#request = request;
    return request;
  }
}
