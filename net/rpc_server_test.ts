import assert from "node:assert/strict";
import {
  ArgumentsError,
  expectShape,
  failureOf,
  RemoteError,
  RpcServer,
  TimeoutError,
  UnknownMethodError,
  UnknownServiceError,
} from "./mod.ts";

class Counter {
  #n = 0;
  Add(by: number): number {
    this.#n += by;
    return this.#n;
  }
}

Deno.test("rpc server: plain objects and class instances are services", async () => {
  const server = new RpcServer();
  server.addService("Obj", {
    Echo: (x: unknown) => x,
    Ctx: (_: unknown, c: { method: string }) => c.method,
  });
  server.addService("Counter", new Counter());
  assert.equal(await server.dispatch("Obj.Echo", 5), 5);
  assert.equal(await server.dispatch("Obj.Ctx", null), "Obj.Ctx");
  assert.equal(await server.dispatch("Counter.Add", 2), 2);
  assert.equal(await server.dispatch("Counter.Add", 3), 5, "methods are bound to the instance");
  assert.deepEqual(server.serviceNames, ["Obj", "Counter"]);
});

Deno.test("rpc server: unknown names, prototype names and bad registrations", async () => {
  const server = new RpcServer();
  server.addService("S", { M: () => 1 });
  await assert.rejects(server.dispatch("T.M", null), UnknownServiceError);
  await assert.rejects(server.dispatch("S.N", null), UnknownMethodError);
  await assert.rejects(server.dispatch("S", null), UnknownMethodError);
  await assert.rejects(server.dispatch("S.constructor", null), UnknownMethodError);
  await assert.rejects(server.dispatch("S.toString", null), UnknownMethodError);
  await assert.rejects(server.dispatch("S.__proto__", null), UnknownMethodError);
  assert.throws(() => server.addService("S", { M: () => 1 }), /already registered/);
  assert.throws(() => server.addService("A.B", { M: () => 1 }), /no dot/);
  assert.throws(() => server.addService("Empty", {}), /no methods/);
  server.removeService("S");
  await assert.rejects(server.dispatch("S.M", null), UnknownServiceError);
});

Deno.test("expectShape: names the first wrong field", () => {
  const shape = {
    key: "string",
    n: "integer?",
    list: "array",
    data: "bytes?",
    o: "object?",
  } as const;
  assert.deepEqual(expectShape({ key: "k", list: [] }, shape), { key: "k", list: [] });
  assert.throws(() => expectShape(null, shape), /must be an object, got null/);
  assert.throws(() => expectShape([], shape), /got an array/);
  assert.throws(() => expectShape({ list: [] }, shape), /missing field "key"/);
  assert.throws(
    () => expectShape({ key: 1, list: [] }, shape),
    /field "key" must be string, got number/,
  );
  assert.throws(() => expectShape({ key: "k", n: 1.5, list: [] }, shape), ArgumentsError);
  assert.throws(() => expectShape({ key: "k", list: [], data: "x" }, shape), /bytes/);
  assert.throws(() => expectShape({ key: "k", list: [], o: [] }, shape), /must be object/);
});

Deno.test("RemoteError takes its code and cause as options", () => {
  const cause = new Error("root");
  const err = new RemoteError("KV.Get", { remoteName: "E", message: "m" }, {
    code: "bad_arguments",
    cause,
  });
  assert.equal(err.code, "bad_arguments");
  assert.equal(err.cause, cause);
  assert.equal(new RemoteError("KV.Get", { remoteName: "E", message: "m" }).code, "remote");
  assert.equal(new UnknownMethodError("KV.Nope").code, "unknown_method");
});

Deno.test("rpc server: a failure of a call the handler made is not passed off as the caller's own", async () => {
  const inner = new RpcServer();
  inner.addService("Inner", { Ok: () => 1 });
  const outer = new RpcServer();
  outer.addService("Outer", {
    // As if the handler called another server and that call failed.
    Nested: () => inner.dispatch("Inner.Missing", null),
    Slow: () => {
      throw new TimeoutError("Inner.Ok", 10);
    },
  });
  const nested = await outer.dispatch("Outer.Nested", null).catch((e) => e);
  assert.ok(nested instanceof RemoteError && !(nested instanceof UnknownMethodError));
  assert.equal(nested.code, "remote");
  assert.equal(nested.remoteName, "UnknownMethodError");
  assert.deepEqual(failureOf(nested).code, "remote");
  const slow = await outer.dispatch("Outer.Slow", null).catch((e) => e);
  assert.ok(
    slow instanceof RemoteError && slow.code === "remote",
    "a nested timeout is not the caller's timeout",
  );
  // The server's own refusals keep their kinds.
  await assert.rejects(outer.dispatch("Outer.Missing", null), UnknownMethodError);
});
