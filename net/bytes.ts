/**
 * Byte helpers shared by the transports and Raft.
 *
 * @module
 */

/** Joins byte pieces of known total length into one array (the piece itself when there is one). */
export function concatBytes(pieces: readonly Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

const NOT_ASCII = /[\u0080-\uffff]/;

/**
 * The UTF-8 length of a string, without encoding it.
 *
 * @example
 * ```ts
 * import { utf8Length } from "@distkit/distkit/net";
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
