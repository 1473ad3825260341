import assert from "node:assert/strict";
import {
  AddressTransport,
  ArgumentsError,
  BadArgumentsError,
  type ClientEnd,
  delay,
  RpcServer,
  serveTcp,
  type SimNetwork,
  simulate,
  UnreachableError,
  type VirtualClock,
} from "../net/mod.ts";
import { PrimaryBackupClerk } from "./kv_clerk.ts";
import { RequestAbortedError, RequestError, RequestTimeoutError } from "../rsm/errors.ts";
import { parsePbWrite, PB_KV_LIMITS, PB_KV_SERVICE } from "./kv_protocol.ts";
import { PrimaryBackupServer, type PrimaryBackupServerOptions } from "./kv_server.ts";
import { PageAssembler, PbStore } from "./kv_store.ts";
import { type View, ViewServer } from "./view.ts";

/** A view service and servers on the simulated network, with raw ends to call them. */
class Setup {
  readonly net: SimNetwork;
  readonly clock: VirtualClock;
  readonly vs: ViewServer;
  readonly servers = new Map<string, PrimaryBackupServer>();
  /** Per server, how long its Forward replies are held back (the handler runs at once). */
  readonly slowForward: Record<string, number> = {};
  /** How long a ping is held before the view service sees it (-1: lost). */
  holdPing: (server: string, num: number) => number = () => 0;

  /** `onPing` sees every ping the view service receives, before it does. */
  constructor(
    net: SimNetwork,
    clock: VirtualClock,
    onPing: (server: string, num: number) => void = () => {},
  ) {
    this.net = net;
    this.clock = clock;
    net.setLatency([1, 3]);
    this.vs = new ViewServer({ clock });
    const methods = this.vs.methods();
    const rpc = new RpcServer();
    rpc.addService("View", {
      Get: methods.Get,
      Ping: async (args: { server: string; num: number }) => {
        const hold = this.holdPing(args.server, args.num);
        if (hold < 0) throw new UnreachableError("vs", "ping lost (by the test)");
        if (hold > 0) await delay(hold, { clock });
        onPing(args.server, args.num);
        return methods.Ping(args);
      },
    });
    net.addServer("vs", rpc);
  }

  start(name: string, options: Partial<PrimaryBackupServerOptions> = {}): PrimaryBackupServer {
    const server = new PrimaryBackupServer(name, {
      transport: this.net.transportFor(name),
      viewService: "vs",
      clock: this.clock,
      ...options,
    });
    const rpc = new RpcServer();
    const methods = server.methods();
    rpc.addService(PB_KV_SERVICE, {
      ...methods,
      Forward: async (args: unknown) => {
        const reply = methods.Forward(args);
        const hold = this.slowForward[name] ?? 0;
        if (hold > 0) await delay(hold, { clock: this.clock });
        return reply;
      },
    });
    this.net.addServer(name, rpc);
    this.servers.set(name, server);
    return server;
  }

  kill(name: string): void {
    this.net.deleteServer(name);
    this.servers.get(name)?.close();
    this.servers.delete(name);
  }

  /** Waits (polling in virtual time) until `name` is ready in its role, in a view that holds. */
  async ready(name: string, role: "primary" | "backup"): Promise<void> {
    for (let i = 0; i < 500; i++) {
      const s = this.servers.get(name)?.status();
      const v = this.vs.view;
      if (s?.ready && s.role === role && s.view.num === v.num) {
        if (role === "backup" || s.acknowledged === v.num) return;
      }
      await delay(10, { clock: this.clock });
    }
    assert.fail(`${name} never became a ready ${role}; view ${JSON.stringify(this.vs.view)}`);
  }

  end(from: string, to: string): ClientEnd {
    return this.net.transportFor(from).connect(to);
  }

  close(): void {
    for (const name of [...this.servers.keys()]) this.kill(name);
    this.vs.close();
  }
}

const call = (end: ClientEnd, method: string, args: unknown) =>
  end.call<Record<string, unknown>>(`${PB_KV_SERVICE}.${method}`, args, { timeoutMs: 5000 });

Deno.test("PrimaryBackupServer: bad input gets BadArgumentsError, and the server keeps serving", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1", { limits: { maxKeyBytes: 16, maxValueBytes: 64 } });
    await s.ready("s1", "primary");
    const end = s.end("c", "s1");
    const write = (fields: Record<string, unknown>) =>
      call(end, "Write", { client: "c", seq: 1, op: "put", key: "k", value: "v", ...fields });
    const refused: [string, () => Promise<unknown>][] = [
      ["not an object", () => call(end, "Get", 7)],
      ["no key", () => call(end, "Get", {})],
      ["a key that is a number", () => call(end, "Get", { key: 5 })],
      ["a key too long", () => call(end, "Get", { key: "k".repeat(17) })],
      ["a lone surrogate", () => call(end, "Get", { key: "\ud800" })],
      ["an unknown op", () => write({ op: "delete" })],
      ["seq 0", () => write({ seq: 0 })],
      ["seq not an integer", () => write({ seq: 1.5 })],
      ["an empty client id", () => write({ client: "" })],
      ["a client id too long", () => write({ client: "c".repeat(300) })],
      ["a value too long", () => write({ value: "v".repeat(65) })],
      ["a value that is bytes", () => write({ value: new Uint8Array(2) })],
      [
        "a forward with neither get nor write",
        () => call(end, "Forward", { view: 1, primary: "x", transfer: 1 }),
      ],
      ["a transfer without pages", () => call(end, "Transfer", { view: 1, primary: "x" })],
    ];
    for (const [what, send] of refused) {
      await assert.rejects(send(), BadArgumentsError, what);
    }
    // An append that would outgrow the value limit is refused, not applied.
    assert.deepEqual(await write({ seq: 1, value: "v".repeat(60) }), { status: "ok" });
    await assert.rejects(write({ seq: 2, op: "append", value: "12345" }), /limit is 64/);
    assert.equal((await call(end, "Get", { key: "k" })).value, "v".repeat(60));
    // Everyone else is served as usual.
    assert.deepEqual(await write({ client: "d", key: "x", value: "1" }), { status: "ok" });
    assert.deepEqual(await call(end, "Get", { key: "x" }), { status: "ok", value: "1" });
    assert.deepEqual(await call(end, "Get", { key: "none" }), { status: "ok", value: null });
    s.close();
  }, { seed: 1 });
});

Deno.test("PrimaryBackupClerk: refuses bad requests itself, and reports the server's refusals", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1", { limits: { maxValueBytes: 8 } });
    await s.ready("s1", "primary");
    const clerk = new PrimaryBackupClerk(net.transportFor("c"), {
      id: "c",
      viewService: "vs",
      clock,
      limits: { maxValueBytes: 8 },
    });
    const callsBefore = net.count("s1");
    await assert.rejects(clerk.put("k".repeat(2000), "v"), RequestError);
    await assert.rejects(clerk.get(42 as unknown as string), RequestError);
    await assert.rejects(clerk.put("k", "123456789"), /value is 9 bytes; the limit is 8/);
    assert.equal(net.count("s1"), callsBefore, "a refused request was sent");
    await clerk.put("k", "1234");
    const err = await clerk.append("k", "56789").catch((e) => e);
    assert.ok(err instanceof RequestError, `expected RequestError, got ${err}`);
    assert.match(err.message, /append would make the value .* 9 bytes; the limit is 8/);
    assert.equal(await clerk.get("k"), "1234");
    await clerk.append("k", "5678");
    assert.equal(await clerk.get("k"), "12345678");
    // The typed reads: text as get has it, bytes as its UTF-8.
    assert.equal(await clerk.getText("k"), "12345678");
    assert.deepEqual(await clerk.getBytes("k"), new TextEncoder().encode("12345678"));
    assert.deepEqual(await clerk.getBytes("absent"), new Uint8Array());
    assert.throws(
      () => new PrimaryBackupClerk(net.transportFor("x"), { viewService: "vs", id: "a#b" }),
      RangeError,
    );
    assert.throws(
      () =>
        new PrimaryBackupClerk(net.transportFor("y"), {
          id: "y",
          viewService: "vs",
          clock,
          timeoutMs: 0,
        }),
      /timeoutMs must be above 0/,
    );
    s.close();
  }, { seed: 2 });
});

Deno.test("PrimaryBackupServer: servers other than the primary answer wrong-server", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1");
    await s.ready("s1", "primary");
    s.start("s2");
    await s.ready("s2", "backup");
    await s.ready("s1", "primary");
    s.start("s3");
    await delay(300, { clock });
    assert.deepEqual(s.vs.view, { num: 2, primary: "s1", backup: "s2" });
    assert.equal(s.servers.get("s3")!.status().role, "idle");
    for (const name of ["s2", "s3"]) {
      const end = s.end("c", name);
      const get = await call(end, "Get", { key: "a" });
      assert.equal(get.status, "wrong-server", `${name} answered a Get`);
      assert.match(String(get.reason), /not the primary of view 2 \(s1 is\)/);
      const put = await call(end, "Write", {
        client: "c",
        seq: 1,
        op: "put",
        key: "a",
        value: "1",
      });
      assert.equal(put.status, "wrong-server", `${name} took a write`);
      assert.equal(s.servers.get(name)!.data().size, 0);
    }
    s.close();
  }, { seed: 3 });
});

Deno.test("PrimaryBackupServer: a backup takes forwards and pages only from its view's primary", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1");
    await s.ready("s1", "primary");
    s.start("s2");
    await s.ready("s2", "backup");
    const end = s.end("intruder", "s2");
    const w = { client: "i", seq: 1, op: "put", key: "a", value: "forged" };
    const cases: [string, Record<string, unknown>][] = [
      ["another server", { view: 2, primary: "s3", write: w, transfer: 1 }],
      ["an old view", { view: 1, primary: "s1", write: w, transfer: 1 }],
      ["a later view", { view: 3, primary: "s1", write: w, transfer: 1 }],
      ["before the transfer it holds (a straggler)", {
        view: 2,
        primary: "s1",
        write: w,
        transfer: 0,
      }],
    ];
    for (const [what, args] of cases) {
      const reply = await call(end, "Forward", args);
      assert.equal(reply.status, "rejected", `a forward from ${what} was taken`);
      assert.equal(reply.view, 2);
    }
    const page = await call(end, "Transfer", {
      view: 2,
      primary: "s3",
      transfer: 99,
      index: 0,
      last: true,
      data: [["a", "forged"]],
      sessions: [],
    });
    assert.equal(page.status, "rejected");
    assert.equal(s.servers.get("s2")!.data().size, 0);
    // The real primary's forward is taken.
    assert.deepEqual(
      await call(end, "Forward", { view: 2, primary: "s1", get: "a", transfer: 1 }),
      {
        status: "ok",
      },
    );
    s.close();
  }, { seed: 4 });
});

/** A view service that answers every call with `view`, and records the numbers pinged. */
function fakeViewService(net: SimNetwork, view: { before: View; after: View }): number[] {
  const pings: number[] = [];
  const rpc = new RpcServer();
  let pinged = false;
  rpc.addService("View", {
    Get: () => pinged ? view.after : view.before,
    Ping: ({ num }: { num: number }) => {
      pinged = true;
      pings.push(num);
      return view.after;
    },
  });
  net.addServer("vs", rpc);
  return pings;
}

Deno.test("PrimaryBackupServer: a fresh server never acknowledges a view it is primary of without the state", async (t) => {
  const cases: { name: string; before: View; after: View; acks: boolean }[] = [
    {
      name: "the very first view, made by its own ping: it acknowledges",
      before: { num: 0, primary: "", backup: "" },
      after: { num: 1, primary: "s1", backup: "" },
      acks: true,
    },
    {
      name: "view 3, whose backup it never was: it waits",
      before: { num: 3, primary: "s1", backup: "" },
      after: { num: 3, primary: "s1", backup: "" },
      acks: false,
    },
    {
      name: "view 1, which its earlier self led (a restart): it waits",
      before: { num: 1, primary: "s1", backup: "" },
      after: { num: 1, primary: "s1", backup: "" },
      acks: false,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await simulate(async ({ net, clock }) => {
        const pings = fakeViewService(net, c);
        const server = new PrimaryBackupServer("s1", {
          transport: net.transportFor("s1"),
          viewService: "vs",
          clock,
        });
        const rpc = new RpcServer();
        rpc.addService(PB_KV_SERVICE, server.methods());
        net.addServer("s1", rpc);
        await delay(2000, { clock });
        assert.ok(pings.length >= 10, `only ${pings.length} pings`);
        const reply = await call(net.transportFor("c").connect("s1"), "Get", { key: "a" });
        if (c.acks) {
          assert.ok(pings.includes(1), `never acknowledged: ${pings}`);
          assert.equal(reply.status, "ok");
        } else {
          assert.ok(pings.every((n) => n === 0), `pinged ${pings}`);
          assert.equal(server.status().acknowledged, 0);
          assert.equal(reply.status, "wrong-server");
          assert.match(String(reply.reason), /lost its state/);
        }
        server.close();
      }, { seed: 5 });
    });
  }
});

Deno.test("PrimaryBackupServer: the primary acknowledges a view only once its backup holds the state", async () => {
  await simulate(async ({ net, clock }) => {
    const started: { backup?: PrimaryBackupServer } = {};
    const acks: boolean[] = []; // per ping of s1 with view 2: whether s2 was ready then
    const s = new Setup(net, clock, (server, num) => {
      if (server === "s1" && num === 2) acks.push(started.backup?.status().ready === true);
    });
    s.start("s1", { pageBytes: 100 });
    await s.ready("s1", "primary");
    const end = s.end("c", "s1");
    for (let i = 0; i < 30; i++) {
      await call(end, "Write", {
        client: "c",
        seq: i + 1,
        op: "put",
        key: `k${i}`,
        value: "v".repeat(90),
      });
    }
    // About 30 pages, 50 ms each: the transfer takes many ping intervals.
    net.setLinkRule("s1", "s2", { delayMs: [50, 50] });
    started.backup = s.start("s2", { pageBytes: 100 });
    await s.ready("s2", "backup");
    await s.ready("s1", "primary");
    assert.ok(acks.length > 0, "s1 never acknowledged view 2");
    assert.ok(acks.every((ready) => ready), "s1 acknowledged view 2 before s2 held the state");
    s.close();
  }, { seed: 11 });
});

Deno.test("PrimaryBackupServer: the state moves to a new backup in pages, with the dedup table", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1", { pageBytes: 1024 });
    await s.ready("s1", "primary");
    const end = s.end("c", "s1");
    for (let i = 0; i < 100; i++) {
      const value = `${i}`.padEnd(100, ".");
      await call(end, "Write", { client: `c${i}`, seq: 1, op: "put", key: `k${i}`, value });
    }
    const retried = { client: "r", seq: 1, op: "append", key: "r", value: "x" };
    assert.deepEqual(await call(end, "Write", retried), { status: "ok" });
    const transfersBefore = countDeliveries(net, "PbKV.Transfer");

    s.start("s2", { pageBytes: 1024 });
    await s.ready("s2", "backup");
    await s.ready("s1", "primary");
    // About 10 KB of data and 101 sessions, in pages of about 1 KiB.
    const pages = countDeliveries(net, "PbKV.Transfer") - transfersBefore;
    assert.ok(pages >= 10, `the state moved in ${pages} pages`);
    assert.deepEqual(s.servers.get("s2")!.data(), s.servers.get("s1")!.data());

    // The backup takes over: the retried append is recognised there.
    s.kill("s1");
    await s.ready("s2", "primary");
    const end2 = s.end("c", "s2");
    assert.deepEqual(await call(end2, "Write", retried), { status: "ok" });
    assert.deepEqual(await call(end2, "Get", { key: "r" }), { status: "ok", value: "x" });
    assert.equal((await call(end2, "Get", { key: "k99" })).value, "99".padEnd(100, "."));
    s.close();
  }, { seed: 6, trace: true });
});

Deno.test("PrimaryBackupServer: a backup that restarted unnoticed is brought up to date again", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1");
    await s.ready("s1", "primary");
    const clerk = new PrimaryBackupClerk(net.transportFor("c"), {
      id: "c",
      viewService: "vs",
      clock,
    });
    await clerk.put("a", "1");
    // s1 learns view 2 and brings its backup s2 up to date (slowly), but
    // cannot acknowledge the view yet.
    net.setLinkRule("s1", "s2", { delayMs: [200, 200] });
    const s2 = s.start("s2");
    const s1 = s.servers.get("s1")!;
    for (let i = 0; i < 100 && s2.status().view.num !== 2; i++) await delay(5, { clock });
    // s2's pings with view 2 never reach the view service; s1 cannot
    // acknowledge view 2 (its transfer is slow, then its pings are lost).
    net.setLinkRule("s2", "vs", { dropRequests: 1 });
    for (let i = 0; i < 100 && s1.status().view.num !== 2; i++) await delay(5, { clock });
    net.setLinkRule("s1", "vs", { dropRequests: 1 });
    await s.ready("s2", "backup");
    net.setLinkRule("s1", "s2", undefined);
    assert.equal(s1.status().acknowledged, 1);
    // s2 restarts: as far as the view service knows it never pinged a view
    // number and the view is not acknowledged, so its 0 looks like a
    // server yet to learn its role.
    s.kill("s2");
    net.setLinkRule("s2", "vs", undefined);
    const fresh = s.start("s2");
    for (let i = 0; i < 50 && fresh.status().view.num !== 2; i++) await delay(10, { clock });
    assert.deepEqual(fresh.status().view, { num: 2, primary: "s1", backup: "s2" });
    assert.equal(fresh.status().ready, false);
    net.setLinkRule("s1", "vs", undefined);
    await s.ready("s1", "primary");
    // The fresh backup refuses s1's forward; s1 copies its state over again.
    const transfers = countDeliveries(net, "PbKV.Transfer");
    await clerk.put("b", "2");
    assert.equal(s.vs.view.num, 2, "the view service noticed the restart after all");
    assert.ok(countDeliveries(net, "PbKV.Transfer") > transfers, "no second transfer");
    assert.equal(fresh.status().ready, true);
    assert.deepEqual(fresh.data(), new Map([["a", "1"], ["b", "2"]]));
    s.kill("s1");
    assert.equal(await clerk.get("a"), "1");
    assert.equal(s.vs.view.primary, "s2");
    s.close();
  }, { seed: 9, trace: true });
});

Deno.test("PrimaryBackupServer: a write that may have reached the backup leaves no difference behind", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1");
    await s.ready("s1", "primary");
    s.start("s2");
    await s.ready("s2", "backup");
    await s.ready("s1", "primary");
    const a = new PrimaryBackupClerk(net.transportFor("a"), { viewService: "vs", clock, id: "a" });
    const b = new PrimaryBackupClerk(net.transportFor("b"), { viewService: "vs", clock, id: "b" });
    // s2 applies the append, but s1 never hears back: s1 gives up on it
    // (not applied there) and the clerk gives up too.
    net.setLinkRule("s1", "s2", { dropReplies: 1 });
    const err = await a.append("k", "a", { timeoutMs: 1500 }).catch((e) => e);
    assert.ok(err instanceof RequestTimeoutError && err.mayHaveApplied, `got ${err}`);
    assert.equal(s.servers.get("s1")!.data().get("k"), undefined);
    net.setLinkRule("s1", "s2", undefined);
    // s1 copies its state to s2 again before it serves the next write.
    await b.append("k", "b");
    assert.equal(await b.get("k"), "b");
    await s.ready("s1", "primary");
    assert.deepEqual(s.servers.get("s2")!.data(), s.servers.get("s1")!.data());
    s.kill("s1");
    assert.equal(await b.get("k"), "b");
    s.close();
  }, { seed: 10 });
});

Deno.test("PrimaryBackupServer and PrimaryBackupClerk over TCP, every peer named by its address", async () => {
  const ping = { pingIntervalMs: 50 };
  const nodes: { close(): void | Promise<void> }[] = [];
  const listen = (rpc: RpcServer) => {
    const listener = serveTcp(rpc, { hostname: "127.0.0.1", port: 0 });
    nodes.push(listener);
    return listener.address;
  };
  const transport = () => {
    const t = new AddressTransport({ timeoutMs: 1000, backoff: { failFast: true } });
    nodes.push(t);
    return t;
  };
  const vs = new ViewServer(ping);
  const vsRpc = new RpcServer();
  vsRpc.addService("View", vs.methods());
  const vsAddress = listen(vsRpc);
  const servers = new Map<
    string,
    { kv: PrimaryBackupServer; listener: { close(): Promise<void> } }
  >();
  const start = () => {
    const rpc = new RpcServer();
    const listener = serveTcp(rpc, { hostname: "127.0.0.1", port: 0 });
    const kv = new PrimaryBackupServer(listener.address, {
      transport: transport(),
      viewService: vsAddress,
      ...ping,
    });
    rpc.addService(PB_KV_SERVICE, kv.methods());
    servers.set(listener.address, { kv, listener });
    return listener.address;
  };
  try {
    const first = start();
    const clerk = new PrimaryBackupClerk(transport(), {
      viewService: vsAddress,
      timeoutMs: 10_000,
    });
    await clerk.put("x", "1");
    const second = start();
    await clerk.append("x", "2");
    // Until the primary acknowledged the view, the view service cannot promote its backup.
    const acked = () => servers.get(first)!.kv.status().acknowledged === vs.view.num;
    // Real time (real sockets): bounded generously, for a slow, busy machine.
    const deadline = Date.now() + 60_000;
    while (vs.view.backup !== second || !acked()) {
      assert.ok(
        Date.now() < deadline,
        `no acknowledged view with backup ${second} in 60 s: ${JSON.stringify(vs.view)}`,
      );
      await delay(10);
    }
    assert.deepEqual(servers.get(second)!.kv.data(), new Map([["x", "12"]]));
    // The primary dies: the backup, at its address, takes over.
    servers.get(first)!.kv.close();
    await servers.get(first)!.listener.close();
    servers.delete(first);
    assert.equal(await clerk.get("x"), "12");
    assert.equal(vs.view.primary, second);
  } finally {
    vs.close();
    for (const { kv, listener } of servers.values()) {
      kv.close();
      await listener.close();
    }
    for (const node of nodes) await node.close();
  }
});

function countDeliveries(net: SimNetwork, method: string): number {
  return net.trace.filter((e) => e.kind === "deliver" && e.method === method).length;
}

Deno.test("PrimaryBackupServer: close() stops the pings", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    const server = s.start("s1");
    await delay(1000, { clock });
    const pings = net.count("vs");
    assert.ok(pings >= 9, `${pings} pings in a second`);
    server.close();
    await delay(50, { clock }); // a ping in flight at the close arrives
    const after = net.count("vs");
    await delay(2000, { clock });
    assert.equal(net.count("vs"), after, "the server pinged after close()");
    s.close();
  }, { seed: 7 });
});

Deno.test("PrimaryBackupClerk: gives up at its deadline or signal, saying why", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    const clerk = new PrimaryBackupClerk(net.transportFor("c"), {
      id: "c",
      viewService: "vs",
      clock,
      timeoutMs: 800,
    });
    // No server has pinged: the view names no primary.
    const start = clock.now();
    const err = await clerk.get("a").catch((e) => e);
    assert.ok(err instanceof RequestTimeoutError, `expected RequestTimeoutError, got ${err}`);
    assert.equal(err.mayHaveApplied, false);
    assert.match(
      err.message,
      /no answer within 800 ms; tried vs \(the view service names no primary yet\)/,
    );
    assert.ok(clock.now() - start >= 800 && clock.now() - start < 900);

    // The primary dies with no backup while a write is on its way to it (the
    // network's latency is 1-3 ms): it may have applied.
    s.start("s1");
    await s.ready("s1", "primary");
    await clerk.put("a", "1");
    clock.setTimer(0.5, () => s.kill("s1"));
    const put = await clerk.put("a", "2", { timeoutMs: 500 }).catch((e) => e);
    assert.ok(put instanceof RequestTimeoutError && put.mayHaveApplied, `got ${put}`);
    assert.match(put.message, /s1 is unreachable/);
    // A write made once it is gone is never sent: certainly not applied.
    const unsent = await clerk.put("a", "3", { timeoutMs: 500 }).catch((e) => e);
    assert.ok(unsent instanceof RequestTimeoutError && !unsent.mayHaveApplied, `got ${unsent}`);

    const controller = new AbortController();
    clock.setTimer(300, () => controller.abort(new Error("user gave up")));
    const aborted = await clerk.get("a", { signal: controller.signal, timeoutMs: 10_000 })
      .catch((e) => e);
    assert.ok(
      aborted instanceof RequestAbortedError,
      `expected RequestAbortedError, got ${aborted}`,
    );
    assert.equal(clock.now() - start >= 300, true);
    s.close();
  }, { seed: 8 });
});

Deno.test("parsePbWrite: a clean copy of a well-formed write", () => {
  const w = parsePbWrite(
    { client: "c", seq: 3, op: "append", key: "k", value: "v", extra: "dropped" },
    PB_KV_LIMITS,
  );
  assert.deepEqual(w, { client: "c", seq: 3, op: "append", key: "k", value: "v" });
  assert.throws(
    () => parsePbWrite({ client: "c", seq: 1, op: "put", key: "k" }, PB_KV_LIMITS),
    ArgumentsError,
  );
});

Deno.test("PbStore: pages of bounded size that rebuild the same store", () => {
  const store = new PbStore();
  for (let i = 0; i < 50; i++) {
    store.apply({
      client: `c${i % 7}`,
      seq: i + 1,
      op: "put",
      key: `key${i}`,
      value: "v".repeat(i * 10),
    });
  }
  const big = "b".repeat(5000);
  store.apply({ client: "big", seq: 1, op: "put", key: "big", value: big });
  const pages = [...store.pages(1000)];
  assert.ok(pages.length > 10, `${pages.length} pages`);
  for (const page of pages) {
    const bytes = page.data.reduce((n, [k, v]) => n + k.length + v.length, 0);
    assert.ok(bytes <= 1000 || page.data.length === 1, `a page of ${bytes} bytes`);
  }
  const assembler = new PageAssembler();
  for (const page of pages) assembler.add(page.data, page.sessions);
  const copy = assembler.finish();
  assert.deepEqual(copy.copy(), store.copy());
  // The deduplication table came along: a retry is recognised, a new write is not.
  assert.equal(
    copy.check({ client: "big", seq: 1, op: "put", key: "big", value: big }).kind,
    "done",
  );
  assert.equal(copy.check({ client: "big", seq: 2, op: "put", key: "big", value: "" }).kind, "new");
  // An empty store is one empty page.
  assert.deepEqual([...new PbStore().pages(1000)], [{ data: [], sessions: [] }]);
  assert.throws(() => new PageAssembler().add([["k", 1]], []), ArgumentsError);
  const bad = new PageAssembler();
  bad.add([], [["c", { seq: "x" }]]);
  assert.throws(() => bad.finish(), ArgumentsError);
});

Deno.test("PrimaryBackupServer: a primary answers clients only once the view service has its acknowledgement", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    s.start("s1");
    await s.ready("s1", "primary");
    const end = s.end("c", "s1");
    assert.equal(
      (await call(end, "Write", { client: "c", seq: 1, op: "put", key: "k", value: "1" })).status,
      "ok",
    );
    // s2 joins; s1 learns view 2 and brings s2 up to date (slowly), but its
    // pings no longer reach the view service.
    net.setLinkRule("s1", "s2", { delayMs: [200, 200] });
    const s2 = s.start("s2");
    const s1 = s.servers.get("s1")!;
    for (let i = 0; i < 100 && s1.status().view.num !== 2; i++) await delay(5, { clock });
    net.setLinkRule("s1", "vs", { dropRequests: 1 });
    net.setLinkRule("s1", "s2", undefined);
    for (let i = 0; i < 200 && !s2.status().ready; i++) await delay(10, { clock });
    await delay(500, { clock }); // s1 would have acknowledged by now
    assert.deepEqual(s2.data(), new Map([["k", "1"]]), "the backup has the state");
    const refused = await call(end, "Get", { key: "k" });
    assert.equal(refused.status, "wrong-server");
    assert.match(String(refused.reason), /waits for the view service to record/);
    // Had it answered and then died, view 2 could never be left; now it can:
    s.kill("s1");
    net.setLinkRule("s1", "vs", undefined);
    assert.equal(s.vs.view.num, 2);
    assert.equal(s.vs.view.primary, "s1");
    const clerk = new PrimaryBackupClerk(net.transportFor("c2"), {
      id: "c2",
      viewService: "vs",
      clock,
      timeoutMs: 3000,
    });
    const err = await clerk.get("k").catch((e) => e);
    assert.ok(
      err instanceof RequestTimeoutError,
      "view 2 was never acknowledged: nobody may serve",
    );
    s.close();
  }, { seed: 4 });
});

/** Waits until the view's primary serves and its backup (if any, or `backup`) holds the state. */
async function stable(s: Setup, backup?: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const v = s.vs.view;
    if (backup !== undefined && v.backup !== backup) {
      await delay(5, { clock: s.clock });
      continue;
    }
    const p = s.servers.get(v.primary)?.status();
    const b = v.backup === "" ? undefined : s.servers.get(v.backup)?.status();
    if (
      p?.ready && p.acknowledged === v.num && p.view.num === v.num &&
      (v.backup === "" || (b?.ready === true && b.view.num === v.num))
    ) return;
    await delay(5, { clock: s.clock });
  }
  assert.fail(`never stable: view ${JSON.stringify(s.vs.view)}`);
}

Deno.test("PrimaryBackupServer: a forward's late ok does not apply the write to a store a transfer replaced", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    const slow = { callTimeoutMs: 3000 };
    const s1 = s.start("s1", slow);
    await stable(s);
    const s2 = s.start("s2", slow);
    await stable(s, "s2");
    const clerk = new PrimaryBackupClerk(net.transportFor("c"), {
      id: "c",
      viewService: "vs",
      clock,
      attemptTimeoutMs: 5000,
    });
    await clerk.put("k", "a");
    s.slowForward.s2 = 1500; // s2 applies the append at once; its ok is slow
    // s1 looks dead (view 3: s2 alone), then comes back as s2's backup (view 4).
    net.setLinkRule("s1", "vs", { dropRequests: 1 });
    const append = clerk.append("k", "x");
    await delay(650, { clock });
    net.setLinkRule("s1", "vs", undefined);
    s.slowForward.s2 = 0;
    await append;
    await stable(s);
    assert.deepEqual(s.vs.view, { num: 4, primary: "s2", backup: "s1" });
    assert.equal(s2.data().get("k"), "ax");
    assert.equal(s1.data().get("k"), "ax", "the append applied twice");
    s.kill("s2");
    assert.equal(await clerk.get("k"), "ax");
    s.close();
  }, { seed: 21 });
});

Deno.test("PrimaryBackupServer: a forward that arrives after the transfer it caused is refused", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    const s1 = s.start("s1");
    await stable(s);
    const s2 = s.start("s2");
    await stable(s, "s2");
    const a = new PrimaryBackupClerk(net.transportFor("a"), { viewService: "vs", clock, id: "a" });
    const b = new PrimaryBackupClerk(net.transportFor("b"), { viewService: "vs", clock, id: "b" });
    net.setLinkRule("s1", "s2", { delayMs: [1500, 1500] }); // this forward only: taken at its call
    const pending = a.append("k", "a", { timeoutMs: 1010 }).catch((e) => e);
    await delay(50, { clock });
    net.setLinkRule("s1", "s2", undefined);
    assert.ok((await pending) instanceof RequestTimeoutError);
    await stable(s); // s1 copied its state to s2 again
    await delay(500, { clock }); // the old forward arrives now
    assert.deepEqual([...s2.data()], [...s1.data()], "the straggler changed the backup");
    await b.append("k", "b");
    const before = await b.get("k");
    s.kill("s1");
    assert.equal(await b.get("k"), before, "the backup disagrees with what the primary served");
    s.close();
  }, { seed: 22 });
});

Deno.test("PrimaryBackupServer: a start-up ping that arrives late is not taken for a restart", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new Setup(net, clock);
    let held = false;
    s.holdPing = (server, num) => {
      if (server !== "s1" || num !== 0 || held) return 0;
      held = true;
      return 250;
    };
    const s1 = s.start("s1");
    await stable(s);
    const clerk = new PrimaryBackupClerk(net.transportFor("c"), {
      id: "c",
      viewService: "vs",
      clock,
    });
    await clerk.put("k", "v");
    await delay(500, { clock });
    s.start("s2");
    await delay(3000, { clock });
    assert.equal(s1.status().ready, true);
    assert.deepEqual(s.vs.view, { num: 2, primary: "s1", backup: "s2" });
    s.close();
  }, { seed: 23 });
});
