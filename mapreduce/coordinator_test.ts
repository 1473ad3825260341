import assert from "node:assert/strict";
import { BadArgumentsError } from "../net/errors.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { VirtualClock } from "../net/clock.ts";
import type { AppIdentity } from "./app.ts";
import { type Assignment, Coordinator } from "./coordinator.ts";

async function job(
  files = 3,
  options: { timeoutMs?: number; nReduce?: number; holdMs?: number; app?: AppIdentity } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "distkit-coord-" });
  const inputs: string[] = [];
  for (let i = 0; i < files; i++) {
    inputs.push(`${dir}/in-${i}.txt`);
    await Deno.writeTextFile(inputs[i], `file ${i}\n`);
  }
  const clock = new VirtualClock();
  const log: string[] = [];
  const coordinator = await Coordinator.create({
    appIdentity: options.app,
    log: (line) => log.push(line),
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
  return { dir, clock, coordinator, call, task, done, log };
}

const WC: AppIdentity = { id: "builtin:wc", name: "wc" };
const INDEXER: AppIdentity = { id: "builtin:indexer", name: "indexer" };

/** A worker's `Task` arguments: its name and, unless undefined (an older worker), its app. */
function asker(worker: string, app: AppIdentity | undefined) {
  return app === undefined ? { worker } : { worker, app: app.id, appName: app.name };
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
      ["Task", { worker: "w", app: 7 }],
      ["Task", { worker: "w", app: "" }],
      ["Task", { worker: "w", app: "builtin:wc", appName: ["wc"] }],
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

Deno.test("mr coordinator: the first worker given a task pins the app; another is refused, no task", async () => {
  const j = await job(3, { nReduce: 1 });
  assert.equal(j.coordinator.app, undefined, "nothing pinned before a task is given");
  const first = await j.call("Task", asker("a", WC)) as Assignment;
  assert.equal(first.kind, "map");
  assert.deepEqual(j.coordinator.app, { identity: WC, pinnedBy: "a" });
  // Tasks are free, yet the indexer worker gets none, however often it asks.
  for (let k = 0; k < 3; k++) {
    const refused = await j.call("Task", asker("b", INDEXER)) as Assignment;
    assert.ok(refused.kind === "exit" && refused.refused !== undefined, JSON.stringify(refused));
    assert.equal(refused.failed, undefined, "the job has not failed");
    assert.match(
      refused.refused,
      /the worker runs app "indexer", but this job runs app "wc" \(pinned by its first worker given a task, a\): start the worker with --app "wc"/,
    );
  }
  assert.equal(j.coordinator.progress().running, 1, "only a's task is running");
  // A wc worker goes on getting tasks.
  const second = await j.call("Task", asker("c", WC)) as Assignment;
  assert.ok(second.kind === "map" && second.task.id === 1);
  assert.equal(j.log.length, 2, j.log.join("\n"));
  assert.match(j.log[0], /^app "wc", pinned by the first worker given a task, a;/);
  assert.match(j.log[1], /^refused worker b: the worker runs app "indexer", but this job runs/);
  assert.equal(j.coordinator.untoldWorkers, 2, "a and c are working; b was told");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: appIdentity pins from the start; a report from a refused worker is dropped", async () => {
  const j = await job(2, { nReduce: 1, app: WC });
  assert.deepEqual(j.coordinator.app, { identity: WC });
  // The other app asks first: refused, though every task is free.
  const refused = await j.call("Task", asker("b", INDEXER)) as Assignment;
  assert.ok(refused.kind === "exit" && refused.refused !== undefined);
  assert.match(
    refused.refused,
    /runs app "indexer", but this job runs app "wc" \(chosen with the coordinator's --app\)/,
  );
  assert.equal(j.coordinator.progress().running, 0);
  // Its claim to have done map 0 (a task it was never given) changes nothing.
  const next = await j.call("Next", {
    ...asker("b", INDEXER),
    done: { kind: "map", id: 0, attempt: 1 },
  }) as Assignment;
  assert.ok(next.kind === "exit" && next.refused !== undefined);
  assert.equal(j.coordinator.progress().done, 0, "the refused worker's report was not applied");
  // A wc worker gets map 0.
  const a = await j.call("Task", asker("a", WC)) as Assignment;
  assert.ok(a.kind === "map" && a.task.id === 0 && a.attempt === 1);
  assert.deepEqual(j.log, [
    `refused worker b: ${refused.refused}`,
  ], "one line for b, though it asked twice; no pin line (the options set the app)");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: a worker that does not say its app is refused by a job whose app is known", async () => {
  const j = await job(1, { app: WC });
  const refused = await j.call("Task", asker("old", undefined)) as Assignment;
  assert.ok(refused.kind === "exit" && refused.refused !== undefined);
  assert.match(
    refused.refused,
    /does not say which app it runs \(a worker of an older distkit\?\).*upgrade the worker and start it with --app "wc"/,
  );
  // An older worker knows only `failed`: it must not take the exit for "done".
  assert.equal(refused.failed, `refused: ${refused.refused}`);
  assert.equal(j.coordinator.progress().running, 0);
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: a job whose first worker does not say its app refuses workers that do", async () => {
  const j = await job(3);
  // Older workers alone: served, as before.
  assert.equal((await j.call("Task", asker("old", undefined)) as Assignment).kind, "map");
  assert.deepEqual(j.coordinator.app, { identity: undefined, pinnedBy: "old" });
  assert.equal((await j.call("Task", asker("old2", undefined)) as Assignment).kind, "map");
  // A worker that says its app cannot be checked against theirs.
  const refused = await j.call("Task", asker("new", WC)) as Assignment;
  assert.ok(refused.kind === "exit" && refused.refused !== undefined);
  assert.equal(refused.failed, undefined);
  assert.match(
    refused.refused,
    /this job's first worker given a task, old, does not say which app/,
  );
  assert.match(j.log[0], /^app unknown: the first worker given a task, old, does not say/);
  assert.equal(j.log.length, 2);
  assert.equal(j.coordinator.progress().running, 2);
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: another app is refused at once, not held; a held worker of the job's app is served", async () => {
  // Pinned to wc by a worker; a wc worker's request is held while nothing is free,
  // and the indexer worker asking then is refused at once, not held.
  const j = await job(1, { nReduce: 1, holdMs: 1000 });
  const m0 = await j.call("Task", asker("a", WC)) as Assignment;
  let held: Assignment | undefined;
  const waiting = (j.call("Task", asker("c", WC)) as Promise<Assignment>).then((a) => (held = a));
  const refused = await j.call("Task", asker("b", INDEXER)) as Assignment;
  assert.ok(refused.kind === "exit" && refused.refused !== undefined);
  assert.equal(j.clock.now(), 0, "refused without being held");
  assert.equal(held, undefined);
  await j.done(m0);
  await waiting;
  assert.ok(held!.kind === "reduce", "the held wc worker got the reduce");
  await Deno.remove(j.dir, { recursive: true });
});

Deno.test("mr coordinator: an appIdentity without an id is refused up front", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "x\n");
  await assert.rejects(
    Coordinator.create({ files: [`${dir}/in.txt`], appIdentity: { id: "", name: "wc" } }),
    /appIdentity.id must be a non-empty string/,
  );
  await Deno.remove(dir, { recursive: true });
});
