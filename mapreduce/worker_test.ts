import assert from "node:assert/strict";
import { RpcServer } from "../net/rpc_server.ts";
import { TcpClient } from "../net/tcp.ts";
import type { ClientEnd } from "../net/transport.ts";
import { appIdentity, loadApp } from "./app.ts";
import { runSequential } from "./engine.ts";
import { Coordinator } from "./coordinator.ts";
import { runWorker } from "./worker.ts";

Deno.test("mr worker: a coordinator that never answers is reported as unreachable", async () => {
  // A port that was free a moment ago: nothing listens there.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const end = new TcpClient(`127.0.0.1:${port}`, { timeoutMs: 500 });
  try {
    const report = await runWorker(end, await loadApp("wc"), { connectMs: 300, giveUpMs: 50 });
    assert.equal(report.ended, "coordinator unreachable");
    assert.equal(report.maps + report.reduces, 0);
  } finally {
    await end.close();
  }
});

/** A job of two small inputs, its coordinator served in this process, and the calls a worker made. */
async function localJob(methods: (c: Coordinator) => Record<string, (args: unknown) => unknown>) {
  const dir = await Deno.makeTempDir({ prefix: "distkit-worker-" });
  const files = [`${dir}/a.txt`, `${dir}/b.txt`];
  await Deno.writeTextFile(files[0], "one two two\n");
  await Deno.writeTextFile(files[1], "two three\n");
  const coordinator = await Coordinator.create({ files, nReduce: 2, dir, holdMs: 0 });
  const server = new RpcServer();
  server.addService("MR", methods(coordinator));
  const calls: string[] = [];
  const apps = new Set<unknown>();
  const end: ClientEnd = {
    peer: "in-process",
    call: <T>(method: string, args?: unknown) => {
      calls.push(method);
      if (method === "MR.Task" || method === "MR.Next") apps.add((args as { app?: unknown }).app);
      return server.dispatch(method, args) as Promise<T>;
    },
  };
  const report = await runWorker(end, await loadApp("wc"), {
    appIdentity: await appIdentity("wc"),
  });
  await coordinator.finished;
  let out = "";
  for (let r = 0; r < 2; r++) out += await Deno.readTextFile(`${dir}/mr-out-${r}`);
  await Deno.remove(dir, { recursive: true });
  return { report, calls, apps, lines: out.split("\n").filter((l) => l).sort() };
}

Deno.test("mr worker: a finished task is reported with the next request, one call per task", async () => {
  const { report, calls, apps, lines } = await localJob((c) => c.methods());
  assert.deepEqual(report, { maps: 2, reduces: 2, failures: 0, ended: "done" });
  assert.deepEqual(lines, ["one 1", "three 1", "two 3"]);
  assert.deepEqual([...apps], ["builtin:wc"], "every request for a task names the app");
  // One Task to start, then a Next per task (the last one hears "exit").
  assert.deepEqual(calls, ["MR.Task", ...Array(4).fill("MR.Next")]);
});

Deno.test("mr worker: a coordinator without Next is told with Done, then asked with Task", async () => {
  const { report, calls, lines } = await localJob((c) => {
    const { Task, Done, Failed } = c.methods();
    return { Task, Done, Failed };
  });
  assert.deepEqual(report, { maps: 2, reduces: 2, failures: 0, ended: "done" });
  assert.deepEqual(lines, ["one 1", "three 1", "two 3"]);
  assert.deepEqual(calls, [
    "MR.Task",
    "MR.Next", // unknown: tried once
    ...Array(4).fill(["MR.Done", "MR.Task"]).flat(),
  ]);
});

/** A ClientEnd calling `server` in this process. */
function inProcess(server: RpcServer, before?: () => Promise<void>): ClientEnd {
  return {
    peer: "in-process",
    call: async <T>(method: string, args?: unknown) => {
      await before?.();
      return await server.dispatch(method, args) as T;
    },
  };
}

/** Four small inputs in a fresh folder. */
async function fourInputs(): Promise<{ dir: string; files: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-worker-apps-" });
  const files = [];
  for (let i = 0; i < 4; i++) {
    files.push(`${dir}/in-${i}.txt`);
    await Deno.writeTextFile(files[i], `the cat ${i}\nsat on the mat ${i % 2}\n`);
  }
  return { dir, files };
}

/** The sorted lines of mr-out-0..n-1 in `dir`. */
async function outputLines(dir: string, n: number): Promise<string[]> {
  let out = "";
  for (let r = 0; r < n; r++) out += await Deno.readTextFile(`${dir}/mr-out-${r}`);
  return out.split("\n").filter((l) => l).sort();
}

Deno.test("mr worker: a worker of another app than the first's is refused; the output is the first app's", async () => {
  const { dir, files } = await fourInputs();
  try {
    const coordinator = await Coordinator.create({ files, nReduce: 2, dir, holdMs: 0 });
    const log: string[] = [];
    const server = new RpcServer();
    server.addService("MR", coordinator.methods());
    // The wc worker runs map 0 and, before it asks again, waits for the indexer worker's
    // answer: the indexer worker asks while three maps are still free.
    const wcGotTask = Promise.withResolvers<void>();
    const indexerAnswered = Promise.withResolvers<void>();
    let wcCalls = 0;
    const wcEnd = inProcess(server, async () => {
      if (wcCalls++ === 1) {
        wcGotTask.resolve();
        await indexerAnswered.promise;
      }
    });
    const wc = runWorker(wcEnd, await loadApp("wc"), {
      id: "wc-worker",
      appIdentity: await appIdentity("wc"),
    });
    await wcGotTask.promise;
    const indexer = await runWorker(inProcess(server), await loadApp("indexer"), {
      id: "indexer-worker",
      appIdentity: await appIdentity("indexer"),
      log: (line) => log.push(line),
    });
    indexerAnswered.resolve();
    assert.equal(indexer.ended, "refused");
    assert.deepEqual({ ...indexer, reason: undefined }, {
      maps: 0,
      reduces: 0,
      failures: 0,
      ended: "refused",
      reason: undefined,
    });
    assert.match(indexer.reason!, /runs app "indexer", but this job runs app "wc"/);
    assert.deepEqual(log, [], "the indexer worker started no task");
    assert.deepEqual(await wc, { maps: 4, reduces: 2, failures: 0, ended: "done" });
    await coordinator.finished;
    const seqDir = await Deno.makeTempDir({ prefix: "distkit-worker-seq-" });
    try {
      await runSequential(await loadApp("wc"), files, { dir: seqDir });
      assert.deepEqual(await outputLines(dir, 2), await outputLines(seqDir, 1));
    } finally {
      await Deno.remove(seqDir, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mr worker: without appIdentity, a coordinator that knows its job's app refuses it", async () => {
  const { dir, files } = await fourInputs();
  try {
    const coordinator = await Coordinator.create({
      files,
      dir,
      holdMs: 0,
      appIdentity: await appIdentity("wc"),
    });
    const server = new RpcServer();
    server.addService("MR", coordinator.methods());
    const report = await runWorker(inProcess(server), await loadApp("wc"));
    assert.equal(report.ended, "refused");
    assert.equal(report.maps, 0);
    assert.match(report.reason!, /does not say which app it runs.*upgrade the worker/);
    assert.equal(coordinator.progress().running, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
