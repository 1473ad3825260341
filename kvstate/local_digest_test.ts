import assert from "node:assert/strict";
import { localWriteDigest } from "./local_digest.ts";
import type { KvWrite } from "./kv_types.ts";

Deno.test("localWriteDigest: the same for the same write, another for writes that differ in any part", () => {
  const writes: KvWrite[] = [
    { type: "put", key: "a", value: "bc" },
    { type: "put", key: "ab", value: "c" },
    { type: "put", key: "a:", value: "bc" },
    { type: "append", key: "a", value: "bc" },
    { type: "put", key: "a", value: new TextEncoder().encode("bc") },
    { type: "put", key: "a", value: "" },
    { type: "delete", key: "a" },
    { type: "cas", key: "a", expected: null, value: "bc" },
    { type: "cas", key: "a", expected: "", value: "bc" },
    { type: "cas", key: "a", expected: "bc", value: "" },
    { type: "put", key: "a", value: "x".repeat(1 << 20) },
    { type: "put", key: "a", value: "x".repeat((1 << 20) - 1) + "y" },
  ];
  const digests = writes.map(localWriteDigest);
  assert.equal(new Set(digests).size, writes.length, JSON.stringify(digests));
  for (const w of writes) assert.equal(localWriteDigest(structuredClone(w)), localWriteDigest(w));
});
