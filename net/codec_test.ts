import assert from "node:assert/strict";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { Codec, CodecError, FrameTooLargeError } from "./mod.ts";
import { Random } from "./random.ts";

Deno.test("codec: round-trips the value kinds RPCs carry", () => {
  const codec = new Codec();
  const value = {
    n: 1,
    f: 1.5,
    neg: -7,
    big: 2 ** 40,
    s: "ünïcödé",
    b: true,
    nil: null,
    arr: [1, "two", [3]],
    bytes: new Uint8Array([1, 2, 3]),
    nested: { a: { b: { c: [] } } },
  };
  assert.deepEqual(codec.decode(codec.encode(value)), value);
});

Deno.test("codec: undefined fields are left out", () => {
  const codec = new Codec();
  assert.deepEqual(codec.decode(codec.encode({ a: 1, b: undefined })), { a: 1 });
});

/** A one-entry map `{ [key]: { polluted: true } }`, encoded by hand. */
function mapWithKey(key: string): Uint8Array {
  const k = new TextEncoder().encode(key);
  const polluted = new TextEncoder().encode("polluted");
  return new Uint8Array([
    0x81,
    0xa0 + k.length,
    ...k,
    0x81,
    0xa0 + polluted.length,
    ...polluted,
    0xc3,
  ]);
}

Deno.test("codec: __proto__ keys are rejected and never pollute prototypes", () => {
  const codec = new Codec();
  // Encode a map whose key is literally "__proto__".
  const evil = mapWithKey("__proto__");
  assert.throws(() => codec.decode(evil), CodecError);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  const nested = new Uint8Array([0x91, ...evil]); // [ {__proto__: ...} ]
  assert.throws(() => codec.decode(nested), CodecError);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("codec: a constructor key stays an own property, prototypes untouched", () => {
  const codec = new Codec();
  const decoded = codec.decode(mapWithKey("constructor"));
  assert.ok(Object.hasOwn(decoded as object, "constructor"));
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.deepEqual((decoded as Record<string, unknown>).constructor, { polluted: true });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.prototype.constructor, Object);
});

Deno.test("codec: malformed, truncated and trailing input is a CodecError", () => {
  const codec = new Codec();
  const good = codec.encode({ key: "value", list: [1, 2, 3] });
  assert.throws(() => codec.decode(good.subarray(0, good.length - 2)), CodecError);
  assert.throws(() => codec.decode(new Uint8Array([...good, 0x01])), CodecError);
  assert.throws(() => codec.decode(new Uint8Array([0xc1])), CodecError); // never-used byte
  assert.throws(() => codec.decode(new Uint8Array([])), CodecError);
  // An array header claiming 2^32-1 elements in a 5-byte message.
  assert.throws(() => codec.decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), CodecError);
});

Deno.test("codec: values that cannot be encoded are a CodecError", () => {
  const codec = new Codec();
  assert.throws(() => codec.encode({ f: Symbol("x") }), CodecError);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => codec.encode(cyclic), CodecError);
});

Deno.test("codec: the size limit applies both ways", () => {
  const codec = new Codec({ maxMessageBytes: 100 });
  assert.throws(() => codec.encode("x".repeat(200)), FrameTooLargeError);
  const big = new Codec().encode("x".repeat(200));
  assert.throws(() => codec.decode(big), FrameTooLargeError);
  assert.throws(() => new Codec({ maxMessageBytes: 0 }), RangeError);
});

Deno.test("codec: 10,000 random byte strings never throw anything but CodecError", () => {
  const codec = new Codec({ maxMessageBytes: 4096 });
  let seed = 1;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  for (let i = 0; i < 10_000; i++) {
    const bytes = Uint8Array.from({ length: 1 + (next() % 64) }, next);
    try {
      codec.decode(bytes);
    } catch (err) {
      assert.ok(err instanceof CodecError, `unexpected ${err}`);
    }
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("Codec: long strings are written byte for byte as msgpack's own encoder writes them", () => {
  const codec = new Codec();
  const plain = new Encoder({ ignoreUndefined: true });
  const random = new Random(23);
  const pieces = ["a", "é", "€", "𝄞", "\ud800", "\udc00", "\u0000", "\uffff", "xyz"];
  for (let i = 0; i < 300; i++) {
    let s = "";
    // Around the long-string threshold, the header sizes (str8/16/32) and beyond one slice.
    const length = [10, 255, 256, 257, 300, 70_000, 20_000][i % 7] + random.int(20);
    while (s.length < length) s += pieces[random.int(pieces.length)];
    const value = { s, nested: [s, { k: s.slice(0, 300) }], n: i };
    assert.deepEqual(codec.encode(value), plain.encode(value), `string ${i} of ${s.length}`);
    assert.equal(codec.decode(codec.encode(s)), new Decoder().decode(plain.encode(s)));
  }
});
