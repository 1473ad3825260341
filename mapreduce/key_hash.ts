/**
 * The hash that places a key in its reduce task (the course's `ihash`):
 * 32-bit FNV-1a of the key's UTF-8 bytes, as a non-negative 31-bit number.
 * Not part of the public API: `partitionOf` is.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * FNV-1a of the UTF-8 bytes of `key`, masked to 31 bits. One pass for an
 * ASCII key (its UTF-16 units are its bytes); another key is encoded first.
 */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return utf8Hash(key);
    h = Math.imul(h ^ c, 0x01000193);
  }
  return (h >>> 0) & 0x7fffffff;
}

function utf8Hash(key: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(key)) h = Math.imul(h ^ b, 0x01000193);
  return (h >>> 0) & 0x7fffffff;
}
