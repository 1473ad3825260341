import assert from "node:assert/strict";
import { Random } from "./random.ts";
import { utf8Length } from "./bytes.ts";

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
