/**
 * The labrpc scenarios of LABS.md §1, against the simulated network, in
 * virtual time. Each test runs under `simulate`, so a failure names its seed.
 */
import assert from "node:assert/strict";
import {
  AbortedError,
  CodecError,
  delay,
  Random,
  RemoteError,
  RpcServer,
  type SimEnd,
  SimNetwork,
  simulate,
  TimeoutError,
  UnreachableError,
  VirtualClock,
} from "../net/mod.ts";

/** The course's JunkServer: handlers of several argument and reply kinds. */
function junkServer(log: string[] = []): RpcServer {
  const server = new RpcServer();
  server.addService("JunkServer", {
    Handler1: (args: string) => Number.parseInt(args, 10),
    Handler2: (args: number) => `handler2-${args}`,
    Handler4: (args: { X: string }) => ({ X: `pointer-${args.X}` }),
    Handler5: (args: { X: string }) => ({ X: `no-pointer-${args.X}` }),
    Handler6: (args: string) => args.length,
    Handler7: (args: number) => "y".repeat(args),
    Append: (args: string) => {
      log.push(args);
      return log.length;
    },
    Mutate: (args: { items: number[] }) => {
      args.items.push(99);
      return args.items.length;
    },
  });
  return server;
}

Deno.test("labrpc: basic round trip", async () => {
  await simulate(async ({ net }) => {
    const end = net.makeEnd("end1-99");
    net.addServer("server99", junkServer());
    net.connect("end1-99", "server99");
    net.enable("end1-99", true);
    assert.equal(await end.call("JunkServer.Handler2", 111), "handler2-111");
    assert.equal(await end.call("JunkServer.Handler1", "9099"), 9099);
  });
});

Deno.test("labrpc: pointer- and value-style arguments are copies, never shared", async () => {
  await simulate(async ({ net }) => {
    const end = net.makeEnd("end1-99");
    net.addServer("server99", junkServer());
    net.connect("end1-99", "server99");
    net.enable("end1-99", true);
    assert.deepEqual(await end.call("JunkServer.Handler4", { X: "a" }), { X: "pointer-a" });
    assert.deepEqual(await end.call("JunkServer.Handler5", { X: "b" }), { X: "no-pointer-b" });
    const args = { items: [1, 2] };
    assert.equal(await end.call("JunkServer.Mutate", args), 3);
    assert.deepEqual(args.items, [1, 2], "the handler mutated the caller's object");
    const bytes = new Uint8Array([0, 1, 255]);
    const server = new RpcServer();
    server.addService("Bytes", { Echo: (b: Uint8Array) => b });
    net.addServer("bytes", server);
    const end2 = net.makeEnd("end2");
    net.connect("end2", "bytes");
    net.enable("end2", true);
    const echoed = await end2.call<Uint8Array>("Bytes.Echo", bytes);
    assert.deepEqual([...echoed], [0, 1, 255]);
    assert.notEqual(echoed, bytes);
  });
});

Deno.test("labrpc: a disabled end gets no reply; it works after enable", async () => {
  await simulate(async ({ net }) => {
    const end = net.makeEnd("end1-99");
    net.addServer("server99", junkServer());
    net.connect("end1-99", "server99");
    await assert.rejects(end.call("JunkServer.Handler2", 111), UnreachableError);
    assert.equal(net.count("server99"), 0);
    net.enable("end1-99", true);
    assert.equal(await end.call("JunkServer.Handler2", 111), "handler2-111");
    assert.equal(net.count("server99"), 1);
  });
});

Deno.test("labrpc: per-server count is 17 after 17 calls", async () => {
  await simulate(async ({ net }) => {
    const end = net.makeEnd("end1-99");
    net.addServer("server99", junkServer());
    net.connect("end1-99", "server99");
    net.enable("end1-99", true);
    for (let i = 0; i < 17; i++) {
      assert.equal(await end.call("JunkServer.Handler2", 111), "handler2-111");
    }
    assert.equal(net.count("server99"), 17);
    assert.equal(net.totalCalls, 17);
  });
});

Deno.test("labrpc: byte accounting is in the course's ranges", async () => {
  await simulate(async ({ net }) => {
    const end = net.makeEnd("end1-99");
    net.addServer("server99", junkServer());
    net.connect("end1-99", "server99");
    net.enable("end1-99", true);
    const arg = "x".repeat(288);
    for (let i = 0; i < 17; i++) {
      assert.equal(await end.call("JunkServer.Handler6", arg), 288);
    }
    const n = net.totalBytes;
    assert.ok(n >= 4828 && n <= 6000, `17 calls of a 288-char string: ${n} bytes, want 4828..6000`);
    for (let i = 0; i < 17; i++) {
      assert.equal(await end.call("JunkServer.Handler7", 107), "y".repeat(107));
    }
    const nn = net.totalBytes - n;
    assert.ok(nn >= 1800 && nn <= 2500, `17 replies of 107 chars: ${nn} bytes, want 1800..2500`);
  });
});

Deno.test("labrpc: 20 ends x 10 concurrent calls are all correct; count is 200", async () => {
  await simulate(async ({ net }) => {
    net.addServer("1000", junkServer());
    const clients = Array.from({ length: 20 }, async (_, i) => {
      const name = `end-${i}`;
      const end = net.makeEnd(name);
      net.connect(name, "1000");
      net.enable(name, true);
      let ok = 0;
      for (let j = 0; j < 10; j++) {
        const arg = i * 100 + j;
        if ((await end.call("JunkServer.Handler2", arg)) === `handler2-${arg}`) ok++;
      }
      return ok;
    });
    const oks = await Promise.all(clients);
    assert.equal(oks.reduce((a, b) => a + b, 0), 200);
    assert.equal(net.count("1000"), 200);
  });
});

Deno.test("labrpc: unreliable network: some but not all of 300 calls succeed", async () => {
  await simulate(async ({ net }) => {
    net.setReliable(false);
    net.addServer("1000", junkServer());
    const results = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const name = `end-${i}`;
      const end = net.makeEnd(name);
      net.connect(name, "1000");
      net.enable(name, true);
      try {
        const reply = await end.call("JunkServer.Handler2", i);
        assert.equal(reply, `handler2-${i}`);
        return true;
      } catch (err) {
        assert.ok(err instanceof UnreachableError, `unexpected failure ${err}`);
        return false;
      }
    }));
    const ok = results.filter(Boolean).length;
    assert.ok(ok > 0 && ok < 300, `${ok} of 300 succeeded; want some but not all`);
    // 10 % of requests and 10 % of replies are dropped: about 81 % succeed.
    assert.ok(ok > 200 && ok < 280, `${ok} of 300 succeeded; want about 243`);
  });
});

Deno.test("labrpc: 20 concurrent calls on one end are each delivered once", async () => {
  await simulate(async ({ net }) => {
    const log: string[] = [];
    net.addServer("1000", junkServer(log));
    const end = net.makeEnd("c");
    net.connect("c", "1000");
    net.enable("c", true);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => end.call("JunkServer.Append", `call-${i}`)),
    );
    assert.equal(net.count("1000"), 20);
    assert.deepEqual([...log].sort(), Array.from({ length: 20 }, (_, i) => `call-${i}`).sort());
  });
});

Deno.test("labrpc: calls made while disabled are never delivered later (regression 1)", async () => {
  await simulate(async ({ net, clock }) => {
    const log: string[] = [];
    net.addServer("1000", junkServer(log));
    const end = net.makeEnd("c");
    net.connect("c", "1000");
    // Disabled: 20 concurrent calls all fail, none delivered.
    const failed = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => end.call("JunkServer.Append", `early-${i}`).then(() => false, () => true),
      ),
    );
    assert.ok(failed.every(Boolean));
    assert.equal(net.count("1000"), 0);
    net.enable("c", true);
    const t0 = clock.now();
    assert.equal(await end.call("JunkServer.Append", "late"), 1);
    assert.ok(clock.now() - t0 < 30, `took ${clock.now() - t0} ms`);
    await delay(10_000, { clock }); // nothing sent earlier may arrive now
    assert.equal(net.count("1000"), 1);
    assert.deepEqual(log, ["late"]);
  });
});

Deno.test("labrpc: a call into a removed server whose handler sleeps fails within 100 ms", async () => {
  await simulate(async ({ net, clock }) => {
    const server = new RpcServer();
    let finished = false;
    server.addService("Slow", {
      Sleep: async () => {
        await delay(5_000, { clock });
        finished = true;
        return "done";
      },
    });
    net.addServer("s", server);
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    const call = end.call("Slow.Sleep").then(() => "replied", (e) => e);
    await delay(1_000, { clock });
    net.deleteServer("s");
    const t0 = clock.now();
    const outcome = await call;
    assert.ok(outcome instanceof UnreachableError, `got ${outcome}`);
    assert.ok(clock.now() - t0 < 100, `failed after ${clock.now() - t0} ms`);
    await delay(10_000, { clock });
    assert.ok(finished, "the handler itself still ran to completion");
  });
});

Deno.test("labrpc: a replaced server never delivers a positive reply from its predecessor", async () => {
  await simulate(async ({ net, clock }) => {
    const old = new RpcServer();
    old.addService("S", {
      Slow: async () => {
        await delay(500, { clock });
        return "old";
      },
    });
    net.addServer("s", old);
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    const call = end.call("S.Slow").then((v) => v, (e) => e);
    await delay(100, { clock });
    const fresh = new RpcServer();
    fresh.addService("S", { Slow: () => "new" });
    net.addServer("s", fresh);
    assert.ok((await call) instanceof UnreachableError);
    assert.equal(await end.call("S.Slow"), "new");
  });
});

Deno.test("labrpc: undeliverable calls fail after 0-100 ms, or 0-7000 ms with long delays", async () => {
  await simulate(async ({ net, clock }) => {
    const end = net.makeEnd("c"); // never connected
    const wait = async () => {
      const t0 = clock.now();
      await assert.rejects(end.call("X.Y"), UnreachableError);
      return clock.now() - t0;
    };
    const short = await Promise.all(Array.from({ length: 50 }, wait));
    assert.ok(Math.max(...short) < 100, `short failures up to ${Math.max(...short)} ms`);
    net.setLongDelays(true);
    const long = await Promise.all(Array.from({ length: 50 }, wait));
    assert.ok(
      Math.max(...long) < 7000 && Math.max(...long) > 1000,
      `long failures up to ${Math.max(...long)} ms`,
    );
  });
});

Deno.test("labrpc: long reordering delays about 2/3 of replies by 200-2200 ms", async () => {
  await simulate(async ({ net, clock }) => {
    net.setLongReordering(true);
    net.addServer("s", junkServer());
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    const times = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const t0 = clock.now();
      assert.equal(await end.call("JunkServer.Handler2", i), `handler2-${i}`);
      return clock.now() - t0;
    }));
    const delayed = times.filter((t) => t >= 200);
    assert.ok(times.every((t) => t === 0 || (t >= 200 && t <= 2200)), "delays out of range");
    assert.ok(delayed.length > 150 && delayed.length < 250, `${delayed.length} of 300 delayed`);
  });
});

Deno.test("sim network: named partitions block calls across groups until heal", async () => {
  await simulate(async ({ net }) => {
    const names = ["a", "b", "c", "d", "e"];
    for (const n of names) {
      const s = new RpcServer();
      s.addService("Node", { Name: () => n });
      net.addServer(n, s);
    }
    const transports = new Map(names.map((n) => [n, net.transportFor(n)]));
    const ends = new Map(
      names.flatMap((from) =>
        names.filter((to) => to !== from).map((
          to,
        ) => [`${from}${to}`, transports.get(from)!.connect(to)])
      ),
    );
    const reach = async (from: string, to: string) =>
      await ends.get(`${from}${to}`)!.call("Node.Name").then((v) => v === to, () => false);
    net.partition(["a", "b"], ["c", "d", "e"]);
    assert.equal(await reach("a", "b"), true);
    assert.equal(await reach("c", "e"), true);
    assert.equal(await reach("a", "c"), false);
    assert.equal(await reach("e", "b"), false);
    // An outside client (no owner) is not restricted.
    const outside = net.makeEnd("outside");
    net.connect("outside", "a");
    net.enable("outside", true);
    assert.equal(await outside.call("Node.Name"), "a");
    net.heal();
    assert.equal(await reach("a", "c"), true);
    assert.equal(await reach("e", "b"), true);
    assert.equal(ends.get("ab")!.peer, "b");
  });
});

Deno.test("sim network: a partition cuts calls already in flight across it", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new RpcServer();
    s.addService("S", { Slow: () => delay(1_000, { clock }).then(() => "late") });
    net.addServer("b", s);
    const end = net.transportFor("a").connect("b");
    const call = end.call("S.Slow").then((v) => v, (e) => e);
    await delay(10, { clock });
    net.partition(["a"], ["b"]);
    assert.ok((await call) instanceof UnreachableError);
  });
});

Deno.test("sim network: link rules drop, delay and duplicate per direction", async () => {
  await simulate(async ({ net, clock }) => {
    const log: string[] = [];
    net.addServer("b", junkServer(log));
    net.addServer("c", junkServer());
    const ab = net.transportFor("a").connect("b");
    const ac = net.transportFor("a").connect("c");
    net.setLinkRule("a", "b", { dropRequests: 1 });
    await assert.rejects(ab.call("JunkServer.Handler2", 1), UnreachableError);
    assert.equal(await ac.call("JunkServer.Handler2", 1), "handler2-1", "a->c is unaffected");
    net.setLinkRule("a", "b", { delayMs: [300, 300] });
    const t0 = clock.now();
    assert.equal(await ab.call("JunkServer.Handler2", 2), "handler2-2");
    assert.equal(clock.now() - t0, 300);
    net.setLinkRule("a", "b", { duplicate: 1 });
    await ab.call("JunkServer.Append", "once");
    await delay(1, { clock });
    assert.deepEqual(log, ["once", "once"], "the request was delivered twice");
    net.setLinkRule("a", "b", { dropReplies: 1 });
    await assert.rejects(ab.call("JunkServer.Append", "ran"), UnreachableError);
    assert.equal(log.at(-1), "ran", "a dropped reply still ran the handler");
    net.setLinkRule("a", "b", undefined);
    net.setLinkRule("*", "*", { dropRequests: 1 });
    await assert.rejects(ac.call("JunkServer.Handler2", 3), UnreachableError);
  });
});

Deno.test("sim network: a link rule that cannot work is refused when it is set", () => {
  const net = new SimNetwork({ clock: new VirtualClock(), random: new Random(1) });
  // It used to be accepted, and then every call on the link failed with a RangeError.
  assert.throws(() => net.setLinkRule("a", "b", { delayMs: [50, 10] }), /0 <= min <= max/);
  assert.throws(() => net.setLinkRule("a", "b", { delayMs: [0.5, 10] }), /whole milliseconds/);
  assert.throws(() => net.setLinkRule("a", "b", { dropRequests: 10 }), /probability from 0 to 1/);
  assert.throws(() => net.setLinkRule("a", "b", { duplicate: NaN }), /duplicate/);
  assert.throws(() => net.partition(["a"], ["a", "b"]), /"a" appears in two .* at most one/);
  net.setLinkRule("a", "b", { dropReplies: 0, delayMs: [0, 0] });
});

Deno.test("sim network: deadlines, handler errors, unknown methods", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new RpcServer();
    s.addService("S", {
      Hang: () => new Promise(() => {}),
      Boom: () => {
        throw new TypeError("boom");
      },
    });
    net.addServer("s", s);
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    const t0 = clock.now();
    await assert.rejects(end.call("S.Hang", {}, { timeoutMs: 250 }), TimeoutError);
    assert.equal(clock.now() - t0, 250);
    await assert.rejects(
      end.call("S.Boom"),
      (e) => e instanceof RemoteError && e.remoteName === "TypeError",
    );
    await assert.rejects(end.call("S.Nope"), (e: RemoteError) => e.code === "unknown_method");
    await assert.rejects(end.call("Nope.Nope"), (e: RemoteError) => e.code === "unknown_service");
  });
});

/** Runs a busy unreliable, reordering scenario and returns its event trace. */
async function traceOf(seed: number): Promise<string[]> {
  return await simulate(async ({ net, clock, random }) => {
    net.setReliable(false);
    net.setLongReordering(true);
    const log: string[] = [];
    for (const n of ["s0", "s1", "s2"]) net.addServer(n, junkServer(log));
    await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const end = net.transportFor(`c${i}`).connect(`s${i % 3}`);
      for (let j = 0; j < 5; j++) {
        await delay(random.int(50), { clock });
        await end.call("JunkServer.Append", `${i}.${j}`).catch(() => {});
      }
    }));
    return net.trace.map((e) => `${e.at} ${e.kind} ${e.end} ${e.server} ${e.method}`).concat(log);
  }, { seed, trace: true });
}

Deno.test("simulation: the same seed replays the same trace; another seed differs", async () => {
  const a = await traceOf(12345);
  const b = await traceOf(12345);
  const c = await traceOf(54321);
  assert.ok(a.length > 300, `trace has ${a.length} events`);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("labrpc: 100,000 sequential calls (benchmark figure)", async () => {
  const clock = new VirtualClock();
  const net = new SimNetwork({ clock, random: new Random(1) });
  net.addServer("s", junkServer());
  const end = net.makeEnd("c");
  net.connect("c", "s");
  net.enable("c", true);
  const t0 = performance.now();
  await clock.run(async () => {
    for (let i = 0; i < 100_000; i++) await end.call("JunkServer.Handler2", i);
  });
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `  100,000 sequential simulated calls in ${
      secs.toFixed(2)
    } s (Go labrpc on this machine: about 1.55 s; see BENCHMARKS.md)`,
  );
  assert.equal(net.count("s"), 100_000);
});

Deno.test("labrpc: no reply is delivered once the server is killed or the end cut", async () => {
  // labrpc checks isServerDead once more after the handler returned. Kill the
  // server (or disable the end) n microtasks after the handler returns, for
  // every n up to well past the time the reply takes to come back; the trace
  // must never show a reply handed over after the kill.
  await simulate(async ({ net, clock }) => {
    for (const how of ["delete", "replace", "disable"] as const) {
      for (let n = 0; n < 40; n++) {
        const name = `s-${how}-${n}`;
        const endName = `c-${name}`;
        let killedAt = -1;
        const server = new RpcServer();
        server.addService("S", {
          Put: () => {
            let chain = Promise.resolve();
            for (let i = 0; i < n; i++) chain = chain.then(() => {});
            chain.then(() => {
              killedAt = net.trace.length;
              if (how === "delete") net.deleteServer(name);
              else if (how === "replace") net.addServer(name, junkServer());
              else net.enable(endName, false);
            });
            return "positive";
          },
        });
        net.addServer(name, server);
        const end = net.makeEnd(endName);
        net.connect(endName, name);
        net.enable(endName, true);
        const outcome = await end.call("S.Put").then((v) => v, (e) => e);
        await delay(0, { clock }); // every microtask has run
        assert.ok(killedAt >= 0, "the kill ran");
        const replyAt = net.trace.findIndex((e) => e.kind === "reply" && e.end === endName);
        if (replyAt >= 0) {
          assert.ok(replyAt < killedAt, `${how} after ${n} microtasks: a reply after the kill`);
          assert.equal(outcome, "positive");
        } else {
          assert.ok(outcome instanceof UnreachableError, `${how} after ${n}: ${outcome}`);
        }
      }
    }
  }, { trace: true });
});

Deno.test("sim network: a signal that already fired aborts the call before it is sent", async () => {
  // It used to send the call anyway and leave its failure unhandled, which
  // crashed the process.
  await simulate(async ({ net, clock }) => {
    net.addServer("s", junkServer());
    const disabled = net.makeEnd("disabled");
    net.connect("disabled", "s");
    const live = net.makeEnd("live");
    net.connect("live", "s");
    net.enable("live", true);
    const signal = AbortSignal.abort(new Error("not wanted"));
    for (const end of [disabled, live]) {
      await assert.rejects(
        end.call("JunkServer.Handler2", 1, { signal }),
        (e) => e instanceof AbortedError && (e.cause as Error).message === "not wanted",
      );
    }
    await delay(10_000, { clock });
    assert.equal(net.totalCalls, 0, "nothing was sent");
    assert.equal(net.count("s"), 0);
  });
});

Deno.test("sim network: timeoutMs Infinity never times out", async () => {
  await simulate(async ({ net, clock }) => {
    const s = new RpcServer();
    s.addService("S", { Slow: () => delay(3_600_000, { clock }).then(() => "done") });
    net.addServer("s", s);
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    assert.equal(await end.call("S.Slow", {}, { timeoutMs: Infinity }), "done");
    assert.equal(clock.now(), 3_600_000);
  });
});

Deno.test("sim network: an undeliverable call says why and what to do", async () => {
  await simulate(async ({ net }) => {
    net.addServer("s", junkServer());
    const reason = (end: { call(m: string): Promise<unknown> }) =>
      end.call("JunkServer.Handler2").then(() => "delivered", (e: Error) => e.message);
    const loose = net.makeEnd("loose");
    assert.match(await reason(loose), /"loose" is not connected .*connect\("loose", server\)/);
    net.connect("loose", "s");
    assert.match(await reason(loose), /"loose" is disabled; call enable\("loose", true\)/);
    net.connect("loose", "gone");
    net.enable("loose", true);
    assert.match(await reason(loose), /no server named "gone" .*addServer/);
    const ab = net.transportFor("a").connect("s");
    net.partition(["a"], ["s"]);
    assert.match(await reason(ab), /"a" and "s" are in different partition groups; heal\(\)/);
    assert.throws(() => net.makeEnd("loose"), /already exists; end names must be unique/);
  });
});

Deno.test("simulation: a long unreliable run holds only its live timers", async () => {
  // 5 servers, 20 clients calling every 10-100 ms with 30 s deadlines: each
  // call sets and cancels a deadline timer, and those must not pile up.
  const t0 = performance.now();
  let maxQueued = 0;
  let maxPending = 0;
  let calls = 0;
  await simulate(async ({ net, clock, random }) => {
    net.setReliable(false);
    const servers = ["s0", "s1", "s2", "s3", "s4"];
    for (const name of servers) net.addServer(name, junkServer());
    const until = 5 * 60_000;
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const transport = net.transportFor(`c${i}`);
      const ends = servers.map((s) => transport.connect(s));
      const r = random.fork();
      while (clock.now() < until) {
        await delay(r.between(10, 100), { clock });
        calls++;
        await r.pick(ends).call("JunkServer.Handler2", i, { timeoutMs: 30_000 }).catch(() => {});
        maxQueued = Math.max(maxQueued, clock.queuedTimers);
        maxPending = Math.max(maxPending, clock.pendingTimers);
      }
    }));
  }, { seed: 7 });
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `  ${calls} calls in 5 virtual minutes, ${secs.toFixed(2)} s wall; ` +
      `at most ${maxPending} live timers, ${maxQueued} held`,
  );
  assert.ok(calls > 70_000, `${calls} calls`);
  // About 4,300 deadlines are cancelled per 30 s of virtual time.
  assert.ok(maxQueued <= Math.max(1024, 2 * maxPending) + 1, `${maxQueued} timers held`);
});

Deno.test("sim network: a reply that cannot be encoded is reported as such", async () => {
  await simulate(async ({ net }) => {
    const s = new RpcServer();
    s.addService("S", { Fn: () => ({ f: () => 1 }) });
    net.addServer("s", s);
    const end = net.makeEnd("c");
    net.connect("c", "s");
    net.enable("c", true);
    const err = await end.call("S.Fn").then(() => undefined, (e) => e);
    assert.ok(err instanceof CodecError, `got ${err}`);
    // It used to say the server could not decode the request.
    assert.doesNotMatch(err.message, /decode the request/);
    assert.match(err.message, /S\.Fn: the reply could not be encoded: .*send only plain objects/);
  });
});

Deno.test("sim network: transportFor caches an end per peer; a second transport gets fresh names", async () => {
  await simulate(async ({ net }) => {
    const server = new RpcServer();
    server.addService("S", { Who: () => "b" });
    net.addServer("b", server);
    const first = net.transportFor("a");
    const end = first.connect("b");
    assert.equal(first.connect("b"), end, "the same end is handed out again");
    const restarted = net.transportFor("a").connect("b");
    assert.notEqual(restarted, end);
    assert.equal((restarted as SimEnd).name, "a->b#2");
    assert.equal(await restarted.call("S.Who"), "b");
    net.enable((end as SimEnd).name, false); // cutting the old instance leaves the new one working
    assert.equal(await restarted.call("S.Who"), "b");
  });
});
