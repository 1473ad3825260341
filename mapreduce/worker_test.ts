import assert from "node:assert/strict";
import { RpcServer } from "../net/rpc_server.ts";
import { TcpClient } from "../net/tcp.ts";
import type { ClientEnd } from "../net/transport.ts";
import { loadApp } from "./app.ts";
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
  const end: ClientEnd = {
    peer: "in-process",
    call: <T>(method: string, args?: unknown) => {
      calls.push(method);
      return server.dispatch(method, args) as Promise<T>;
    },
  };
  const report = await runWorker(end, await loadApp("wc"));
  await coordinator.finished;
  let out = "";
  for (let r = 0; r < 2; r++) out += await Deno.readTextFile(`${dir}/mr-out-${r}`);
  await Deno.remove(dir, { recursive: true });
  return { report, calls, lines: out.split("\n").filter((l) => l).sort() };
}

Deno.test("mr worker: a finished task is reported with the next request, one call per task", async () => {
  const { report, calls, lines } = await localJob((c) => c.methods());
  assert.deepEqual(report, { maps: 2, reduces: 2, failures: 0, ended: "done" });
  assert.deepEqual(lines, ["one 1", "three 1", "two 3"]);
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
