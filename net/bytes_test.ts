import assert from "node:assert/strict";
import { Random } from "./random.ts";
import { crc32, utf8Length } from "./bytes.ts";

const encoder = new TextEncoder();
const PIECES = ["a", "é", "€", "𝄞", "\ud800", "\udc00", "\u0000", "\u07ff", "\uffff"];

Deno.test("utf8Length: long strings, with surrogate pairs and lone halves across its slices", () => {
  const random = new Random(11);
  // Slices are 16 Ki characters: pairs and lone halves land on and around their edges.
  for (const edge of [16 * 1024, 32 * 1024, 48 * 1024]) {
    for (let shift = -3; shift <= 3; shift++) {
      for (const piece of PIECES) {
        const s = "x".repeat(edge + shift) + piece + "é".repeat(random.int(5)) + piece;
        assert.equal(utf8Length(s), encoder.encode(s).length, `edge ${edge}${shift} ${piece}`);
      }
    }
  }
  for (let i = 0; i < 40; i++) {
    let s = "";
    for (let k = 20_000 + random.int(40_000); k > 0; k--) s += PIECES[random.int(PIECES.length)];
    assert.equal(utf8Length(s), encoder.encode(s).length, `random string ${i}`);
  }
  // Only 3-byte characters (the most bytes a character may take in one slice), and a pair at the edge.
  const wide = "€".repeat(16 * 1024 - 1) + "𝄞" + "€".repeat(100);
  assert.equal(utf8Length(wide), encoder.encode(wide).length);
  assert.equal(utf8Length(""), 0);
  assert.equal(utf8Length("x".repeat(1 << 20)), 1 << 20);
});

Deno.test("crc32: the IEEE CRC-32 of the check string and of random bytes, as the bitwise definition gives", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
  // The definition, one bit at a time (slow, for the test only).
  const bitwise = (bytes: Uint8Array) => {
    let c = 0xffffffff;
    for (const b of bytes) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  let seed = 1;
  for (const size of [1, 7, 64, 1000, 65_537]) {
    const bytes = new Uint8Array(size).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    assert.equal(crc32(bytes), bitwise(bytes), `${size} bytes`);
    assert.equal(crc32(bytes.subarray(3, size - 1)), bitwise(bytes.subarray(3, size - 1)));
    // Continued from an initial CRC, and of a string's UTF-8.
    assert.equal(crc32(bytes.subarray(5), crc32(bytes.subarray(0, 5))), crc32(bytes));
  }
  const text = "héllo 𝄞 wörld";
  assert.equal(crc32(text), bitwise(encoder.encode(text)));
});
