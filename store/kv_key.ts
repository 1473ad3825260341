/**
 * Deno KV's key encoding (a tuple encoding: a type tag per part, then its
 * bytes), for the order of keys and their sizes: Deno KV orders keys by
 * these bytes, so parts order by type first (bytes, strings, bigints,
 * numbers, booleans) and then by value, and limits keys by their length.
 *
 * @module
 */

import { utf8Length } from "../net/bytes.ts";

const encoder = new TextEncoder();

/**
 * The bytes Deno KV stores `key` as.
 *
 * @example
 * ```ts
 * import { encodeKey } from "./kv_key.ts";
 *
 * encodeKey(["a", 1]).length; // 3 + 9
 * ```
 */
export function encodeKey(key: Deno.KvKey): Uint8Array {
  const out: number[] = [];
  for (const part of key) encodePart(part, out);
  return Uint8Array.from(out);
}

/**
 * The length of {@linkcode encodeKey}'s bytes, without making them (a
 * commit measures every key it writes against Deno KV's limits).
 *
 * @example
 * ```ts
 * import { encodedKeyLength } from "./kv_key.ts";
 *
 * encodedKeyLength(["a", 1]); // 3 + 9
 * ```
 */
export function encodedKeyLength(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") {
      // A tag, the UTF-8 bytes (a NUL escaped as two), a terminator.
      n += 2 + utf8Length(part) + nulCount(part);
    } else if (typeof part === "number") n += 9;
    else if (part instanceof Uint8Array) n += 2 + part.length + zeroBytes(part);
    else {
      const out: number[] = [];
      encodePart(part, out);
      n += out.length;
    }
  }
  return n;
}

function nulCount(s: string): number {
  let n = 0;
  for (let at = s.indexOf("\0"); at !== -1; at = s.indexOf("\0", at + 1)) n++;
  return n;
}

function zeroBytes(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === 0) n++;
  return n;
}

/**
 * `key`'s encoding as a string of one char per byte: strings of it compare
 * (with `<`) as Deno KV orders the keys.
 *
 * @example
 * ```ts
 * import { keyString } from "./kv_key.ts";
 *
 * keyString([new Uint8Array()]) < keyString([""]); // true: bytes before strings
 * ```
 */
export function keyString(key: Deno.KvKey): string {
  const bytes = encodeKey(key);
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

/**
 * Compares keys as Deno KV orders them: negative, zero or positive.
 *
 * @example
 * ```ts
 * import { compareKvKeys } from "./kv_key.ts";
 *
 * [[true], [1], ["a"]].sort(compareKvKeys); // [["a"], [1], [true]]
 * ```
 */
export function compareKvKeys(a: Deno.KvKey, b: Deno.KvKey): number {
  const x = keyString(a);
  const y = keyString(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Compares two string key parts as Deno KV orders them (by their UTF-8
 * bytes, that is by code point), without encoding them: a view compares
 * every row it streams, and {@linkcode keyString} per row was its largest
 * cost. Strings read back from Deno KV hold no lone surrogates.
 *
 * @example
 * ```ts
 * import { compareKeyStrings } from "./kv_key.ts";
 *
 * compareKeyStrings("\u{10000}", "\uffff") > 0; // true: by code point, not by UTF-16 unit
 * ```
 */
export function compareKeyStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (code points from U+10000) order after U+E000–U+FFFF.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

function encodePart(part: Deno.KvKeyPart, out: number[]): void {
  if (part instanceof Uint8Array) {
    out.push(0x01);
    escaped(part, out);
  } else if (typeof part === "string") {
    out.push(0x02);
    escaped(encoder.encode(part), out);
  } else if (typeof part === "bigint") {
    encodeBigInt(part, out);
  } else if (typeof part === "number") {
    out.push(0x21);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, Number.isNaN(part) ? NaN : part);
    // Negative numbers: every bit flipped; others: the sign bit set. Then the bytes order as the numbers.
    if (bytes[0] & 0x80) { for (let i = 0; i < 8; i++) bytes[i] ^= 0xff; }
    else bytes[0] ^= 0x80;
    out.push(...bytes);
  } else if (typeof part === "boolean") {
    out.push(part ? 0x27 : 0x26);
  } else {
    throw new TypeError(`a key part must be a Uint8Array, string, number, bigint or boolean`);
  }
}

/** The bytes, each 0x00 written as 0x00 0xff, then a 0x00 terminator. */
function escaped(bytes: Uint8Array, out: number[]): void {
  for (const b of bytes) {
    out.push(b);
    if (b === 0) out.push(0xff);
  }
  out.push(0x00);
}

/** Integers: 0x14 for zero, 0x14 ± n for n bytes of magnitude (one's complement when negative). */
function encodeBigInt(n: bigint, out: number[]): void {
  if (n === 0n) {
    out.push(0x14);
    return;
  }
  const negative = n < 0n;
  let magnitude = negative ? -n : n;
  const bytes: number[] = [];
  while (magnitude > 0n) {
    bytes.unshift(Number(magnitude & 0xffn));
    magnitude >>= 8n;
  }
  if (bytes.length <= 8) {
    out.push(negative ? 0x14 - bytes.length : 0x14 + bytes.length);
  } else {
    // Longer integers: a tag, then the length (complemented when negative).
    out.push(negative ? 0x0b : 0x1d, negative ? bytes.length ^ 0xff : bytes.length);
  }
  for (const b of bytes) out.push(negative ? b ^ 0xff : b);
}
