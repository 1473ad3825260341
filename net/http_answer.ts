/**
 * The bytes of an HTTP/1.1 answer for `serveHttp` and `serveLightHttp`:
 * the reason phrases, and a head encoded once when it recurs (a 204's) or
 * straight into the array that also carries the body.
 *
 * @module
 */
import { concat } from "./http_body.ts";

const encoder = new TextEncoder();

/** The reason phrase of each status the server writes (others get none). */
export const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  417: "Expectation Failed",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** Heads of answers without a body (a 204 is the same every time), encoded once each. */
const heads = new Map<string, Uint8Array>();

/**
 * The bytes of an answer's head alone (shared: never written to).
 *
 * @example
 * ```ts ignore
 * await writeAll(conn, headOnly("HTTP/1.1 204 No Content\r\n\r\n"));
 * ```
 */
export function headOnly(text: string): Uint8Array {
  let bytes = heads.get(text);
  if (bytes === undefined) {
    bytes = encoder.encode(text);
    if (heads.size >= 256) heads.clear();
    heads.set(text, bytes);
  }
  return bytes;
}

/**
 * The head and the body in one new array.
 *
 * @example
 * ```ts ignore
 * await writeAll(conn, withBody("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", body));
 * ```
 */
export function withBody(text: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(text.length + body.length);
  const { read, written } = encoder.encodeInto(text, out);
  // A head of ASCII (as it is, unless a handler set a header beyond it) fills its length exactly.
  if (read !== text.length || written !== text.length) return concat(encoder.encode(text), body);
  out.set(body, text.length);
  return out;
}
