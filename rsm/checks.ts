/**
 * Checks every replicated service applies to a request before it proposes
 * it: strings that are valid Unicode and within a size, and the session
 * (client id and write number) that makes a retried write apply once.
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import { utf8Length } from "../net/bytes.ts";

/** Longest client (session) id, in UTF-8 bytes. */
const MAX_CLIENT_BYTES = 256;

/**
 * Strings must be well-formed UTF-16: a lone surrogate cannot be encoded as
 * UTF-8, and would come back changed from a snapshot or another replica, so
 * replicas would disagree.
 */
export function checkText(s: string, field: string): void {
  if (!s.isWellFormed()) {
    throw new ArgumentsError(`${field} contains a lone surrogate; strings must be valid Unicode`);
  }
}

/**
 * Checks a string field of a request: a string, valid Unicode, at most
 * `maxBytes` UTF-8 bytes, and not empty when `nonEmpty`. Every replicated
 * service's parsers use it, so the same input gets the same refusal.
 *
 * @throws {ArgumentsError} naming the field and what is wrong.
 *
 * @example
 * ```ts
 * import { checkString } from "@distkit/distkit/rsm";
 *
 * checkString("printer", { field: "name", maxBytes: 1024 }); // "printer"
 * ```
 */
export function checkString(
  value: unknown,
  options: { field: string; maxBytes: number; nonEmpty?: boolean },
): string {
  const { field, maxBytes } = options;
  if (typeof value !== "string") {
    throw new ArgumentsError(`${field} must be a string, got ${typeOf(value)}`);
  }
  if (options.nonEmpty && value === "") throw new ArgumentsError(`${field} must not be empty`);
  checkText(value, field);
  const size = utf8Length(value);
  if (size > maxBytes) {
    throw new ArgumentsError(`${field} is ${size} bytes; the limit is ${maxBytes}`);
  }
  return value;
}

/**
 * Checks the session a write comes from: its client id (1 to 256 UTF-8
 * bytes) and its number (1, 2, 3...), which a retry repeats. The KV, sharded,
 * primary/backup and lock services all number writes this way.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { checkSession } from "@distkit/distkit/rsm";
 *
 * checkSession("c1", 3); // { client: "c1", seq: 3 }
 * ```
 */
export function checkSession(client: unknown, seq: unknown): { client: string; seq: number } {
  if (typeof client !== "string" || client === "" || utf8Length(client) > MAX_CLIENT_BYTES) {
    throw new ArgumentsError(`client id must be 1 to ${MAX_CLIENT_BYTES} bytes`);
  }
  checkText(client, "client id");
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) {
    throw new ArgumentsError(`seq must be a positive integer, got ${seq}`);
  }
  return { client, seq: seq as number };
}

/** How a value is named in an error message: "null", "an array" or its `typeof`. */
export function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
