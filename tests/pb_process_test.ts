/**
 * Primary/backup replication as real processes on 127.0.0.1, through the
 * `distkit pb` commands: the view service, the lock service and the
 * key/value service, their servers killed with SIGKILL.
 */
import assert from "node:assert/strict";
import { AddressTransport, delay } from "../net/mod.ts";
import { PrimaryBackupClerk, ViewClerk } from "../pb/mod.ts";
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
    const got = await runCli("pb", "view", "get", "--endpoints", address);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), { num: 1, primary: "s1", backup: "" });
    const usage = await runCli("pb", "view", "get");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--endpoints is required/);
    const down = await runCli("pb", "view", "get", "--endpoints", `${HOST}:${freePorts(1)[0]}`);
    assert.equal(down.code, 3);
    assert.match(
      down.stderr,
      /cannot connect to .* \(connection refused\); is a node running there\?/,
    );
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
    runCli("pb", "lock", op, name, "--primary", p, "--backup", b, "--timeout", "5s");
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

Deno.test("pb process: key/value servers killed with SIGKILL under load; no acknowledged append lost", async () => {
  const [vsAddress, ...addresses] = freePorts(4).map((port) => `${HOST}:${port}`);
  const vs = new NodeProcess(vsAddress, ["pb", "view", "serve", "--listen", vsAddress], {
    ready: "listening on",
  });
  const servers = addresses.map((a) =>
    new NodeProcess(a, ["pb", "kv", "serve", "--listen", a, "--view", vsAddress], {
      ready: "listening on",
    })
  );
  const transport = new AddressTransport({ timeoutMs: 1000, backoff: { failFast: true } });
  const view = new ViewClerk(transport.connect(vsAddress));
  // Polled until it holds, bounded generously (60 s) for a slow, busy machine.
  const waitForView = async (ok: (v: { primary: string; backup: string }) => boolean) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const v = await view.get();
      if (ok(v)) return v;
      await delay(100);
    }
    throw new Error(`the view did not settle in 60 s: ${JSON.stringify(await view.get())}`);
  };
  const kvCli = (...args: string[]) => runCli("pb", "kv", ...args, "--endpoints", vsAddress);
  let stop = false;
  try {
    await vs.start();
    await servers[0].start();
    await waitForView((v) => v.primary === addresses[0]);
    await servers[1].start();
    await servers[2].start();
    await waitForView((v) => v.backup === addresses[1]);
    const put = await kvCli("put", "k", "v1");
    assert.equal(put.code, 0, put.stderr);
    // A client appends all along; each acknowledged append must be there once.
    const clerk = new PrimaryBackupClerk(transport, { viewService: vsAddress, timeoutMs: 20_000 });
    const acked: string[] = [];
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        await clerk.append("log", `x${i};`);
        acked.push(`x${i};`);
      }
    })();
    // A primary answers only once its backup has the state: appends acknowledged
    // in a view show that its backup is up to date.
    const moreAcked = async (n: number) => {
      const target = acked.length + n;
      const deadline = Date.now() + 60_000; // bounded generously, for a slow, busy machine
      while (acked.length < target) {
        assert.ok(Date.now() < deadline, `no ${n} more appends acknowledged in 60 s`);
        await delay(20);
      }
    };
    await moreAcked(3);
    await servers[0].kill("SIGKILL"); // the primary
    await waitForView((v) => v.primary === addresses[1] && v.backup === addresses[2]);
    await moreAcked(3);
    await servers[1].kill("SIGKILL"); // the next primary
    await waitForView((v) => v.primary === addresses[2]);
    await moreAcked(3);
    stop = true;
    await load;
    const got = await kvCli("get", "k");
    assert.equal(got.stdout, "v1\n", got.stderr);
    const log = await clerk.get("log");
    const entries = log.split(";").filter((e) => e !== "").map((e) => `${e};`);
    assert.deepEqual(entries, acked, "every acknowledged append, once, in order");
    assert.ok(acked.length >= 9, `only ${acked.length} appends`);
    const usage = await kvCli("put", "k");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /expected KEY VALUE/);
  } finally {
    stop = true;
    await transport.close();
    for (const s of servers) await s.kill();
    await vs.kill("SIGTERM");
  }
});
