import assert from "node:assert/strict";
import { BadArgumentsError } from "../net/errors.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { VirtualClock } from "../net/clock.ts";
import { type Assignment, Coordinator } from "./coordinator.ts";

async function job(
  files = 3,
  options: { timeoutMs?: number; nReduce?: number; holdMs?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "distkit-coord-" });
  const inputs: string[] = [];
  for (let i = 0; i < files; i++) {
    inputs.push(`${dir}/in-${i}.txt`);
    await Deno.writeTextFile(inputs[i], `file ${i}\n`);
  }
  const clock = new VirtualClock();
  const coordinator = await Coordinator.create({
    files: inputs,
    nReduce: options.nReduce ?? 2,
    dir,
    taskTimeoutMs: options.timeoutMs ?? 10_000,
    // Answered at once unless a test is about holding.
    holdMs: options.holdMs ?? 0,
    clock,
  });
  const server = new RpcServer();
  server.addService("MR", coordinator.methods());
  const call = (method: string, args: unknown) => server.dispatch(`MR.${method}`, args);
  const task = async (worker = "w") => await call("Task", { worker }) as Assignment;
  const done = (a: Assignment) => {
    if (a.kind !== "map" && a.kind !== "reduce") throw new Error(`not a task: ${a.kind}`);
    const id = a.kind === "map" ? a.task.id : a.r;
    return call("Done", { worker: "w", kind: a.kind, id, attempt: a.attempt });
  };
  return { dir, clock, coordinator, call, task, done };
}

Deno.test("mr coordinator: maps first, then reduces, then exit; each task once", async () => {
  const j = await job(3, { nReduce: 2 });
  const maps = [await j.task(), await j.task(), await j.task()];
  assert.deepEqual(maps.map((a) => a.kind === "map" && a.task.id), [0, 1, 2]);
  assert.equal((await j.task()).kind, "wait", "no reduce before the maps are done");
  for (const a of maps) await j.done(a);
  const reduces = [await j.task(), await j.task()];
  assert.deepEqual(reduces.map((a) => a.kind === "reduce" && a.r), [0, 1]);
  assert.equal((await j.task()).kind, "wait");
  assert.equal(j.coordinator.progress().phase, "reduce");
  for (const a of reduces) await j.done(a);
  await j.coordinator.finished;
  assert.deepEqual(await j.task(), { kind: "exit" });
  assert.equal(j.coordinator.progress().failed, 0);
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: a silent task is re-issued after the timeout, not before", async () => {
  const j = await job(1, { timeoutMs: 10_000 });
  const first = await j.task("slow");
  await j.clock.advance(9_999);
  assert.equal((await j.task("other")).kind, "wait", "not re-issued before the timeout");
  await j.clock.advance(1);
  const again = await j.task("other");
  assert.ok(again.kind === "map" && first.kind === "map");
  assert.equal(again.task.id, first.task.id);
  assert.equal(again.attempt, 2);
  // The slow worker's late failure report does not undo the new attempt.
  await j.call("Failed", { worker: "slow", kind: "map", id: 0, attempt: 1, error: "late" });
  assert.equal(j.coordinator.progress().running, 1);
  // Either completion counts once.
  await j.done(first);
  await j.done(again);
  assert.equal(j.coordinator.progress().phase, "reduce");
  assert.equal(j.coordinator.progress().failed, 1, "one attempt timed out");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: a reported failure re-issues at once; 3 fail the job with the reason", async () => {
  const j = await job(1);
  for (let attempt = 1; attempt <= 3; attempt++) {
    const a = await j.task();
    assert.ok(a.kind === "map");
    assert.equal(a.attempt, attempt);
    await j.call("Failed", { worker: "w", kind: "map", id: 0, attempt, error: `boom ${attempt}` });
  }
  await assert.rejects(j.coordinator.finished, /map task 0 failed 3 times; last: boom 3/);
  assert.deepEqual(await j.task(), {
    kind: "exit",
    failed: "map task 0 failed 3 times; last: boom 3",
  });
  assert.equal(j.coordinator.progress().phase, "failed");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: malformed requests get BadArgumentsError and change nothing", async () => {
  const j = await job(1);
  const server = new RpcServer();
  server.addService("MR", j.coordinator.methods());
  for (
    const [method, args] of [
      ["Task", {}],
      ["Task", "garbage"],
      ["Done", { kind: "map" }],
      ["Done", { kind: "shuffle", id: 0, attempt: 1 }],
      ["Done", { kind: "map", id: 99, attempt: 1 }],
      ["Failed", { kind: "map", id: 0, attempt: 1 }],
      ["Next", { worker: "w" }],
      ["Next", { worker: "w", done: "map 0" }],
      ["Next", { worker: "w", done: { kind: "map", id: 99, attempt: 1 } }],
      ["Next", { done: { kind: "map", id: 0, attempt: 1 } }],
    ] as const
  ) {
    await assert.rejects(
      Promise.resolve().then(() => server.dispatch(`MR.${method}`, args)),
      (err: Error) => err.name === "ArgumentsError" || err instanceof BadArgumentsError,
      `${method} ${JSON.stringify(args)}`,
    );
  }
  assert.equal((await j.task()).kind, "map", "the job goes on");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: Next reports a task done and assigns the next in one call", async () => {
  const j = await job(2, { nReduce: 1 });
  const first = await j.task();
  assert.ok(first.kind === "map");
  const second = await j.call("Next", {
    worker: "w",
    done: { kind: "map", id: first.task.id, attempt: first.attempt },
  }) as Assignment;
  assert.ok(second.kind === "map" && second.task.id === 1);
  assert.equal(j.coordinator.progress().done, 1, "the first map is done");
  const reduce = await j.call("Next", {
    worker: "w",
    done: { kind: "map", id: 1, attempt: second.attempt },
  }) as Assignment;
  assert.ok(reduce.kind === "reduce" && reduce.r === 0);
  // The last one hears that the job is over.
  const exit = await j.call("Next", { worker: "w", done: { kind: "reduce", id: 0, attempt: 1 } });
  assert.deepEqual(exit, { kind: "exit" });
  await j.coordinator.finished;
  assert.equal(j.coordinator.untoldWorkers, 0);
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: no inputs, a bad nReduce or a missing file are refused up front", async () => {
  await assert.rejects(Coordinator.create({ files: [] }), RangeError);
  await assert.rejects(Coordinator.create({ files: ["x"], nReduce: 0 }), RangeError);
  await assert.rejects(
    Coordinator.create({ files: ["/nonexistent/input.txt"] }),
    /input \/nonexistent\/input.txt/,
  );
});

Deno.test("mr coordinator: a task that times out maxTimeouts times ends the job, naming it", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "x\n");
  const clock = new VirtualClock();
  const c = await Coordinator.create({
    files: [`${dir}/in.txt`],
    dir,
    taskTimeoutMs: 1000,
    maxTimeouts: 3,
    holdMs: 0,
    clock,
  });
  const server = new RpcServer();
  server.addService("MR", c.methods());
  const task = async () => await server.dispatch("MR.Task", { worker: "w" }) as Assignment;
  assert.equal((await task()).kind, "map");
  for (let k = 1; k < 3; k++) {
    await clock.advance(1000);
    const again = await task();
    assert.ok(again.kind === "map" && again.attempt === k + 1);
  }
  await clock.advance(1000);
  const last = await task();
  assert.deepEqual(last, {
    kind: "exit",
    failed: "map task 0 timed out 3 times (its workers crashed or stalled past 1000 ms)",
  });
  await assert.rejects(c.finished, /timed out 3 times/);
  assert.equal(c.untoldWorkers, 0, "the asking worker was told");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr coordinator: a request with nothing to give is held until something is", async () => {
  const j = await job(2, { nReduce: 1, holdMs: 1000, timeoutMs: 5000 });
  const [m0, m1] = [await j.task(), await j.task()];
  let answered: Assignment | undefined;
  const held = j.task("idle").then((a) => (answered = a));
  await j.clock.advance(100);
  assert.equal(answered, undefined, "held while nothing is free");
  await j.done(m0);
  await j.clock.advance(0);
  assert.equal(answered, undefined, "still nothing: the reduce waits for map 1");
  await j.done(m1);
  await held;
  assert.equal(answered!.kind, "reduce", "answered as the map phase ended");
  assert.equal(j.clock.now(), 100, "at once, not at the next poll");
  // Nothing comes within the hold: "wait", with no pause, after exactly holdMs.
  const start = j.clock.now();
  const waited = j.task("idle");
  await j.clock.advance(1000);
  assert.deepEqual(await waited, { kind: "wait", ms: 0 });
  assert.equal(j.clock.now() - start, 1000);
  // A task that times out (the reduce, given at 100) goes to a held request when it does.
  await j.clock.advance(4500 - j.clock.now());
  const slow = j.task("again");
  await j.clock.advance(600);
  const re = await slow;
  assert.equal(j.clock.now(), 5100);
  assert.ok(re.kind === "reduce" && re.attempt === 2, `re-issued: ${JSON.stringify(re)}`);
  // The job's end answers held requests with exit.
  const last = j.task("idle");
  await j.done(re);
  assert.deepEqual(await last, { kind: "exit" });
  assert.equal(j.coordinator.untoldWorkers, 2, "told: idle; not yet: w and again");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: a failure reported twice counts once", async () => {
  const j = await job(1);
  const a = await j.task();
  assert.ok(a.kind === "map");
  const failed = { worker: "w", kind: "map", id: 0, attempt: a.attempt, error: "once" };
  await j.call("Failed", failed);
  await j.call("Failed", failed); // the retry of a call whose reply was lost
  assert.equal(j.coordinator.progress().failed, 1);
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: bad limits are refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "x\n");
  const files = [`${dir}/in.txt`];
  await assert.rejects(Coordinator.create({ files, taskTimeoutMs: 0 }), /taskTimeoutMs/);
  await assert.rejects(Coordinator.create({ files, maxFailures: 0 }), /maxFailures/);
  await assert.rejects(Coordinator.create({ files, maxTimeouts: 1.5 }), /maxTimeouts/);
  await assert.rejects(Coordinator.create({ files, holdMs: 5000 }), /holdMs must be from 0/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr coordinator: cleanUp removes intermediate and temporary files, not outputs", async () => {
  const j = await job(1);
  const names = [
    "mr-0",
    "mr-12",
    ".mr-tmp-abc",
    "mr-out-0",
    "mr-out-1",
    "mr-worker-map-7",
    "mr-0-x",
  ];
  for (const name of names) await Deno.writeTextFile(`${j.dir}/${name}`, "x");
  assert.equal(await j.coordinator.cleanUp(), 3);
  const left: string[] = [];
  for await (const e of Deno.readDir(j.dir)) if (e.name.startsWith("mr-")) left.push(e.name);
  assert.deepEqual(left.sort(), ["mr-0-x", "mr-out-0", "mr-out-1", "mr-worker-map-7"]);
  await Deno.remove(j.dir, { recursive: true });
});
