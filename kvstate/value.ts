/**
 * Values of the store, and what the store needs to know about them.
 *
 * @module
 */
import { decodeUtf8, utf8Length } from "../net/bytes.ts";

/**
 * A value: a string or bytes.
 *
 * @example
 * ```ts
 * import type { KvValue } from "@distkit/distkit/kv";
 *
 * const v: KvValue = new Uint8Array([1, 2]);
 * ```
 */
export type KvValue = string | Uint8Array;

/**
 * The size of a value in bytes (UTF-8 for strings).
 *
 * @example
 * ```ts
 * import { valueBytes } from "@distkit/distkit/kv";
 *
 * valueBytes(new Uint8Array(3)); // 3
 * ```
 */
export function valueBytes(value: KvValue): number {
  return typeof value === "string" ? utf8Length(value) : value.length;
}

/**
 * `current` followed by `more`: a string if both are strings, else bytes
 * (what an append makes).
 *
 * @example
 * ```ts
 * import { concatValues } from "@distkit/distkit/kv";
 *
 * concatValues("ab", "c"); // "abc"
 * ```
 */
export function concatValues(current: KvValue | undefined, more: KvValue): KvValue {
  if (current === undefined) return more;
  if (typeof current === "string" && typeof more === "string") return current + more;
  const a = typeof current === "string" ? new TextEncoder().encode(current) : current;
  const b = typeof more === "string" ? new TextEncoder().encode(more) : more;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Whether two values (or nulls) are equal, bytes by content. */
export function sameValue(a: KvValue | null, b: KvValue | null): boolean {
  if (a === null || b === null) return a === b;
  if (typeof a === "string" || typeof b === "string") return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * A value as text: a string as it is, bytes decoded as UTF-8.
 *
 * @example
 * ```ts
 * import { valueAsText } from "@distkit/distkit/kv";
 *
 * valueAsText(new Uint8Array([104, 105])); // "hi"
 * valueAsText("hi"); // "hi"
 * ```
 *
 * @param value The value.
 * @param key The key it was read from, for the error message.
 * @throws {TypeError} when the value is bytes that are not valid UTF-8 (read them as bytes).
 */
export function valueAsText(value: KvValue, key?: string): string {
  if (typeof value === "string") return value;
  const text = decodeUtf8(value);
  if (text !== undefined) return text;
  const what = key === undefined ? "the value" : `the value of ${JSON.stringify(key)}`;
  throw new TypeError(
    `${what} is ${value.length} bytes that are not valid UTF-8 text; read it as bytes (getBytes)`,
  );
}

/**
 * A value as bytes: a string encoded as UTF-8, bytes as they are.
 *
 * @example
 * ```ts
 * import { valueAsBytes } from "@distkit/distkit/kv";
 *
 * valueAsBytes("hi"); // Uint8Array [104, 105]
 * ```
 */
export function valueAsBytes(value: KvValue): Uint8Array {
  return typeof value === "string" ? new TextEncoder().encode(value) : value;
}
