import assert from "node:assert/strict";
import { decodeUtf8 } from "./bytes.ts";

const STRICT = new TextDecoder("utf-8", { fatal: true });

/** What the strict decoder says: the text, or undefined when it throws. */
function strict(bytes: Uint8Array): string | undefined {
  try {
    return STRICT.decode(bytes);
  } catch {
    return undefined;
  }
}

Deno.test("decodeUtf8 agrees with the strict decoder on valid, invalid and U+FFFD-holding input", () => {
  const cases: number[][] = [
    [],
    [104, 105],
    [0xef, 0xbf, 0xbd], // U+FFFD itself, valid
    [0x61, 0xef, 0xbf, 0xbd, 0x62],
    [0xef, 0xbb, 0xbf, 0x61], // a BOM, dropped by both
    [0xff],
    [0x61, 0xc3], // cut in a sequence
    [0xed, 0xa0, 0x80], // a surrogate, not UTF-8
    [0xc0, 0xaf], // overlong
    [0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], // € and an emoji
    [0xef, 0xbf, 0xbd, 0xff], // U+FFFD, then an invalid byte
  ];
  for (const c of cases) {
    const bytes = new Uint8Array(c);
    assert.equal(decodeUtf8(bytes), strict(bytes), `bytes ${c.join(",")}`);
  }
});

Deno.test("decodeUtf8 agrees with the strict decoder on random bytes and long text", () => {
  // A fixed generator: the same cases on every run.
  let x = 0x9e3779b9;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  for (let n = 0; n < 2000; n++) {
    const bytes = new Uint8Array(next() % 12);
    // Mostly ASCII and valid multi-byte runs, with some arbitrary bytes.
    for (let i = 0; i < bytes.length; i++) {
      const r = next() % 4;
      bytes[i] = r === 0 ? next() & 0xff : r === 1 ? 0x80 | (next() & 0x3f) : next() & 0x7f;
    }
    assert.equal(decodeUtf8(bytes), strict(bytes), `bytes ${[...bytes].join(",")}`);
  }
  const long = new TextEncoder().encode("é".repeat(300_000) + "a".repeat(300_000));
  assert.equal(decodeUtf8(long), strict(long));
  const bad = long.slice();
  bad[bad.length - 1] = 0xff;
  assert.equal(decodeUtf8(bad), undefined);
});
