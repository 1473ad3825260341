import assert from "node:assert/strict";
import { TcpClient } from "../net/tcp.ts";
import { loadApp } from "./app.ts";
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
