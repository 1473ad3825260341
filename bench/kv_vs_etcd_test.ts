import assert from "node:assert/strict";
import { type Variant, variantsAt } from "./kv_vs_etcd.ts";

const PUT: Variant = { label: "etcd, HTTP, wrk", system: "etcd", api: "HTTP", driver: "wrk" };
const GET: Variant = { ...PUT, label: "etcd, HTTP, wrk, get", op: "get" };

Deno.test("variantsAt: --get-clients keeps the get rows at its counts only, the puts everywhere", () => {
  assert.deepEqual(variantsAt([PUT, GET], 1, { getClients: [64] }), [PUT]);
  assert.deepEqual(variantsAt([PUT, GET], 64, { getClients: [16, 64] }), [PUT, GET]);
});

Deno.test("variantsAt: without --get-clients every variant runs at every count", () => {
  assert.deepEqual(variantsAt([PUT, GET], 1), [PUT, GET]);
  assert.deepEqual(variantsAt([GET], 16, {}), [GET]);
});
