import assert from "node:assert/strict";
import { checkOperations } from "./check.ts";
import { type KvServiceInput, kvServiceModel, type KvServiceOutput } from "./kv_model.ts";
import type { Operation } from "./types.ts";
import { acceptsInput, modelsByName, parseHistory } from "./formats.ts";

type Op = Operation<KvServiceInput, KvServiceOutput>;

/** Operations one after another (none overlap), each on client `c`. */
function serial(steps: [KvServiceInput, KvServiceOutput][], client = 0): Op[] {
  return steps.map(([input, output], k) => ({
    client,
    input,
    output,
    call: 2 * k,
    return: 2 * k + 1,
  }));
}

function verdict(history: Op[]): string {
  return checkOperations(kvServiceModel, history).verdict;
}

const get = (key: string): KvServiceInput => ({ op: "get", key });
const put = (key: string, value: string): KvServiceInput => ({ op: "put", key, value });
const append = (key: string, value: string): KvServiceInput => ({ op: "append", key, value });
const del = (key: string): KvServiceInput => ({ op: "delete", key });
const cas = (key: string, expected: string | null, value: string): KvServiceInput => ({
  op: "cas",
  key,
  expected,
  value,
});

Deno.test("kv service model: get reads null for an absent key and the value after a put", () => {
  assert.equal(
    verdict(serial([[get("a"), null], [put("a", "1"), undefined], [get("a"), "1"]])),
    "linearizable",
  );
  assert.equal(verdict(serial([[get("a"), ""]])), "not linearizable", 'absent is null, not ""');
  assert.equal(verdict(serial([[put("a", "1"), undefined], [get("a"), "2"]])), "not linearizable");
});

Deno.test("kv service model: append starts a missing key from empty", () => {
  assert.equal(
    verdict(
      serial([[append("a", "x"), undefined], [append("a", "y"), undefined], [get("a"), "xy"]]),
    ),
    "linearizable",
  );
  assert.equal(
    verdict(serial([[append("a", "x"), undefined], [get("a"), "y"]])),
    "not linearizable",
  );
});

Deno.test("kv service model: delete answers whether the key was there", () => {
  // Deleting a missing key answers false and leaves it absent.
  assert.equal(verdict(serial([[del("a"), false], [get("a"), null]])), "linearizable");
  assert.equal(verdict(serial([[del("a"), true]])), "not linearizable", "nothing was there");
  assert.equal(
    verdict(serial([[put("a", "1"), undefined], [del("a"), true], [get("a"), null]])),
    "linearizable",
  );
  assert.equal(
    verdict(serial([[put("a", "1"), undefined], [del("a"), false]])),
    "not linearizable",
    "the key was there",
  );
  assert.equal(
    verdict(serial([[put("a", "1"), undefined], [del("a"), true], [get("a"), "1"]])),
    "not linearizable",
    "read after the delete",
  );
});

Deno.test("kv service model: cas swaps only on a match, and a refusal names the value found", () => {
  assert.equal(
    verdict(serial([
      [cas("a", null, "1"), { ok: true }],
      [cas("a", null, "2"), { ok: false, current: "1" }],
      [cas("a", "1", "3"), { ok: true }],
      [get("a"), "3"],
    ])),
    "linearizable",
  );
  // A cas that claims to have swapped when the key held something else.
  assert.equal(
    verdict(serial([[put("a", "1"), undefined], [cas("a", null, "2"), { ok: true }]])),
    "not linearizable",
  );
  // A refused cas whose expectation held.
  assert.equal(
    verdict(
      serial([[put("a", "1"), undefined], [cas("a", "1", "2"), { ok: false, current: "1" }]]),
    ),
    "not linearizable",
  );
  // A refusal on an absent key reports current null; any other value is wrong.
  assert.equal(
    verdict(serial([[cas("a", "x", "2"), { ok: false, current: null }]])),
    "linearizable",
  );
  assert.equal(
    verdict(serial([[cas("a", "x", "2"), { ok: false, current: "y" }]])),
    "not linearizable",
  );
  // A bare boolean is not what the service answers to a cas.
  assert.equal(verdict(serial([[cas("a", null, "1"), true]])), "not linearizable");
});

Deno.test("kv service model: concurrent operations may take effect in either order", () => {
  // c0 puts while c1's cas runs: the cas saw the put (refused) or not (swapped).
  const history: Op[] = [
    { client: 0, input: put("a", "p"), output: undefined, call: 0, return: 10 },
    {
      client: 1,
      input: cas("a", null, "c"),
      output: { ok: false, current: "p" },
      call: 1,
      return: 9,
    },
    { client: 2, input: get("a"), output: "p", call: 11, return: 12 },
  ];
  assert.equal(verdict(history), "linearizable");
  // The same cas swapping would need the get to read "c" or the put after it.
  history[1] = { ...history[1], output: { ok: true } };
  assert.equal(verdict(history), "linearizable", "put after the cas: the get reads p");
  history[2] = { ...history[2], output: "c", call: 11 };
  assert.equal(verdict(history), "not linearizable", "the put returned before the get: not c");
});

Deno.test("kv service model: an unknown outcome accepts either outcome", () => {
  const history: Op[] = [
    { client: 0, input: put("a", "1"), output: undefined, call: 0, return: 1 },
    { client: 1, input: del("a"), output: undefined, call: 2, return: Infinity, unknown: true },
    { client: 2, input: get("a"), output: "1", call: 3, return: 4 },
    { client: 2, input: get("a"), output: null, call: 5, return: 6 },
  ];
  assert.equal(verdict(history), "linearizable", "the delete ran between the two gets");
  const unknownCas: Op[] = [
    {
      client: 1,
      input: cas("b", null, "x"),
      output: undefined,
      call: 0,
      return: Infinity,
      unknown: true,
    },
    { client: 2, input: get("b"), output: null, call: 1, return: 2 },
    { client: 2, input: get("b"), output: "x", call: 3, return: 4 },
  ];
  assert.equal(verdict(unknownCas), "linearizable");
});

Deno.test("kv service model: keys are checked apart and named", () => {
  const result = checkOperations(kvServiceModel, [
    ...serial([[put("a", "1"), undefined], [get("a"), "1"]]),
    ...serial([[del("b"), false]], 1),
  ]);
  assert.equal(result.verdict, "linearizable");
  assert.deepEqual(result.partitions.map((p) => p.key), ["a", "b"]);
  assert.equal(kvServiceModel.describeOperation!(del("b"), false), 'delete("b") → absent');
  assert.equal(
    kvServiceModel.describeOperation!(cas("b", null, "1"), { ok: false, current: "2" }),
    'cas("b", null → "1") → refused, current "2"',
  );
});

Deno.test("kv service model: JSON lines with deletes and cas suggest it, by the name kv-service", () => {
  const lines = [
    { client: 0, input: put("a", "1"), call: 0, return: 1 },
    { client: 1, input: cas("a", "1", "2"), call: 2, output: { ok: true }, return: 3 },
    { client: 1, input: del("a"), call: 4, output: true, return: 5 },
    { client: 0, input: get("a"), call: 6, output: null, return: 7 },
  ].map((line) => JSON.stringify(line)).join("\n");
  const parsed = parseHistory(lines);
  assert.equal(parsed.model, "kv-service");
  assert.equal(modelsByName["kv-service"], kvServiceModel);
  assert.equal(checkOperations(kvServiceModel, parsed.operations).verdict, "linearizable");
  assert.ok(!acceptsInput("kv-service", { op: "cas", key: "a", expected: 1, value: "2" }));
  assert.ok(!acceptsInput("kv-service", { op: "put", key: "a" }));
  assert.ok(acceptsInput("kv-service", { op: "cas", key: "a", expected: null, value: "2" }));
});
