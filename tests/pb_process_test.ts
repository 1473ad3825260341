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
  const transport = new AddressTransport({ timeoutMs: 2000 });
  try {
    await vs.start();
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

Deno.test("pb process: the lock service's primary killed with SIGKILL; the backup has every lock", async () => {
  const [p, b] = freePorts(2).map((port) => `${HOST}:${port}`);
  const serve = (listen: string) =>
    new NodeProcess(listen, [
      "pb",
      "lock",
      "serve",
      "--listen",
      listen,
      "--primary",
      p,
      "--backup",
      b,
    ], {
      ready: "listening on",
    });
  const backup = serve(b);
  const primary = serve(p);
  const lockCli = (op: string, name: string) =>
    runCli("pb", "lock", op, name, "--primary", p, "--backup", b, "--timeout", "5000");
  try {
    await backup.start();
    await primary.start();
    const expect = async (op: string, name: string, answer: boolean) => {
      const r = await lockCli(op, name);
      assert.equal(r.stdout.trim(), String(answer), `${op} ${name}: ${r.stderr}`);
      assert.equal(r.code, answer ? 0 : 1);
    };
    await expect("lock", "printer", true);
    await expect("lock", "printer", false);
    await expect("lock", "scanner", true);
    await expect("unlock", "scanner", true);
    await primary.kill("SIGKILL");
    await expect("lock", "printer", false); // still held: the backup had it
    await expect("lock", "scanner", true); // and knew it was released
    await expect("unlock", "printer", true);
    const usage = await runCli(
      "pb",
      "lock",
      "serve",
      "--listen",
      `${HOST}:1`,
      "--primary",
      p,
      "--backup",
      b,
    );
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--listen must be the --primary or the --backup address/);
  } finally {
    await primary.kill();
    await backup.kill("SIGTERM");
  }
});
