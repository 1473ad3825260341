import assert from "node:assert/strict";
import { ArgumentsError } from "../net/errors.ts";
import { parseMessage } from "./messages.ts";
import type { Message } from "./types.ts";

const env = { from: "a", to: "b", term: 3 };

const WELL_FORMED: Message[] = [
  { ...env, type: "vote", pre: true, transfer: false, lastIndex: 7, lastTerm: 2 },
  { ...env, type: "voteResp", pre: false, granted: true, inc: "b#2" },
  {
    ...env,
    type: "append",
    seq: 0,
    prevIndex: 4,
    prevTerm: 2,
    entries: [
      { index: 5, term: 2, kind: "command", command: { op: "put", key: "k", value: 1 } },
      { index: 6, term: 3, kind: "noop" },
      {
        index: 7,
        term: 3,
        kind: "membership",
        membership: { voters: ["a", "b"], learners: ["c"] },
      },
      {
        index: 8,
        term: 3,
        kind: "membership",
        membership: { voters: ["a", "b"], learners: ["c"], bindings: { a: "a#1", b: "b#2" } },
      },
    ],
    commit: 4,
  },
  { ...env, type: "append", prevIndex: 0, prevTerm: 0, entries: [], commit: 0, seq: 0 },
  {
    ...env,
    type: "appendResp",
    success: false,
    index: 9,
    conflictTerm: 2,
    conflictIndex: 5,
    seq: 3,
  },
  { ...env, type: "heartbeat", commit: 12, context: 4 },
  { ...env, type: "heartbeatResp", context: 0 },
  {
    ...env,
    type: "snapshot",
    meta: { index: 10, term: 2, membership: { voters: ["a"], learners: [] } },
    offset: 4,
    size: 10,
    chunk: new Uint8Array([1, 2, 3, 4, 5, 6]),
  },
  { ...env, type: "snapshotResp", index: 10, offset: 8, done: false },
  { ...env, type: "timeoutNow" },
];

Deno.test("messages: every well-formed message type is accepted unchanged", () => {
  const seen = new Set<string>();
  for (const m of WELL_FORMED) {
    assert.deepEqual(parseMessage(structuredClone(m)), m, m.type);
    seen.add(m.type);
  }
  assert.equal(seen.size, 9, "all nine message types");
});

Deno.test("messages: unknown fields are dropped and the result is a copy", () => {
  const raw = { ...env, type: "heartbeatResp", context: 2, extra: "x", __proto__: null };
  const parsed = parseMessage(raw);
  assert.deepEqual(parsed, { ...env, type: "heartbeatResp", context: 2 });
  assert.notEqual(parsed, raw);
  const append = structuredClone(WELL_FORMED[2]) as Message & { entries: unknown[] };
  (append.entries[1] as Record<string, unknown>).command = "smuggled";
  const out = parseMessage(append);
  assert.ok(out.type === "append");
  assert.equal("command" in out.entries[1], false, "a noop carries no command");
});

function rejects(value: unknown, pattern: RegExp): void {
  assert.throws(() => parseMessage(value), (err: unknown) => {
    assert.ok(err instanceof ArgumentsError, `not an ArgumentsError: ${err}`);
    assert.match(err.message, pattern);
    return true;
  });
}

function withField(index: number, field: string, value: unknown): Record<string, unknown> {
  return { ...structuredClone(WELL_FORMED[index]), [field]: value };
}

Deno.test("messages: values that are not objects are rejected", () => {
  rejects(null, /message is not an object/);
  rejects("vote", /message is not an object/);
  rejects([1, 2], /message is not an object/);
  rejects(undefined, /message is not an object/);
});

Deno.test("messages: unknown or missing types are rejected", () => {
  rejects({ ...env, type: "gossip" }, /unknown type "gossip"/);
  rejects({ ...env }, /unknown type/);
  rejects({ ...env, type: 3 }, /unknown type 3/);
});

Deno.test("messages: wrong envelope fields are rejected", () => {
  rejects(withField(0, "from", ""), /from must be a non-empty string/);
  rejects(withField(0, "from", 7), /from must be a non-empty string/);
  rejects(withField(0, "to", null), /to must be a non-empty string/);
  rejects(withField(0, "term", -1), /term must be a non-negative integer/);
  rejects(withField(0, "term", 1.5), /term must be a non-negative integer/);
  rejects(withField(0, "term", "3"), /term must be a non-negative integer/);
  rejects(withField(0, "term", Number.NaN), /term must be a non-negative integer/);
  rejects(withField(0, "term", 2 ** 53), /term must be a non-negative integer/);
});

Deno.test("messages: wrong field types per message are rejected", () => {
  rejects(withField(0, "pre", "yes"), /pre must be a boolean/);
  rejects(withField(0, "transfer", undefined), /transfer must be a boolean/);
  rejects(withField(0, "lastIndex", -3), /lastIndex must be a non-negative integer/);
  rejects(withField(0, "lastTerm", 0.5), /lastTerm must be a non-negative integer/);
  rejects(withField(1, "granted", 1), /granted must be a boolean/);
  rejects(withField(2, "prevIndex", -1), /prevIndex must be a non-negative integer/);
  rejects(withField(2, "prevTerm", 2.5), /prevTerm must be a non-negative integer/);
  rejects(withField(2, "commit", -4), /commit must be a non-negative integer/);
  rejects(withField(2, "entries", "none"), /entries must be an array/);
  rejects(withField(4, "success", null), /success must be a boolean/);
  rejects(withField(4, "index", -9), /index must be a non-negative integer/);
  rejects(withField(4, "conflictTerm", 1.1), /conflictTerm must be a non-negative integer/);
  rejects(withField(4, "conflictIndex", -5), /conflictIndex must be a non-negative integer/);
  rejects(withField(5, "commit", -1), /commit must be a non-negative integer/);
  rejects(withField(5, "context", 0.5), /context must be a non-negative integer/);
  rejects(withField(6, "context", -1), /context must be a non-negative integer/);
  rejects(withField(7, "chunk", [1, 2]), /chunk must be bytes/);
  rejects(withField(7, "offset", -1), /offset must be a non-negative integer/);
  rejects(withField(7, "size", 1.5), /size must be a non-negative integer/);
  rejects(withField(7, "meta", null), /meta is not an object/);
  rejects(
    withField(7, "meta", { index: -1, term: 1, membership: { voters: [], learners: [] } }),
    /meta\.index must be a non-negative integer/,
  );
  rejects(
    withField(7, "meta", { index: 1, term: 1, membership: { voters: "a", learners: [] } }),
    /meta\.membership\.voters must be an array/,
  );
  rejects(
    withField(7, "meta", { index: 1, term: 1, membership: { voters: ["a"], learners: [""] } }),
    /meta\.membership\.learners\[0\] must be a non-empty string/,
  );
  rejects(withField(8, "done", "true"), /done must be a boolean/);
  rejects(withField(8, "offset", -8), /offset must be a non-negative integer/);
  rejects(withField(8, "index", 1e-3), /index must be a non-negative integer/);
});

Deno.test("messages: malformed entries are rejected", () => {
  const append = (entries: unknown[]) => ({
    ...env,
    type: "append",
    seq: 0,
    prevIndex: 4,
    prevTerm: 2,
    entries,
    commit: 0,
  });
  rejects(append([null]), /entries\[0\] is not an object/);
  rejects(append([{ index: 5, term: 2, kind: "weird" }]), /entries\[0\]\.kind is unknown/);
  rejects(
    append([{ index: 5, term: -2, kind: "noop" }]),
    /entries\[0\]\.term must be a non-negative integer/,
  );
  rejects(
    append([{ index: 5.5, term: 2, kind: "noop" }]),
    /entries\[0\]\.index must be a non-negative integer/,
  );
  rejects(
    append([{ index: 5, term: 2, kind: "membership", membership: { voters: ["a"] } }]),
    /entries\[0\]\.membership\.learners must be an array/,
  );
  rejects(
    append([{ index: 5, term: 2, kind: "membership" }]),
    /entries\[0\]\.membership is not an object/,
  );
});

Deno.test("messages: entries whose indexes do not follow prevIndex are rejected", () => {
  const append = (indexes: number[]) => ({
    ...env,
    type: "append",
    seq: 0,
    prevIndex: 4,
    prevTerm: 2,
    entries: indexes.map((index) => ({ index, term: 2, kind: "noop" })),
    commit: 0,
  });
  assert.equal((parseMessage(append([5, 6, 7])) as { entries: unknown[] }).entries.length, 3);
  rejects(append([6]), /entries\[0\]\.index must be 5/);
  rejects(append([4]), /entries\[0\]\.index must be 5/);
  rejects(append([5, 7]), /entries\[1\]\.index must be 6/);
  rejects(append([5, 6, 6]), /entries\[2\]\.index must be 7/);
});

Deno.test("messages: snapshot chunks that run past their size are rejected", () => {
  const snap = (offset: number, size: number, bytes: number) => ({
    ...env,
    type: "snapshot",
    meta: { index: 10, term: 2, membership: { voters: ["a"], learners: [] } },
    offset,
    size,
    chunk: new Uint8Array(bytes),
  });
  assert.equal(parseMessage(snap(6, 10, 4)).type, "snapshot", "ends exactly at the size");
  assert.equal(parseMessage(snap(10, 10, 0)).type, "snapshot", "an empty chunk at the end");
  assert.equal(parseMessage(snap(0, 0, 0)).type, "snapshot", "an empty snapshot");
  rejects(snap(7, 10, 4), /chunk runs past the snapshot's size/);
  rejects(snap(0, 3, 4), /chunk runs past the snapshot's size/);
  rejects(snap(11, 10, 0), /chunk runs past the snapshot's size/);
});

Deno.test("messages: a folder's incarnation and a membership's bindings are checked", () => {
  rejects(withField(1, "inc", ""), /inc must be a non-empty string/);
  rejects(withField(1, "inc", 7), /inc must be a non-empty string/);
  const meta = (bindings: unknown) => ({
    index: 1,
    term: 1,
    membership: { voters: ["a"], learners: ["c"], bindings },
  });
  rejects(withField(7, "meta", meta({ c: "c#1" })), /bindings names "c", not a voter/);
  rejects(withField(7, "meta", meta({ a: "" })), /bindings\["a"\] must be a non-empty string/);
  rejects(withField(7, "meta", meta(["a#1"])), /bindings is not an object/);
});

Deno.test("messages: a snapshot chunk's stream id is kept when it is a non-negative integer, else refused", () => {
  const at = WELL_FORMED.findIndex((m) => m.type === "snapshot");
  const parsed = parseMessage(withField(at, "stream", 3));
  assert.ok(parsed.type === "snapshot");
  assert.equal(parsed.stream, 3);
  for (const bad of ["3", -1, 1.5, null]) rejects(withField(at, "stream", bad), /stream/);
});
