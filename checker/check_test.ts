import assert from "node:assert/strict";
import { checkEvents, checkOperations, eventsToOperations } from "./check.ts";
import {
  casRegisterModel,
  kvModel,
  type LockInput,
  lockModel,
  registerModel,
  setModel,
} from "./models.ts";
import { runCheck } from "../cli/check_commands.ts";
import { guarded, main } from "../cli.ts";
import type { HistoryEvent, Model, NondeterministicModel, Operation } from "./types.ts";

type RegOp = Operation<{ op: "read" } | { op: "write"; value: unknown }, unknown>;

const w = (client: number, value: number, call: number, ret: number): RegOp => ({
  client,
  input: { op: "write", value },
  call,
  output: undefined,
  return: ret,
});
const r = (client: number, output: unknown, call: number, ret: number): RegOp => ({
  client,
  input: { op: "read" },
  call,
  output,
  return: ret,
});

// --- registers -------------------------------------------------------------------

Deno.test("register: a read concurrent with a write may see either value", () => {
  //  c0: |--- write 1 ---|
  //  c1:    |- read 0 -|      |- read 1 -|
  //  c2:       |- read 1 -|
  const history = [w(0, 1, 0, 10), r(1, 0, 2, 5), r(2, 1, 4, 8), r(1, 1, 12, 14)];
  const result = checkOperations(registerModel, history);
  assert.equal(result.verdict, "linearizable");
  assert.equal(result.partitions.length, 1);
  const order = result.partitions[0].linearization!;
  assert.deepEqual([...order].sort(), [0, 1, 2, 3]);
  // The linearization respects the reads: read 0 before the write, read 1 after.
  assert.ok(order.indexOf(1) < order.indexOf(0) && order.indexOf(0) < order.indexOf(2));
});

Deno.test("register: a stale read after a newer value was read is not linearizable", () => {
  //  c0: |--------- write 1 ---------|
  //  c1:   |- read 1 -|
  //  c2:                |- read 0 -|     (starts after c1's read of 1 ended)
  const history = [w(0, 1, 0, 20), r(1, 1, 2, 5), r(2, 0, 7, 9)];
  const result = checkOperations(registerModel, history);
  assert.equal(result.verdict, "not linearizable");
  const part = result.partitions[0];
  assert.equal(part.verdict, "not linearizable");
  assert.equal(part.linearization, undefined);
  assert.ok(part.firstIllegal !== undefined && part.firstIllegal >= 0);
  assert.equal(part.partial?.length, 3);
  // Without details there is still an operation that could not be placed, and no partials.
  const quick = checkOperations(registerModel, history, { details: false });
  assert.equal(quick.verdict, "not linearizable");
  assert.equal(quick.partitions[0].partial, undefined);
  assert.ok(quick.partitions[0].firstIllegal !== undefined);
});

Deno.test("register: operations that only touch (return == call) count as concurrent", () => {
  // The read ends exactly when the write starts: it may be ordered after it.
  assert.equal(
    checkOperations(registerModel, [r(1, 1, 0, 5), w(0, 1, 5, 9)]).verdict,
    "linearizable",
  );
  assert.equal(
    checkOperations(registerModel, [r(1, 1, 0, 4), w(0, 1, 5, 9)]).verdict,
    "not linearizable",
  );
});

Deno.test("register: an unknown write may take effect at any time after its call, or never", () => {
  const lost: RegOp = { ...w(0, 1, 0, 0), unknown: true, return: Infinity };
  assert.equal(checkOperations(registerModel, [lost, r(1, 0, 5, 6)]).verdict, "linearizable");
  assert.equal(checkOperations(registerModel, [lost, r(1, 1, 5, 6)]).verdict, "linearizable");
  assert.equal(
    checkOperations(registerModel, [lost, r(1, 1, 5, 6), r(1, 0, 7, 8)]).verdict,
    "not linearizable",
  );
  // But not before its call.
  assert.equal(
    checkOperations(registerModel, [r(1, 1, 0, 1), { ...lost, call: 3 }]).verdict,
    "not linearizable",
  );
});

Deno.test("cas register: a cas that failed although the value matched is not linearizable", () => {
  const cas = (output: unknown, call: number, ret: number) => ({
    client: 1,
    input: { op: "cas" as const, from: 1, to: 2 },
    call,
    output,
    return: ret,
  });
  const write = {
    client: 0,
    input: { op: "write" as const, value: 1 },
    call: 0,
    output: undefined,
    return: 1,
  };
  assert.equal(checkOperations(casRegisterModel, [write, cas(true, 2, 3)]).verdict, "linearizable");
  assert.equal(
    checkOperations(casRegisterModel, [write, cas(false, 2, 3)]).verdict,
    "not linearizable",
  );
  // Concurrent with the write, the failed cas may come first (the value is still null).
  assert.equal(
    checkOperations(casRegisterModel, [write, cas(false, 0, 3)]).verdict,
    "linearizable",
  );
});

Deno.test("nondeterministic register: a write that may be lost explains an old read", () => {
  type In = { op: "read" } | { op: "write"; value: number };
  const lossy: NondeterministicModel<number, In, unknown> = {
    nondeterministic: true,
    init: () => [0],
    step: (s, input, output) =>
      input.op === "write" ? [s, input.value] : output === undefined || output === s ? [s] : [],
  };
  const history: Operation<In, unknown>[] = [
    { client: 0, input: { op: "write", value: 1 }, call: 0, output: undefined, return: 1 },
    { client: 1, input: { op: "read" }, call: 2, output: 0, return: 3 },
  ];
  assert.equal(checkOperations(lossy, history).verdict, "linearizable");
  assert.equal(checkOperations(registerModel, history as RegOp[]).verdict, "not linearizable");
  // Once a read has seen 1, the write has happened: a later read of 0 is impossible.
  const seen: Operation<In, unknown>[] = [
    ...history.slice(0, 1),
    { client: 1, input: { op: "read" }, call: 2, output: 1, return: 3 },
    { client: 1, input: { op: "read" }, call: 4, output: 0, return: 5 },
  ];
  assert.equal(checkOperations(lossy, seen).verdict, "not linearizable");
  // A value never written cannot be read.
  const never: Operation<In, unknown>[] = [
    { client: 1, input: { op: "read" }, call: 0, output: 7, return: 1 },
  ];
  assert.equal(checkOperations(lossy, never).verdict, "not linearizable");
});

Deno.test("set: reads see the elements in any order; a lost element is not linearizable", () => {
  type In = { op: "add"; value: string } | { op: "remove"; value: string } | { op: "read" };
  const op = (client: number, input: In, output: unknown, call: number, ret: number) => ({
    client,
    input,
    output,
    call,
    return: ret,
  });
  const adds = [
    op(0, { op: "add", value: "a" }, undefined, 0, 10),
    op(1, { op: "add", value: "b" }, undefined, 0, 10),
  ];
  const ok = [...adds, op(2, { op: "read" }, ["b", "a"], 11, 12)];
  assert.equal(checkOperations(setModel, ok).verdict, "linearizable");
  const concurrent = [...adds, op(2, { op: "read" }, ["b"], 5, 12)];
  assert.equal(checkOperations(setModel, concurrent).verdict, "linearizable");
  const lost = [...adds, op(2, { op: "read" }, ["a"], 11, 12)];
  assert.equal(checkOperations(setModel, lost).verdict, "not linearizable");
  const removed = [
    ...adds,
    op(0, { op: "remove", value: "a" }, undefined, 11, 12),
    op(2, { op: "read" }, ["b"], 13, 14),
  ];
  assert.equal(checkOperations(setModel, removed).verdict, "linearizable");
});

// --- locks ---------------------------------------------------------------------

type LockOp = Operation<LockInput, boolean | undefined>;
const lk = (
  client: number,
  input: LockInput,
  output: boolean | undefined,
  call: number,
  ret: number,
): LockOp => ({ client, input, output, call, return: ret });
const lock = (name: string): LockInput => ({ op: "lock", name });
const unlock = (name: string): LockInput => ({ op: "unlock", name });

Deno.test("lock: two successful locks of one name need an unlock between them", () => {
  const twice = [lk(0, lock("a"), true, 0, 1), lk(1, lock("a"), true, 2, 3)];
  const result = checkOperations(lockModel, twice);
  assert.equal(result.verdict, "not linearizable");
  assert.equal(result.partitions[0].operations.length, 2);
  const between = [twice[0], lk(0, unlock("a"), true, 1.5, 1.8), twice[1]];
  assert.equal(checkOperations(lockModel, between).verdict, "linearizable");
  // An unlock concurrent with both explains them too; one that failed does not.
  const concurrent = [twice[0], lk(2, unlock("a"), true, 0.5, 2.5), twice[1]];
  assert.equal(checkOperations(lockModel, concurrent).verdict, "linearizable");
  const failed = [twice[0], lk(2, unlock("a"), false, 0.5, 2.5), twice[1]];
  assert.equal(checkOperations(lockModel, failed).verdict, "not linearizable");
});

Deno.test("lock: answers must match the state: no false lock of a free lock, no true unlock of one", () => {
  assert.equal(
    checkOperations(lockModel, [lk(0, lock("a"), false, 0, 1)]).verdict,
    "not linearizable",
  );
  assert.equal(
    checkOperations(lockModel, [lk(0, unlock("a"), true, 0, 1)]).verdict,
    "not linearizable",
  );
  const ok = [
    lk(0, unlock("a"), false, 0, 1),
    lk(0, lock("a"), true, 2, 3),
    lk(1, lock("a"), false, 4, 5),
    lk(1, unlock("a"), true, 6, 7),
    lk(0, unlock("a"), false, 8, 9),
  ];
  assert.equal(checkOperations(lockModel, ok).verdict, "linearizable");
});

Deno.test("lock: concurrent locks of one name, exactly one may win", () => {
  const oneWins = [lk(0, lock("a"), true, 0, 10), lk(1, lock("a"), false, 0, 10)];
  assert.equal(checkOperations(lockModel, oneWins).verdict, "linearizable");
  const bothWin = [lk(0, lock("a"), true, 0, 10), lk(1, lock("a"), true, 0, 10)];
  assert.equal(checkOperations(lockModel, bothWin).verdict, "not linearizable");
});

Deno.test("lock: an unknown lock may have taken the lock; names are checked apart", () => {
  const lost: LockOp = { ...lk(0, lock("a"), undefined, 0, 0), unknown: true };
  // The lost lock took effect: a later lock fails, an unlock succeeds.
  assert.equal(
    checkOperations(lockModel, [lost, lk(1, lock("a"), false, 5, 6)]).verdict,
    "linearizable",
  );
  assert.equal(
    checkOperations(lockModel, [lost, lk(1, unlock("a"), true, 5, 6)]).verdict,
    "linearizable",
  );
  // Or it never did (or not yet).
  assert.equal(
    checkOperations(lockModel, [lost, lk(1, lock("a"), true, 5, 6)]).verdict,
    "linearizable",
  );
  // Other names are another partition, untouched by "a".
  const names = [
    lk(0, lock("a"), true, 0, 1),
    lk(1, lock("b"), true, 2, 3),
    lk(2, lock("b"), true, 4, 5),
  ];
  const result = checkOperations(lockModel, names);
  assert.equal(result.verdict, "not linearizable");
  assert.equal(result.partitions.length, 2);
  assert.deepEqual(
    result.partitions.map((p) => p.verdict).sort(),
    ["linearizable", "not linearizable"].sort(),
  );
});

// --- budgets and degenerate histories ----------------------------------------------

/**
 * 40 writes that never return, then a read of a value nobody wrote: not
 * linearizable, but the search has to try every subset of the writes before
 * the read to find out — far more than any test's time budget.
 */
function hardHistory(): RegOp[] {
  const writes = Array.from({ length: 40 }, (_, i) => ({
    ...w(i, i + 1, i, i),
    unknown: true,
    return: Infinity,
  }));
  return [...writes, r(99, 999, 40, 41)];
}

Deno.test("a time budget that runs out gives the verdict unknown, promptly", () => {
  const t0 = performance.now();
  const result = checkOperations(registerModel, hardHistory(), { timeoutMs: 50 });
  const took = performance.now() - t0;
  assert.equal(result.verdict, "unknown");
  assert.equal(result.partitions[0].verdict, "unknown");
  assert.ok(result.elapsedMs >= 50, `elapsedMs ${result.elapsedMs}`);
  assert.ok(took < 2000, `a 50 ms budget took ${took} ms`);
  // The same with a step budget.
  assert.equal(
    checkOperations(registerModel, hardHistory(), { maxSteps: 10_000 }).verdict,
    "unknown",
  );
});

Deno.test("a memory budget (maxStates) that runs out gives unknown, with the reason and the furthest point", () => {
  const result = checkOperations(registerModel, hardHistory(), { maxStates: 5_000 });
  assert.equal(result.verdict, "unknown");
  assert.equal(result.gaveUp, "states");
  assert.ok(result.states! >= 5_000 && result.states! < 5_000 + 2_048, `states ${result.states}`);
  // The partial linearizations so far: the longest places the 40 writes, and never the read.
  const partial = result.partitions[0].partial!;
  assert.equal(Math.max(...partial.map((seq) => seq.length)), 40);
  assert.ok(partial.every((seq) => !seq.includes(40)));
  // Time and steps are reported as such.
  assert.equal(checkOperations(registerModel, hardHistory(), { timeoutMs: 20 }).gaveUp, "time");
  assert.equal(checkOperations(registerModel, hardHistory(), { maxSteps: 500 }).gaveUp, "steps");
  // The budget is capped below V8's 2^24 map entries whatever is asked.
  assert.equal(checkOperations(registerModel, [], { maxStates: 2 ** 30 }).verdict, "linearizable");
  assert.throws(
    () => checkOperations(registerModel, [], { maxStates: 0 }),
    /maxStates must be at least 1/,
  );
});

Deno.test("the empty history is linearizable, with one empty partition or none", () => {
  const plain = checkOperations(registerModel, []);
  assert.equal(plain.verdict, "linearizable");
  assert.equal(plain.partitions.length, 1);
  assert.deepEqual(plain.partitions[0].linearization, []);
  assert.ok(plain.elapsedMs >= 0);
  // kvModel partitions by key: no operations, no partitions.
  const kv = checkOperations(kvModel, []);
  assert.equal(kv.verdict, "linearizable");
  assert.deepEqual(kv.partitions, []);
  assert.equal(checkEvents(registerModel, []).verdict, "linearizable");
});

Deno.test("a model that splits a history into zero partitions: linearizable, nothing to check", () => {
  const nothing: Model<number, unknown, unknown> = {
    init: () => 0,
    step: () => undefined, // would reject everything, but is never asked
    partition: () => [],
  };
  const result = checkOperations(nothing, [r(0, 5, 0, 1)]);
  assert.equal(result.verdict, "linearizable");
  assert.deepEqual(result.partitions, []);
});

Deno.test("partitions: the first illegal one decides while a hard one is still undecided", () => {
  type KvOp = Operation<{ op: "get" | "put"; key: string; value?: string }, unknown>;
  // Key "hard": the hard history of the budget test, as puts and a get; it comes first.
  const hard: KvOp[] = hardHistory().map((op) => ({
    ...op,
    input: op.input.op === "write"
      ? { op: "put", key: "hard", value: String(op.input.value) }
      : { op: "get", key: "hard" },
    output: op.input.op === "write" ? undefined : "999",
  }));
  const easy: KvOp[] = [
    { client: 100, input: { op: "put", key: "a", value: "1" }, call: 0, output: "", return: 1 },
    { client: 101, input: { op: "get", key: "a" }, call: 2, output: "2", return: 3 }, // never written
  ];
  const t0 = performance.now();
  const result = checkOperations(kvModel, [...hard, ...easy], { timeoutMs: 20_000 });
  const took = performance.now() - t0;
  assert.equal(result.verdict, "not linearizable");
  assert.deepEqual(result.partitions.map((p) => p.verdict), ["unknown", "not linearizable"]);
  assert.ok(took < 5000, `took ${took} ms: the partitions were not interleaved`);
  assert.equal(result.partitions[1].firstIllegal, 1);
});

// --- events -------------------------------------------------------------------------------

Deno.test("eventsToOperations: times are positions; an open call has an unknown outcome", () => {
  const events: HistoryEvent<string, string>[] = [
    { kind: "call", id: 7, client: "a", value: "x" },
    { kind: "call", id: 3, client: "b", value: "y" },
    { kind: "return", id: 7, client: "a", value: "X" },
  ];
  assert.deepEqual(eventsToOperations(events), [
    { client: "a", input: "x", call: 0, output: "X", return: 2 },
    { client: "b", input: "y", call: 1, output: undefined, return: Infinity, unknown: true },
  ]);
  assert.deepEqual(eventsToOperations([]), []);
});

Deno.test("eventsToOperations: an id may be reused once returned, not while open", () => {
  const ops = eventsToOperations([
    { kind: "call", id: 0, client: 0, value: 1 },
    { kind: "return", id: 0, client: 0, value: 2 },
    { kind: "call", id: 0, client: 0, value: 3 },
    { kind: "return", id: 0, client: 0, value: 4 },
  ]);
  assert.deepEqual(ops.map((o) => [o.input, o.output, o.call, o.return]), [[1, 2, 0, 1], [
    3,
    4,
    2,
    3,
  ]]);
  assert.throws(
    () =>
      eventsToOperations([
        { kind: "call", id: 0, client: 0, value: 1 },
        { kind: "call", id: 0, client: 1, value: 1 },
      ]),
    /event 1: call id 0 is already open/,
  );
  assert.throws(
    () => eventsToOperations([{ kind: "return", id: 5, client: 0, value: 1 }]),
    /event 0: return id 5 has no open call/,
  );
  assert.throws(
    () =>
      eventsToOperations([
        { kind: "call", id: 0, client: 0, value: 1 },
        { kind: "return", id: 0, client: 0, value: 2 },
        { kind: "return", id: 0, client: 0, value: 2 },
      ]),
    /event 2: return id 0 has no open call/,
  );
});

Deno.test("checkEvents: an open write explains a later read", () => {
  const result = checkEvents(registerModel, [
    { kind: "call", id: 0, client: 0, value: { op: "write", value: 1 } },
    { kind: "call", id: 1, client: 1, value: { op: "read" } },
    { kind: "return", id: 1, client: 1, value: 1 },
  ]);
  assert.equal(result.verdict, "linearizable");
});

// --- the command line ------------------------------------------------------------------------

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs `distkit check` (through `run`) with console output captured. */
async function capture(run: () => Promise<number>): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await run();
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const toJsonl = (ops: Operation[], header?: object) =>
  [...(header ? [header] : []), ...ops].map((o) => JSON.stringify(o)).join("\n") + "\n";

async function withFiles(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-check-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("distkit check: exit 0 for a linearizable history, with the verdict, time and partitions", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/ok.jsonl`;
    await Deno.writeTextFile(file, toJsonl([w(0, 1, 0, 10), r(1, 0, 2, 5)], { model: "register" }));
    const run = await capture(() => runCheck([file]));
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /ok\.jsonl: linearizable/);
    assert.match(run.out, /model: +register \(suggested by the jsonl file\)/);
    assert.match(run.out, /operations: 2/);
    assert.match(run.out, /partitions: 1/);
    assert.match(run.out, /time: +[\d.]+ (ms|s)/);
    assert.equal(run.err, "");
  });
});

Deno.test("distkit check: exit 1 for a history that is not, naming the failed operation", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/bad.txt`;
    await Deno.writeTextFile(
      file,
      [
        '{:process 0, :type :invoke, :f :put, :key "k", :value "1"}',
        '{:process 0, :type :ok, :f :put, :key "k", :value "1"}',
        '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
        '{:process 1, :type :ok, :f :get, :key "k", :value "2"}',
        '{:process 1, :type :invoke, :f :get, :key "j", :value nil}',
        '{:process 1, :type :ok, :f :get, :key "j", :value nil}',
      ].join("\n"),
    );
    const run = await capture(() => main(["check", file]));
    assert.equal(run.code, 1, run.err);
    assert.match(run.out, /bad\.txt: not linearizable/);
    assert.match(run.out, /model: +kv/);
    assert.match(run.out, /partitions: 2 \(1 not linearizable, 1 unknown\)/);
    assert.match(run.out, /failed: +key "k" \(2 operations\)/);
    // One word for the partition never decided, with the reason.
    assert.match(
      run.out,
      /unknown: +1 of the 2 partitions: not checked: the search stops at the first partition that is not linearizable/,
    );
    assert.match(run.out, /decided by: inference from the values read \(t = line number\)/);
    assert.match(
      run.out,
      /why: +operation 2 \(client 1, get → "2", t=3–4\) read a value that no sequence of the writes produces/,
    );
    // The general search names the operation it could not place.
    const searched = await capture(() => main(["check", "--search-only", file]));
    assert.equal(searched.code, 1, searched.err);
    assert.match(searched.out, /operation 2: client 1, get\("k"\) → "2" \(lines 3–4\)/);
  });
});

Deno.test("distkit check: exit 3 (no answer, never a verdict's code) when the time budget runs out", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/hard.jsonl`;
    await Deno.writeTextFile(file, toJsonl(hardHistory()));
    const run = await capture(() => runCheck(["--timeout", "50", "--model", "register", file]));
    assert.equal(run.code, 3, run.err);
    assert.match(run.out, /hard\.jsonl: unknown/);
    assert.match(run.out, /model: +register \(--model\)/);
    assert.match(run.out, /gave up: +after the 50 ms time budget/);
  });
});

Deno.test("distkit check: exit 2 for a malformed file, with the line and what was expected", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/broken.log`;
    await Deno.writeTextFile(
      file,
      "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\tmaybe\n",
    );
    const run = await capture(() => runCheck([file]));
    assert.equal(run.code, 2);
    assert.equal(run.out, "");
    assert.match(
      run.err,
      /broken\.log:2: malformed history: expected nil or an integer .*found "maybe"/,
    );
    const forced = await capture(() => runCheck(["--format", "edn", file]));
    assert.equal(forced.code, 2);
    assert.match(forced.err, /broken\.log:1: malformed edn history: expected an EDN map/);
  });
});

Deno.test("distkit check: exit 2 for a missing file, bad options or a model that does not fit", async () => {
  await withFiles(async (dir) => {
    const missing = await capture(() => runCheck([`${dir}/nope.jsonl`]));
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read .*nope\.jsonl/);
    const noFile = await capture(() => runCheck([]));
    assert.equal(noFile.code, 2);
    assert.match(noFile.err, /expected a history FILE/);
    const badModel = await capture(() => runCheck(["--model", "queue", "x"]));
    assert.equal(badModel.code, 2);
    assert.match(
      badModel.err,
      /--model must be one of kv, kv-map, kv-service, register, cas-register, set/,
    );
    const badTimeout = await capture(() => runCheck(["--timeout", "soon", "x"]));
    assert.equal(badTimeout.code, 2);
    for (const states of ["0", "1.5", "lots", String(2 ** 24)]) {
      const badStates = await capture(() => runCheck(["--max-states", states, "x"]));
      assert.equal(badStates.code, 2);
      assert.match(badStates.err, /--max-states must be a whole number from 1 to 8388608/);
    }
    const badFlag = await capture(() => runCheck(["--colour", "x"]));
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.err, /usage: distkit check/);

    const file = `${dir}/reg.jsonl`;
    await Deno.writeTextFile(file, toJsonl([r(0, 0, 0, 1)]));
    const misfit = await capture(() => runCheck(["--model", "kv", file]));
    assert.equal(misfit.code, 2);
    assert.match(misfit.err, /operation 1 .* is not an operation of the kv model/);
    const unguessable = `${dir}/odd.jsonl`;
    await Deno.writeTextFile(unguessable, toJsonl([{ ...r(0, 0, 0, 1), input: "read" }]));
    const noModel = await capture(() => runCheck([unguessable]));
    assert.equal(noModel.code, 2);
    assert.match(noModel.err, /pass --model/);
  });
});

Deno.test("distkit check: exit 3 with the reason when the memory budget (--max-states) runs out", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/hard.jsonl`;
    await Deno.writeTextFile(file, toJsonl(hardHistory()));
    const run = await capture(() =>
      main(["check", "--max-states", "3000", "--model", "register", file])
    );
    assert.equal(run.code, 3, run.err);
    assert.match(run.out, /hard\.jsonl: unknown/);
    assert.match(
      run.out,
      /gave up: +when the search held \d+ states, its memory budget \(--max-states 3000\)/,
    );
    // The register model has no keys: partitions go by their 1-based number.
    assert.match(run.out, /furthest: +partition 1: 40 of its 41 operations linearized so far/);
  });
});

Deno.test("distkit: an internal error (here V8's map limit, injected) exits 3 with a bug report, never a verdict", async () => {
  await withFiles(async (dir) => {
    // 40 appends that never return, then a read of a value nobody wrote: the search interns a
    // new string state for every subset of appends it tries.
    const file = `${dir}/hard.jsonl`;
    const appends = Array.from({ length: 40 }, (_, i) => ({
      client: i,
      input: { op: "append", key: "k", value: `${i};` },
      call: i,
      unknown: true,
    }));
    const read = { client: 99, input: { op: "get", key: "k" }, call: 40, output: "z", return: 41 };
    await Deno.writeTextFile(file, toJsonl([...appends, read] as unknown as Operation[]));
    // The failure issue 21 reported: the search's state map overflowing, here at 1,000 entries.
    const set = Map.prototype.set;
    Map.prototype.set = function (this: Map<unknown, unknown>, k: unknown, v: unknown) {
      if (this.size >= 1000) throw new RangeError("Map maximum size exceeded");
      return set.call(this, k, v);
    };
    let run;
    try {
      run = await capture(() => main(["check", file, "--model", "kv", "--search-only"]));
    } finally {
      Map.prototype.set = set;
    }
    assert.equal(run.code, 3);
    assert.match(
      run.err,
      /^distkit check: internal error: RangeError: Map maximum size exceeded\n/,
    );
    assert.match(run.err, /This is a bug in distkit, not an answer/);
    assert.match(run.err, /Please report it/);
    assert.doesNotMatch(run.out, /not linearizable/);
  });
  // Any command: a failure escaping it is the same exit 3.
  const crash = await capture(() => guarded("demo", () => Promise.reject(new TypeError("boom"))));
  assert.equal(crash.code, 3);
  assert.match(crash.err, /^distkit demo: internal error: TypeError: boom/);
});

Deno.test("distkit check as a process: the exit code of an unknown is 3, of a usage error 2", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/hard.jsonl`;
    await Deno.writeTextFile(file, toJsonl(hardHistory()));
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", `--allow-read=${dir}`, cli, "check", ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, out: new TextDecoder().decode(out.stdout) };
    };
    const budget = await run("--max-states", "2000", "--model", "register", file);
    assert.equal(budget.code, 3, budget.out);
    assert.match(budget.out, /unknown/);
    assert.equal((await run("--max-states", "none", file)).code, 2);
  });
});

Deno.test("distkit check: --help at every level", async () => {
  for (const args of [["check", "--help"], ["check", "-h"], ["check", "file.jsonl", "--help"]]) {
    const run = await capture(() => main(args));
    assert.equal(run.code, 0);
    assert.match(run.out, /^usage: distkit check /);
    assert.match(
      run.out,
      /exit codes:\n +0 +linearizable\n +1 +not linearizable\n +2 +usage error/,
    );
    assert.match(run.out, /\n +3 +no answer: the time or memory budget ran out first/);
  }
  const top = await capture(() => main(["--help"]));
  assert.match(top.out, /\n {2}check +check history files for linearizability/);
});

Deno.test("distkit check: --html writes the report", async () => {
  await withFiles(async (dir) => {
    const file = `${dir}/bad.jsonl`;
    await Deno.writeTextFile(file, toJsonl([w(0, 1, 0, 20), r(1, 1, 2, 5), r(2, 0, 7, 9)]));
    const html = `${dir}/report.html`;
    const run = await capture(() => runCheck(["--html", html, file]));
    assert.equal(run.code, 1, run.err);
    assert.match(run.out, /report: +.*report\.html/);
    const page = await Deno.readTextFile(html);
    assert.match(page, /^<!DOCTYPE html>/i);
    assert.match(page, /not linearizable/);
  });
});

Deno.test("check: the time budget holds even when every step is slow", () => {
  // Every step busy-waits 3 ms, and the search needs many steps (only an
  // increasing order of 40 concurrent writes fits, and the calls come in
  // decreasing order). A 1,024-step slice would run 1,024 steps past the
  // 60 ms budget; the checker must stop within one starting slice (16 steps)
  // of it however slow the machine, so the steps that end after the budget
  // are counted, not the milliseconds (a busy machine stretches each step).
  let budgetEnds = Infinity;
  let late = 0;
  const slow: Model<number, number, number> = {
    init: () => 0,
    step: (state, input) => {
      const until = performance.now() + 3;
      while (performance.now() < until) { /* a slow model */ }
      if (performance.now() > budgetEnds) late++;
      return input > state ? input : undefined;
    },
  };
  const history: Operation<number, number>[] = Array.from({ length: 40 }, (_, i) => ({
    client: i,
    input: 40 - i,
    call: i,
    output: 0,
    return: 100,
  }));
  budgetEnds = performance.now() + 60;
  const result = checkOperations(slow, history, { timeoutMs: 60, details: false });
  assert.equal(result.verdict, "unknown");
  assert.equal(result.gaveUp, "time"); // the budget, not the search, ended it
  assert.ok(late <= 16, `${late} steps ran past the 60 ms budget`);
});
