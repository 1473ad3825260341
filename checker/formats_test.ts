import assert from "node:assert/strict";
import {
  acceptsInput,
  detectFormat,
  HistoryFormatError,
  modelsByName,
  parseHistory,
} from "./formats.ts";
import { checkOperations } from "./check.ts";

/** Asserts that parsing fails at `line` with an expectation matching `expected`. */
function assertMalformed(
  text: string,
  format: "auto" | "jsonl" | "edn" | "jepsen",
  line: number,
  expected: RegExp,
): HistoryFormatError {
  try {
    parseHistory(text, { format });
  } catch (e) {
    assert.ok(e instanceof HistoryFormatError, `not a HistoryFormatError: ${e}`);
    assert.equal(e.line, line, e.message);
    assert.match(e.expected, expected, e.message);
    assert.equal(e.message, `line ${line}: expected ${e.expected}, found ${e.found}`);
    return e;
  }
  assert.fail(`parsed without an error: ${JSON.stringify(text)}`);
}

// --- detection ---------------------------------------------------------------

Deno.test("detectFormat: by the first non-empty line", () => {
  assert.equal(detectFormat(""), "jsonl");
  assert.equal(detectFormat("\n  \n"), "jsonl");
  assert.equal(detectFormat('{"model": "kv"}'), "jsonl");
  assert.equal(detectFormat('\n{"client": 0}'), "jsonl");
  assert.equal(detectFormat('{:process 0, :type :invoke, :f :get, :key "1", :value nil}'), "edn");
  assert.equal(detectFormat("INFO  jepsen.util - 0\t:invoke\t:read\tnil"), "jepsen");
  assert.equal(detectFormat("INFO jepsen.util - 0 :invoke :read nil"), "jepsen");
  const err = assertMalformed("\n\nhello world", "auto", 3, /JSON object.*EDN map.*Jepsen/);
  assert.equal(err.found, '"hello world"');
});

Deno.test("parseHistory: the empty history suggests no model (jsonl) and has no operations", () => {
  const parsed = parseHistory("");
  assert.deepEqual(parsed, { format: "jsonl", model: undefined, operations: [], omitted: 0 });
  assert.deepEqual(parseHistory("", { format: "edn" }).operations, []);
  assert.deepEqual(parseHistory("", { format: "jepsen" }).operations, []);
});

// --- JSON lines ----------------------------------------------------------------

Deno.test("jsonl: operations with a model header, unknown outcomes and annotations", () => {
  const text = [
    '{"model": "kv"}',
    '{"client": 0, "input": {"op": "put", "key": "x", "value": "1"}, "call": 0, "output": "", "return": 10}',
    "",
    '{"client": "b", "input": {"op": "get", "key": "x"}, "call": 5, "output": "1", "return": 15, "annotation": "read"}',
    '{"client": 2, "input": {"op": "append", "key": "x", "value": "2"}, "call": 12, "unknown": true}',
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.format, "jsonl");
  assert.equal(parsed.model, "kv");
  assert.deepEqual(parsed.operations, [
    { client: 0, input: { op: "put", key: "x", value: "1" }, call: 0, output: "", return: 10 },
    {
      client: "b",
      input: { op: "get", key: "x" },
      call: 5,
      output: "1",
      return: 15,
      annotation: "read",
    },
    {
      client: 2,
      input: { op: "append", key: "x", value: "2" },
      call: 12,
      output: undefined,
      return: Infinity,
      unknown: true,
    },
  ]);
  assert.equal(checkOperations(modelsByName.kv, parsed.operations).verdict, "linearizable");
});

Deno.test("jsonl: a lock history with its header is checked with the lock model", () => {
  const text = [
    '{"model": "lock"}',
    '{"client": 0, "input": {"op": "lock", "name": "a"}, "call": 0, "output": true, "return": 1}',
    '{"client": 1, "input": {"op": "lock", "name": "a"}, "call": 2, "output": true, "return": 3}',
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.model, "lock");
  assert.equal(
    checkOperations(modelsByName.lock, parsed.operations).verdict,
    "not linearizable",
  );
});

Deno.test("jsonl: events become operations; an unreturned call stays open", () => {
  const text = [
    '{"kind": "call", "id": 0, "client": 0, "value": {"op": "write", "value": 1}}',
    '{"kind": "call", "id": 1, "client": 1, "value": {"op": "read"}}',
    '{"kind": "return", "id": 1, "client": 1, "value": 0}',
    '{"kind": "call", "id": 2, "client": 1, "value": {"op": "read"}}',
  ].join("\r\n");
  const parsed = parseHistory(text, { format: "jsonl" });
  assert.equal(parsed.model, "register"); // guessed from the inputs
  assert.equal(parsed.operations.length, 3);
  assert.deepEqual(parsed.operations[1], {
    client: 1,
    input: { op: "read" },
    call: 1,
    output: 0,
    return: 2,
  });
  assert.equal(parsed.operations[0].unknown, true);
  assert.equal(parsed.operations[2].unknown, true);
});

Deno.test("jsonl: the model is guessed from the inputs when there is no header", () => {
  const op = (input: unknown) => JSON.stringify({ client: 0, input, call: 0, return: 1 });
  const guess = (...inputs: unknown[]) => parseHistory(inputs.map(op).join("\n")).model;
  assert.equal(guess({ op: "get", key: "a" }, { op: "put", key: "a", value: "1" }), "kv");
  assert.equal(guess({ op: "read" }, { op: "write", value: "x" }), "register");
  assert.equal(guess({ op: "read" }, { op: "cas", from: 1, to: 2 }), "cas-register");
  assert.equal(guess({ op: "add", value: "a" }, { op: "read" }), "set");
  assert.equal(guess({ op: "lock", name: "a" }, { op: "unlock", name: "a" }), "lock");
  assert.equal(guess({ op: "frobnicate" }), undefined);
  assert.equal(guess("just a string"), undefined);
});

Deno.test("jsonl: malformed lines name the line, what was expected and what was found", () => {
  const good = '{"client": 0, "input": {"op": "read"}, "call": 0, "output": 0, "return": 1}';
  assertMalformed(`${good}\n{"client": 0, "input": `, "jsonl", 2, /^a JSON object$/);
  assertMalformed(`${good}\n[1, 2]`, "jsonl", 2, /^a JSON object$/);
  assertMalformed(`${good}\n\n42`, "jsonl", 3, /^a JSON object$/);
  const e1 = assertMalformed(
    '{"client": 0, "input": 1, "call": "soon", "return": 1}',
    "jsonl",
    1,
    /a number for "call"/,
  );
  assert.equal(e1.found, '"soon"');
  assertMalformed('{"client": 0, "input": 1, "call": 0}', "jsonl", 1, /a number for "return"/);
  assertMalformed('{"client": 0, "call": 0, "return": 1}', "jsonl", 1, /an "input" field/);
  assertMalformed('{"client": null, "input": 1, "call": 0, "return": 1}', "jsonl", 1, /"client"/);
  assertMalformed('{"client": 0, "input": 1, "call": 5, "return": 1}', "jsonl", 1, /at or after/);
  assertMalformed(
    '{"client": 0, "input": 1, "call": 0, "return": 1, "unknown": "yes"}',
    "jsonl",
    1,
    /"unknown"/,
  );
  assertMalformed('{"model": "queue"}', "jsonl", 1, /"model" to be one of "kv", /);
  // A header only on the first line; later it is an operation without fields.
  assertMalformed(`${good}\n{"model": "kv"}`, "jsonl", 2, /"client"/);
  // Events and operations do not mix.
  assertMalformed(
    `${good}\n{"kind": "call", "id": 0, "client": 0, "value": 1}`,
    "jsonl",
    2,
    /an operation .* like line 1's/,
  );
  assertMalformed('{"kind": "start", "id": 0, "client": 0}', "jsonl", 1, /"call" or "return"/);
  assertMalformed('{"kind": "return", "id": 3, "client": 0}', "jsonl", 1, /open call with id 3/);
  assertMalformed(
    '{"kind": "call", "id": 3, "client": 0, "value": 1}\n{"kind": "call", "id": 3, "client": 1, "value": 1}',
    "jsonl",
    2,
    /a new id/,
  );
  assertMalformed('{"kind": "call", "id": "x", "client": 0, "value": 1}', "jsonl", 1, /"id"/);
});

// --- EDN ------------------------------------------------------------------------

Deno.test("edn: key/value operations matched per process, nil reads as the empty string", () => {
  const text = [
    '{:process 3, :type :invoke, :f :append, :key "7", :value "x 3 12 y"}',
    '{:process 1, :type :invoke, :f :get, :key "7", :value nil}',
    '{:process 1, :type :ok, :f :get, :key "7", :value nil}',
    '{:process 3, :type :ok, :f :append, :key "7", :value "x 3 12 y"}',
    '{:process 1, :type :invoke, :f :put, :key "8", :value "a \\"quoted\\" value"}',
    '{:process 1, :type :ok, :f :put, :key "8", :value "a \\"quoted\\" value"}',
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.format, "edn");
  assert.equal(parsed.model, "kv");
  assert.deepEqual(parsed.operations, [
    {
      client: 3,
      input: { op: "append", key: "7", value: "x 3 12 y" },
      call: 1,
      output: "",
      return: 4,
    },
    { client: 1, input: { op: "get", key: "7" }, call: 2, output: "", return: 3 },
    {
      client: 1,
      input: { op: "put", key: "8", value: 'a "quoted" value' },
      call: 5,
      output: "",
      return: 6,
    },
  ]);
});

Deno.test("edn: :info and missing completions stay open; a failed write is left out", () => {
  const text = [
    '{:process 0, :type :invoke, :f :put, :key "1", :value "a"}',
    '{:process 1, :type :invoke, :f :put, :key "1", :value "b"}',
    '{:process 2, :type :invoke, :f :get, :key "1", :value nil}',
    '{:process 3, :type :invoke, :f :append, :key "1", :value "c"}',
    '{:process 0, :type :info, :f :put, :key "1", :value "a"}',
    '{:process 1, :type :fail, :f :put, :key "1", :value "b"}',
    '{:process 2, :type :fail, :f :get, :key "1", :value nil}',
    "{:process :nemesis, :type :info, :f :start, :value nil}",
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.omitted, 1);
  assert.deepEqual(parsed.operations.map((o) => [o.client, o.unknown ?? false, o.return]), [
    [0, true, Infinity],
    [2, false, 7], // a failed read: returned, result unknown
    [3, true, Infinity],
  ]);
  assert.equal(parsed.operations[1].output, undefined);
});

Deno.test("edn: register operations suggest the cas-register model", () => {
  const text = [
    "{:process 0, :type :invoke, :f :write, :value 3}",
    "{:process 0, :type :ok, :f :write, :value 3}",
    "{:process 0, :type :invoke, :f :cas, :value [3 4]}",
    "{:process 0, :type :fail, :f :cas, :value [3 4]}",
    "{:process 0, :type :invoke, :f :read, :value nil}",
    "{:process 0, :type :ok, :f :read, :value 3}",
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.model, "cas-register");
  assert.deepEqual(parsed.operations.map((o) => [o.input, o.output]), [
    [{ op: "write", value: 3 }, undefined],
    [{ op: "cas", from: 3, to: 4 }, false],
    [{ op: "read" }, 3],
  ]);
  // A cas that failed although the value was its `from`: not linearizable.
  assert.equal(
    checkOperations(modelsByName["cas-register"], parsed.operations).verdict,
    "not linearizable",
  );
});

Deno.test("edn: long values with escapes read back exactly (slices, not a character at a time)", () => {
  const long = "x 1 2 y".repeat(30_000);
  const text = [
    '{:process 0, :type :invoke, :f :append, :key "k", :value "a\\"b\\\\c"}',
    '{:process 0, :type :ok, :f :append, :key "k", :value "a\\"b\\\\c"}',
    '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
    `{:process 1, :type :ok, :f :get, :key "k", :value "${long}\\n${long}"}`,
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal((parsed.operations[0].input as { value: string }).value, 'a"b\\c');
  assert.equal(parsed.operations[1].output, `${long}\n${long}`);
});

Deno.test("edn: malformed lines", () => {
  const invoke = '{:process 0, :type :invoke, :f :get, :key "1", :value nil}';
  assertMalformed(`${invoke}\n{:process 0, :type :ok`, "edn", 2, /keyword or "}"/);
  assertMalformed('{:process 0, :type :ok, :f :get, :key "1, :value nil}', "edn", 1, /closing "/);
  assertMalformed("process 0", "edn", 1, /EDN map/);
  assertMalformed(
    '{:process 0, :type :invoke, :f :get, :key "1"} extra',
    "edn",
    1,
    /end of the line/,
  );
  assertMalformed("{:process 0, :type}", "edn", 1, /a value for :type/);
  assertMalformed("{:process 0, :type :invoke, :f :get, :key @}", "edn", 1, /a keyword, string/);
  assertMalformed('{:type :invoke, :f :get, :key "1"}', "edn", 1, /a :process field/);
  assertMalformed('{:process "p", :type :invoke, :f :get, :key "1"}', "edn", 1, /integer :process/);
  assertMalformed('{:process 0, :type :begin, :f :get, :key "1"}', "edn", 1, /:type :invoke/);
  assertMalformed('{:process 0, :type :invoke, :f :delete, :key "1"}', "edn", 1, /:f :get/);
  assertMalformed('{:process 0, :type :invoke, :f :put, :key "1", :value 5}', "edn", 1, /string/);
  // An :ok without an :invoke, a second :invoke while one is pending, a different :f or :key.
  assertMalformed('{:process 4, :type :ok, :f :get, :key "1", :value nil}', "edn", 1, /:invoke/);
  const second = assertMalformed(`${invoke}\n${invoke}`, "edn", 2, /completion .* line 1/);
  assert.match(second.found, /:invoke/);
  assertMalformed(
    `${invoke}\n{:process 0, :type :ok, :f :put, :key "1", :value "x"}`,
    "edn",
    2,
    /:get, the function process 0 invoked on line 1/,
  );
  assertMalformed(
    `${invoke}\n{:process 0, :type :ok, :f :get, :key "2", :value "x"}`,
    "edn",
    2,
    /:key "1"/,
  );
  // Key/value and register operations do not mix.
  assertMalformed(`${invoke}\n{:process 1, :type :invoke, :f :read}`, "edn", 2, /like line 1/);
});

// --- Jepsen logs ---------------------------------------------------------------------

const JEPSEN = [
  "INFO  jepsen.util - 0\t:invoke\t:read\tnil",
  "INFO  jepsen.util - 3\t:invoke\t:write\t4",
  "INFO  jepsen.util - 0\t:ok\t:read\tnil",
  "INFO  jepsen.util - 3\t:ok\t:write\t4",
  "INFO  jepsen.util - 1\t:invoke\t:cas\t[4 0]",
  "INFO  jepsen.util - 2\t:invoke\t:cas\t[0 0]",
  "INFO  jepsen.util - 1\t:ok\t:cas\t[4 0]",
  "INFO  jepsen.util - 2\t:fail\t:cas\t[0 0]",
  "INFO  jepsen.util - 4\t:invoke\t:write\t1",
  "INFO  jepsen.util - 4\t:info\t:write\t:timed-out",
  "INFO  jepsen.util - 0\t:invoke\t:read\tnil",
  "INFO  jepsen.util - 0\t:ok\t:read\t1",
];

Deno.test("jepsen: reads, writes, cas, :fail cas returns false, :info stays open", () => {
  const parsed = parseHistory(JEPSEN.join("\n"));
  assert.equal(parsed.format, "jepsen");
  assert.equal(parsed.model, "cas-register");
  assert.deepEqual(parsed.operations.map((o) => [o.client, o.input, o.output, o.call, o.return]), [
    [0, { op: "read" }, null, 1, 3],
    [3, { op: "write", value: 4 }, undefined, 2, 4],
    [1, { op: "cas", from: 4, to: 0 }, true, 5, 7],
    [2, { op: "cas", from: 0, to: 0 }, false, 6, 8],
    [4, { op: "write", value: 1 }, undefined, 9, Infinity],
    [0, { op: "read" }, 1, 11, 12],
  ]);
  assert.equal(parsed.operations[4].unknown, true);
  assert.match(parsed.operations[4].annotation ?? "", /:info on line 10/);
  // The read of 1 is explained by the timed-out write having taken effect.
  assert.equal(
    checkOperations(modelsByName["cas-register"], parsed.operations).verdict,
    "linearizable",
  );
});

Deno.test("jepsen: runs of spaces, other loggers, the nemesis and blank lines", () => {
  const text = [
    "INFO  jepsen.core - Worker 0 starting",
    "INFO jepsen.util - 0    :invoke   :cas   [1 2]",
    "",
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
    "INFO  jepsen.util - 0  :fail  :cas  [1 2]",
  ].join("\n");
  const parsed = parseHistory(text);
  assert.deepEqual(parsed.operations, [
    {
      client: 0,
      input: { op: "cas", from: 1, to: 2 },
      call: 2,
      output: false,
      return: 5,
      annotation: ":fail on line 5",
    },
  ]);
});

Deno.test("jepsen: :fail :read is a read with an unknown result; :fail :write did not happen", () => {
  const text = [
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil",
    "INFO  jepsen.util - 1\t:invoke\t:write\t7",
    "INFO  jepsen.util - 0\t:fail\t:read\t:timed-out",
    "INFO  jepsen.util - 1\t:fail\t:write\t7",
    "INFO  jepsen.util - 2\t:invoke\t:read\tnil",
    "INFO  jepsen.util - 2\t:ok\t:read\tnil",
    "INFO  jepsen.util - 3\t:invoke\t:write\t2",
  ].join("\n");
  const parsed = parseHistory(text);
  assert.equal(parsed.omitted, 1);
  assert.deepEqual(parsed.operations.map((o) => [o.client, o.output, o.return, o.unknown]), [
    [0, undefined, 3, undefined],
    [2, null, 6, undefined],
    [3, undefined, Infinity, true], // never completed
  ]);
  // The read of nil after the failed write is fine: the write never happened.
  assert.equal(
    checkOperations(modelsByName["cas-register"], parsed.operations).verdict,
    "linearizable",
  );
});

Deno.test("jepsen: malformed lines", () => {
  const j = (s: string) => `INFO  jepsen.util - ${s}`;
  assertMalformed(`${JEPSEN[0]}\nsomething else`, "jepsen", 2, /Jepsen log line/);
  assertMalformed(j("x\t:invoke\t:read\tnil"), "jepsen", 1, /process number/);
  assertMalformed(j("0\t:begin\t:read\tnil"), "jepsen", 1, /:invoke, :ok, :fail or :info/);
  assertMalformed(j("0\tinvoke\t:read\tnil"), "jepsen", 1, /:invoke, :ok, :fail or :info/);
  assertMalformed(j("0\t:invoke\t:delete\tnil"), "jepsen", 1, /:read, :write or :cas/);
  assertMalformed(j("0\t:invoke\t:read\t3"), "jepsen", 1, /nil for an :invoke :read/);
  assertMalformed(j("0\t:invoke\t:write\tnil"), "jepsen", 1, /an integer for :write/);
  assertMalformed(j("0\t:invoke\t:cas\t[1]"), "jepsen", 1, /\[from to\]/);
  assertMalformed(j("0\t:invoke\t:cas"), "jepsen", 1, /\[from to\]/);
  assertMalformed(`${JEPSEN[0]}\n${j("0\t:ok\t:read\tabc")}`, "jepsen", 2, /nil or an integer/);
  assertMalformed(j("5\t:ok\t:read\tnil"), "jepsen", 1, /an :invoke by process 5 before its :ok/);
  assertMalformed(`${JEPSEN[0]}\n${JEPSEN[0]}`, "jepsen", 2, /completion .* invoked on line 1/);
  assertMalformed(`${JEPSEN[0]}\n${j("0\t:ok\t:write\t1")}`, "jepsen", 2, /:read, the function/);
  assertMalformed(`${JEPSEN[1]}\n${j("3\t:ok\t:write\t5")}`, "jepsen", 2, /4, the value written/);
  assertMalformed(
    `${JEPSEN[4]}\n${j("1\t:fail\t:cas\t[4 1]")}`,
    "jepsen",
    2,
    /\[4 0\], the cas invoked on line 1/,
  );
});

Deno.test("acceptsInput: inputs of each model, and inputs it cannot take", () => {
  assert.ok(acceptsInput("kv", { op: "append", key: "k", value: "v" }));
  assert.ok(acceptsInput("kv-map", { op: "get", key: "k" }));
  assert.ok(!acceptsInput("kv", { op: "get" }));
  assert.ok(!acceptsInput("kv", { op: "put", key: "k", value: 3 }));
  assert.ok(acceptsInput("register", { op: "write", value: { any: "thing" } }));
  assert.ok(!acceptsInput("register", { op: "write" }));
  assert.ok(!acceptsInput("register", { op: "cas", from: 1, to: 2 }));
  assert.ok(acceptsInput("cas-register", { op: "cas", from: 1, to: 2 }));
  assert.ok(!acceptsInput("cas-register", { op: "write", value: "1" }));
  assert.ok(acceptsInput("set", { op: "remove", value: "x" }));
  assert.ok(!acceptsInput("set", { op: "add", value: 1 }));
  assert.ok(!acceptsInput("set", null));
  assert.ok(!acceptsInput("set", "read"));
  assert.ok(acceptsInput("lock", { op: "unlock", name: "printer" }));
  assert.ok(!acceptsInput("lock", { op: "lock" }));
  assert.ok(!acceptsInput("lock", { op: "read", name: "printer" }));
});
