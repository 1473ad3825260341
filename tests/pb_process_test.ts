/**
 * Primary/backup replication as real processes on 127.0.0.1, through the
 * `distkit pb` commands: the view service, and its view as servers come.
 */
import assert from "node:assert/strict";
import { AddressTransport } from "../net/mod.ts";
import { ViewClerk } from "../pb/mod.ts";
import { freePorts, HOST, NodeProcess, runCli } from "./node_process.ts";

Deno.test("pb process: the view service over TCP, and `distkit pb view get`", async () => {
  const [port] = freePorts(1);
  const address = `${HOST}:${port}`;
  const vs = new NodeProcess(address, ["pb", "view", "serve", "--listen", address], {
    ready: "listening on",
  });
  await vs.start();
  const transport = new AddressTransport({ timeoutMs: 2000 });
  try {
    const clerk = new ViewClerk(transport.connect(address));
    assert.deepEqual(await clerk.ping("s1", 0), { num: 1, primary: "s1", backup: "" });
    const got = await runCli("pb", "view", "get", "--view", address);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), { num: 1, primary: "s1", backup: "" });
    const usage = await runCli("pb", "view", "get");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--view is required/);
    const down = await runCli("pb", "view", "get", "--view", `${HOST}:${freePorts(1)[0]}`);
    assert.equal(down.code, 3);
    assert.match(down.stderr, /unreachable/);
  } finally {
    await transport.close();
    await vs.kill("SIGTERM");
  }
});
