import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { compareKeyStrings, compareKvKeys, encodedKeyLength, encodeKey } from "./kv_key.ts";

Deno.test("kv key: encodedKeyLength is the length of encodeKey's bytes, for every kind of part", () => {
  const r = new Random(19);
  const chars = ["a", "\0", "é", "€", "😀", "\ud800", "\udc00", "z"];
  const part = (): Deno.KvKeyPart => {
    switch (r.int(6)) {
      case 0:
        return Array.from({ length: r.int(12) }, () => chars[r.int(chars.length)]).join("");
      case 1:
        return r.chance(0.5) ? r.int(1000) : -r.int(1000) / 7;
      case 2:
        return Uint8Array.from({ length: r.int(8) }, () => r.int(3));
      case 3:
        return BigInt(r.int(1000)) * (r.chance(0.5) ? 1n : -(10n ** 30n));
      case 4:
        return r.chance(0.5);
      default:
        return "x".repeat(r.int(3000));
    }
  };
  for (let i = 0; i < 2000; i++) {
    const key = Array.from({ length: r.int(5) + 1 }, part);
    assert.equal(encodedKeyLength(key), encodeKey(key).length, `key ${i}: ${String(key)}`);
  }
});

Deno.test("kv key: compareKeyStrings orders strings as their encoded keys do", () => {
  const r = new Random(23);
  // No lone surrogates: Deno KV hands back none (they are stored as U+FFFD).
  const chars = [
    "a",
    "\0",
    "\x01",
    "é",
    "\ud7ff",
    "\ue000",
    "€",
    "\uffff",
    "😀",
    "\u{10ffff}",
    "z",
  ];
  const word = () => Array.from({ length: r.int(6) }, () => chars[r.int(chars.length)]).join("");
  for (let i = 0; i < 5000; i++) {
    const [a, b] = [word(), word()];
    const want = Math.sign(compareKvKeys([a], [b]));
    assert.equal(Math.sign(compareKeyStrings(a, b)), want, `${JSON.stringify([a, b])}`);
  }
});
