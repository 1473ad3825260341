import assert from "node:assert/strict";
import { ArgumentsError } from "../net/errors.ts";
import { Random } from "../net/random.ts";
import { DEFAULT_KV_LIMITS, parseGet, parseWrite, parseWriteOp } from "./protocol.ts";
import { utf8Length } from "../net/bytes.ts";

Deno.test("kv protocol: utf8Length agrees with TextEncoder on random strings", () => {
  const random = new Random(7);
  const pieces = ["a", "é", "€", "𝄞", "\ud800", "\udc00", "\u0000", "\u07ff", "\uffff"];
  const encoder = new TextEncoder();
  for (let i = 0; i < 2000; i++) {
    let s = "";
    for (let k = random.int(12); k > 0; k--) s += pieces[random.int(pieces.length)];
    assert.equal(utf8Length(s), encoder.encode(s).length, JSON.stringify(s));
  }
});

Deno.test("kv protocol: requests are checked field by field and copied clean", () => {
  assert.equal(parseGet({ key: "" }, DEFAULT_KV_LIMITS), "");
  const w = parseWriteOp(
    { type: "put", key: "k", value: "v", extra: "dropped", expected: "ignored" },
    DEFAULT_KV_LIMITS,
  );
  assert.deepEqual(w, { type: "put", key: "k", value: "v" });
  assert.deepEqual(
    parseWrite({
      client: "c",
      seq: 3,
      write: { type: "cas", key: "k", expected: null, value: "v" },
    }, DEFAULT_KV_LIMITS),
    { client: "c", seq: 3, write: { type: "cas", key: "k", expected: null, value: "v" } },
  );
  const limits = { maxKeyBytes: 4, maxValueBytes: 4 };
  const cases: [unknown, RegExp][] = [
    [
      { client: "c", seq: 1, write: { type: "put", key: "toolong", value: "v" } },
      /key is 7 bytes; the limit is 4/,
    ],
    [
      { client: "c", seq: 1, write: { type: "append", key: "k", value: new Uint8Array(5) } },
      /value is 5 bytes/,
    ],
    [
      { client: "c", seq: 1, write: { type: "cas", key: "k", expected: "12345", value: "v" } },
      /expected is 5 bytes/,
    ],
    [
      { client: "c".repeat(257), seq: 1, write: { type: "delete", key: "k" } },
      /client id must be 1 to 256 bytes/,
    ],
    [
      { client: "c", seq: -1, write: { type: "delete", key: "k" } },
      /seq must be a positive integer/,
    ],
    [
      { client: "c", seq: 1, write: { type: "put", key: "k" } },
      /value must be a string or bytes, got undefined/,
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => parseWrite(args, limits),
      (err) => err instanceof ArgumentsError && message.test(err.message),
    );
  }
});

Deno.test("kv protocol: parseWrite keeps a log entry's digest when it is one, and leaves out anything else", () => {
  const write = { type: "put", key: "k", value: "v" };
  assert.equal(parseWrite({ client: "c", seq: 1, write, digest: 7 }, DEFAULT_KV_LIMITS).digest, 7);
  assert.equal(
    parseWrite({ client: "c", seq: 1, write, digest: 2 ** 32 - 1 }, DEFAULT_KV_LIMITS).digest,
    2 ** 32 - 1,
  );
  for (const digest of [-1, 2 ** 32, 1.5, "7", null, NaN]) {
    const command = parseWrite({ client: "c", seq: 1, write, digest }, DEFAULT_KV_LIMITS);
    assert.equal("digest" in command, false, `digest ${digest}`);
  }
});
