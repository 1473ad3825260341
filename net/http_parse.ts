/**
 * A small, strict HTTP/1.1 request parser for {@linkcode serveHttp}: the
 * request head (request line and header fields) and chunked bodies. It
 * accepts what curl, browsers, `fetch` and load generators send, and refuses
 * anything ambiguous with the status to answer before closing: a request
 * with both `Content-Length` and `Transfer-Encoding` (the root of request
 * smuggling), repeated or malformed lengths, bad chunk sizes, obsolete line
 * folding, bytes outside printable ASCII, overlong heads.
 *
 * @module
 */

/**
 * A request the server cannot take: `status` is what it answers (400, 431,
 * 501, 505) before it closes the connection.
 *
 * @example
 * ```ts
 * import { HttpParseError } from "@distkit/distkit/net";
 *
 * new HttpParseError(400, "no Host header").status; // 400
 * ```
 */
export class HttpParseError extends Error {
  /** The HTTP status to answer with. */
  readonly status: number;

  /**
   * Creates the error.
   *
   * @param status The HTTP status to answer with.
   * @param message What is wrong with the request, for the client.
   */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpParseError";
    this.status = status;
  }
}

/**
 * A parsed request head.
 *
 * @example
 * ```ts
 * import { parseRequestHead, type RequestHead } from "@distkit/distkit/net";
 *
 * const head: RequestHead = parseRequestHead(
 *   new TextEncoder().encode("GET /status HTTP/1.1\r\nHost: a"),
 * );
 * head.method; // "GET"
 * ```
 */
export interface RequestHead {
  /** The method, as sent (case-sensitive). */
  method: string;
  /** The request target in origin form (`/path?query`), as sent. */
  target: string;
  /** The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: 0 | 1;
  /** The header fields in order, names lower-cased. */
  headers: [string, string][];
  /** The body's length when it has one of known length; 0 when there is none. */
  contentLength: number;
  /** The body is chunked (`Transfer-Encoding: chunked`). */
  chunked: boolean;
  /** The client asks to keep the connection open after this request. */
  keepAlive: boolean;
  /** The client waits for `100 Continue` before it sends the body. */
  expectContinue: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Largest `Content-Length` or chunk size taken (2^53 - 1 bytes: more than any limit). */
const MAX_LENGTH_DIGITS = 15;

/**
 * Parses a request head: the bytes before the empty line that ends it
 * (without that final CRLF CRLF; lines end with CRLF, a bare LF is
 * refused).
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const head = parseRequestHead(new TextEncoder().encode(
 *   "PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5",
 * ));
 * assert.equal(head.contentLength, 5);
 * assert.throws(() =>
 *   parseRequestHead(new TextEncoder().encode(
 *     "PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
 *   ))
 * );
 * ```
 *
 * @throws {HttpParseError} with the status to answer when the head is malformed or ambiguous.
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if ((b < 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0a) || b > 0x7e) {
      throw new HttpParseError(
        400,
        `byte 0x${b.toString(16).padStart(2, "0")} at offset ${i} of the request head; ` +
          `only printable ASCII is accepted`,
      );
    }
  }
  // Printable ASCII only (checked above): UTF-8 decoding is ASCII here.
  const text = decoder.decode(bytes);
  const lines = text.split("\r\n");
  for (const line of lines) {
    if (line.includes("\n") || line.includes("\r")) {
      throw new HttpParseError(400, "lines of the request head must end with CRLF");
    }
  }
  const requestLine = lines[0];
  const match = /^([^ ]+) ([^ ]+) HTTP\/1\.([01])$/.exec(requestLine);
  if (match === null) {
    if (/^[^ ]+ [^ ]+ HTTP\/\d+\.\d+$/.test(requestLine)) {
      throw new HttpParseError(505, "only HTTP/1.1 and HTTP/1.0 are served");
    }
    throw new HttpParseError(
      400,
      `the request line must be "METHOD /path HTTP/1.1", got ${
        JSON.stringify(requestLine.slice(0, 80))
      }`,
    );
  }
  const [, method, target, minorText] = match;
  if (!TOKEN.test(method)) throw new HttpParseError(400, "the method is not a token");
  if (!target.startsWith("/")) {
    throw new HttpParseError(400, `the request target must be a path starting with "/"`);
  }
  const minor = minorText === "1" ? 1 : 0;
  const headers: [string, string][] = [];
  // The fields the head's meaning depends on, gathered in the one pass.
  let hosts = 0;
  const lengths: string[] = [];
  const encodings: string[] = [];
  const connection: string[] = [];
  const expect: string[] = [];
  for (let n = 1; n < lines.length; n++) {
    const line = lines[n];
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      throw new HttpParseError(400, "obsolete line folding in the header fields is refused");
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpParseError(400, `a header line without a name: ${line}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) {
      throw new HttpParseError(400, `the header name ${JSON.stringify(name)} is not a token`);
    }
    const lower = name.toLowerCase();
    const value = trimSpaces(line, colon + 1);
    headers.push([lower, value]);
    switch (lower) {
      case "host":
        hosts++;
        break;
      case "content-length":
        lengths.push(value);
        break;
      case "transfer-encoding":
        encodings.push(value);
        break;
      case "connection":
        connection.push(value);
        break;
      case "expect":
        expect.push(value);
        break;
    }
  }
  if (minor === 1 && hosts !== 1) {
    throw new HttpParseError(400, `an HTTP/1.1 request needs exactly one Host header`);
  }
  if (lengths.length > 0 && encodings.length > 0) {
    throw new HttpParseError(
      400,
      "a request with both Content-Length and Transfer-Encoding is refused",
    );
  }
  let contentLength = 0;
  if (lengths.length > 1) {
    throw new HttpParseError(400, "more than one Content-Length header");
  }
  if (lengths.length === 1) {
    if (!/^\d+$/.test(lengths[0]) || lengths[0].length > MAX_LENGTH_DIGITS) {
      throw new HttpParseError(400, `Content-Length must be a decimal number of bytes`);
    }
    contentLength = Number(lengths[0]);
  }
  let chunked = false;
  if (encodings.length > 0) {
    const codings = encodings.join(",").split(",").map((c) => c.trim().toLowerCase());
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpParseError(
        501,
        `only "Transfer-Encoding: chunked" is served, got ${JSON.stringify(encodings.join(", "))}`,
      );
    }
    if (minor === 0) {
      throw new HttpParseError(400, "Transfer-Encoding in an HTTP/1.0 request is refused");
    }
    chunked = true;
  }
  const keepAlive = connectionKeepsAlive(connection, minor);
  if (expect.length > 0 && (expect.length > 1 || expect[0].toLowerCase() !== "100-continue")) {
    throw new HttpParseError(417, `only "Expect: 100-continue" is understood`);
  }
  return {
    method,
    target,
    minor,
    headers,
    contentLength,
    chunked,
    keepAlive,
    expectContinue: expect.length === 1 && minor === 1,
  };
}

const decoder = new TextDecoder();

/** `line` from `from` on, without leading and trailing spaces and tabs. */
function trimSpaces(line: string, from: number): string {
  let start = from;
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 0x20 || line.charCodeAt(start) === 0x09)) {
    start++;
  }
  while (end > start && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) {
    end--;
  }
  return line.slice(start, end);
}

/** Whether the `Connection` fields keep the connection open (the default of HTTP/1.1). */
function connectionKeepsAlive(values: string[], minor: 0 | 1): boolean {
  if (values.length === 0) return minor === 1;
  const tokens = values.join(",").toLowerCase().split(",").map((t) => t.trim());
  return minor === 1 ? !tokens.includes("close") : tokens.includes("keep-alive");
}

/**
 * Options of {@linkcode ChunkedDecoder}.
 *
 * @example
 * ```ts
 * import type { ChunkedDecoderOptions } from "@distkit/distkit/net";
 *
 * const options: ChunkedDecoderOptions = { maxLineBytes: 256 };
 * ```
 */
export interface ChunkedDecoderOptions {
  /** The longest chunk-size line or trailer line, in bytes. Default 4,096. */
  maxLineBytes?: number;
}

/**
 * Decodes a chunked request body incrementally: feed it the bytes after the
 * head as they arrive; it returns the data and, at the end of the body, the
 * bytes that follow it (the next request). Chunk extensions and trailers are
 * read and dropped.
 *
 * @example
 * ```ts
 * import { ChunkedDecoder } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const decoder = new ChunkedDecoder();
 * const out = decoder.feed(new TextEncoder().encode("3\r\nabc\r\n0\r\n\r\nGET"));
 * assert.equal(new TextDecoder().decode(out.data[0]), "abc");
 * assert.equal(decoder.done, true);
 * assert.equal(new TextDecoder().decode(out.rest), "GET");
 * ```
 */
export class ChunkedDecoder {
  readonly #maxLine: number;
  #state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  #line = "";
  #left = 0;
  /** Decoded body bytes so far. */
  received = 0;

  /**
   * Creates a decoder at the start of a body.
   *
   * @param options The longest line taken.
   */
  constructor(options: ChunkedDecoderOptions = {}) {
    this.#maxLine = options.maxLineBytes ?? 4096;
  }

  /** Whether the last chunk and the trailers have been read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /**
   * Takes the next bytes of the stream; returns the body data they carried
   * and, once the body has ended, the bytes after it.
   *
   * @throws {HttpParseError} (400) on a malformed chunk size, line or terminator.
   */
  feed(bytes: Uint8Array): { data: Uint8Array[]; rest: Uint8Array | undefined } {
    const data: Uint8Array[] = [];
    let i = 0;
    while (i < bytes.length && this.#state !== "done") {
      if (this.#state === "data") {
        const n = Math.min(this.#left, bytes.length - i);
        data.push(bytes.subarray(i, i + n));
        this.received += n;
        this.#left -= n;
        i += n;
        if (this.#left === 0) this.#state = "data-end";
        continue;
      }
      // A line: the chunk size, the CRLF after data, or a trailer.
      const lf = bytes.indexOf(0x0a, i);
      const end = lf < 0 ? bytes.length : lf + 1;
      if (this.#line.length + (end - i) > this.#maxLine) {
        throw new HttpParseError(400, `a chunked body line is over ${this.#maxLine} bytes`);
      }
      this.#line += String.fromCharCode(...bytes.subarray(i, end));
      i = end;
      if (lf < 0) break;
      if (!this.#line.endsWith("\r\n")) {
        throw new HttpParseError(400, "lines of a chunked body must end with CRLF");
      }
      const line = this.#line.slice(0, -2);
      this.#line = "";
      this.#onLine(line);
    }
    return { data, rest: this.#state === "done" ? bytes.subarray(i) : undefined };
  }

  #onLine(line: string): void {
    if (this.#state === "data-end") {
      if (line !== "") throw new HttpParseError(400, "chunk data longer than its size");
      this.#state = "size";
      return;
    }
    if (this.#state === "trailer") {
      if (line === "") this.#state = "done";
      else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*$/.test(line)) {
        throw new HttpParseError(400, "a malformed trailer field");
      }
      return;
    }
    // The size line: hex digits, then optional extensions after ";".
    const match = /^([0-9A-Fa-f]+)(?:[ \t]*;[\t\x20-\x7e]*)?$/.exec(line);
    if (match === null || match[1].length > MAX_LENGTH_DIGITS - 2) {
      throw new HttpParseError(
        400,
        `a chunk size must be hexadecimal digits, got ${JSON.stringify(line.slice(0, 40))}`,
      );
    }
    const size = parseInt(match[1], 16);
    if (size === 0) {
      this.#state = "trailer";
      return;
    }
    this.#left = size;
    this.#state = "data";
  }
}
