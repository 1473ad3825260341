import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import {
  isZero,
  KIND_ENTRY,
  nonZeroEnd,
  readRecord,
  RECORD_HEADER_BYTES,
  validRecordFollows,
  writeRecord,
} from "./segment_format.ts";

Deno.test("segment format: isZero and nonZeroEnd agree with a byte-by-byte scan at any alignment", () => {
  const rnd = new Random(7);
  for (let n = 0; n < 20_000; n++) {
    const buffer = new Uint8Array(64);
    const offset = rnd.int(8);
    const length = rnd.int(56 - offset + 1);
    const bytes = buffer.subarray(offset, offset + length);
    for (let k = rnd.int(3); k > 0 && length > 0; k--) bytes[rnd.int(length)] = 1 + rnd.int(255);
    const from = rnd.int(length + 1);
    const to = from + rnd.int(length - from + 1);
    const zero = bytes.subarray(from, to).every((b) => b === 0);
    const end = bytes.findLastIndex((b, i) => i >= from && b !== 0) + 1 || from;
    assert.equal(isZero(bytes, from, to), zero, `offset ${offset}, ${from}..${to} of ${length}`);
    assert.equal(nonZeroEnd(bytes, from), Math.max(end, from), `offset ${offset}, from ${from}`);
  }
});

Deno.test("segment format: records chain; a record read with another seed, or damaged, is bad", () => {
  const out = new Uint8Array(200);
  const payload = new TextEncoder().encode("hello");
  const a = writeRecord(out, 0, { kind: KIND_ENTRY, index: 7, term: 2, payload, seed: 11 });
  const second = RECORD_HEADER_BYTES + payload.length;
  writeRecord(out, second, { kind: KIND_ENTRY, index: 8, term: 2, payload, seed: a });
  const r = readRecord(out, 0, 11);
  assert.ok(typeof r === "object");
  assert.deepEqual([r.index, r.term, new TextDecoder().decode(r.payload)], [7, 2, "hello"]);
  assert.equal(readRecord(out, 0, 12), "bad", "another seed: read out of place");
  assert.equal(typeof readRecord(out, second, a), "object");
  assert.equal(readRecord(out, 2 * second, 0), "zero");
  const damaged = out.slice();
  damaged[RECORD_HEADER_BYTES + 1] ^= 1;
  assert.equal(readRecord(damaged, 0, 11), "bad");
  assert.ok(validRecordFollows(damaged, 0, 11), "the next record still chains to the stored CRC");
  const crcFlipped = out.slice();
  crcFlipped[0] ^= 1;
  assert.ok(validRecordFollows(crcFlipped, 0, 11), "the next record chains to the content's CRC");
  const last = out.slice(0, 2 * second);
  last[second + RECORD_HEADER_BYTES] ^= 1;
  assert.equal(validRecordFollows(last, second, a), false, "nothing follows the last record");
});
