/**
 * Values of the store, and what the store needs to know about them.
 *
 * @module
 */

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

const NOT_ASCII = /[\u0080-\uffff]/;

/**
 * The UTF-8 length of a string, without encoding it.
 *
 * @example
 * ```ts
 * import { utf8Length } from "@distkit/distkit/kv";
 *
 * utf8Length("héllo"); // 6
 * ```
 */
export function utf8Length(s: string): number {
  // ASCII (the common case) is one byte a character: a native scan, not a loop here.
  if (!NOT_ASCII.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

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

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

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
  try {
    return strictUtf8.decode(value);
  } catch {
    const what = key === undefined ? "the value" : `the value of ${JSON.stringify(key)}`;
    throw new TypeError(
      `${what} is ${value.length} bytes that are not valid UTF-8 text; read it as bytes (getBytes)`,
    );
  }
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
