import assert from "node:assert/strict";
import { TimeoutError } from "../net/errors.ts";
import {
  mayHaveApplied,
  OutcomeUnknownError,
  OverloadedError,
  refuseBadRequest,
  RequestAbortedError,
  RequestError,
  RequestTimeoutError,
  ServiceError,
  WrongLeaderError,
} from "./errors.ts";
import { ambiguousIfProposed } from "./replica_client.ts";

const tried = [{ server: "a", error: "connection refused" }];

/** One of each, from service `lock`. */
function family(): ServiceError[] {
  return [
    new RequestError("lock", "name must not be empty"),
    new RequestAbortedError("lock", 'lock of "p"', { mayHaveApplied: true }),
    new RequestTimeoutError("lock", 'lock of "p"', { mayHaveApplied: false, deadlineMs: 5, tried }),
    new OutcomeUnknownError("lock", 'lock of "p"', { reason: "both servers failed" }),
    new WrongLeaderError("lock", null),
    new OverloadedError("lock", "64 writes are in progress"),
  ];
}

Deno.test("errors: every one names its service, in a field and at the start of its message", () => {
  for (const err of family()) {
    assert.ok(err instanceof ServiceError && err instanceof Error, err.name);
    assert.equal(err.service, "lock", err.name);
    assert.ok(err.message.startsWith("lock: "), err.message);
    assert.equal(err.detail, err.message.slice("lock: ".length), err.name);
    assert.ok(!err.detail.startsWith("lock: "), `${err.name}: the name once, not twice`);
    assert.equal(err.name, err.constructor.name);
  }
});

Deno.test("errors: mayHaveApplied is true exactly for the errors that leave a write open", () => {
  const open = family().filter(mayHaveApplied).map((e) => e.name);
  assert.deepEqual(open, ["RequestAbortedError", "OutcomeUnknownError"]);
  assert.equal(new OverloadedError("kv", "full").mayHaveApplied, false);
  assert.equal(
    mayHaveApplied(new RequestAbortedError("kv", "get", { mayHaveApplied: false })),
    false,
  );
  for (const other of [new Error("x"), new TimeoutError("KV.Get", 100), null, undefined, "text"]) {
    assert.equal(mayHaveApplied(other), false, String(other));
  }
});

Deno.test("errors: a timeout is an abort, and says each server and what to do", () => {
  const ok = new RequestTimeoutError("kv", "get", { mayHaveApplied: false, deadlineMs: 5, tried });
  assert.ok(ok instanceof RequestAbortedError);
  assert.equal(
    ok.message,
    "kv: get: no answer within 5 ms; tried a (connection refused); check that the servers " +
      "are up and reachable, then retry",
  );
  const open = new RequestTimeoutError("kv", "put", { mayHaveApplied: true, deadlineMs: 5, tried });
  assert.match(open.message, /tried a \(connection refused\); it may or may not have taken effect/);
  assert.equal(open.detail, open.message.slice("kv: ".length));
});

Deno.test("errors: refuseBadRequest turns a parser's complaint into the service's RequestError", () => {
  assert.equal(refuseBadRequest("kv", () => 7), 7);
  const complaint = new TypeError("key must be a string");
  assert.throws(
    () =>
      refuseBadRequest("shard", () => {
        throw complaint;
      }),
    (err) =>
      err instanceof RequestError && err.service === "shard" && err.cause === complaint &&
      err.message === "shard: request refused: key must be a string",
  );
});

Deno.test("errors: ambiguousIfProposed names the caller's service, and quotes without doubling it", () => {
  const refusal = new WrongLeaderError("kv", "b");
  const before = { service: "kv", operation: "put", attempts: { mayHaveApplied: false } };
  const after = { service: "kv", operation: "put", attempts: { mayHaveApplied: true } };
  assert.equal(ambiguousIfProposed(refusal, before), refusal);
  assert.equal(ambiguousIfProposed(refusal, { service: "kv", operation: "get" }), refusal);

  const unknown = ambiguousIfProposed(refusal, after);
  assert.ok(unknown instanceof OutcomeUnknownError);
  assert.equal(unknown.service, "kv");
  assert.equal(unknown.cause, refusal);
  assert.equal(unknown.reason, refusal.detail);
  assert.match(unknown.message, /^kv: put: outcome unknown \(the server asked does not lead/);

  const timeout = new RequestTimeoutError("kv", "put", {
    mayHaveApplied: false,
    deadlineMs: 5,
    tried,
  });
  const open = ambiguousIfProposed(timeout, after);
  assert.ok(open instanceof RequestTimeoutError && open.mayHaveApplied, String(open));
  assert.deepEqual(open.tried, tried);

  const aborted = new RequestAbortedError("kv", "put", { mayHaveApplied: false });
  const openAbort = ambiguousIfProposed(aborted, after);
  assert.ok(openAbort instanceof RequestAbortedError && openAbort.mayHaveApplied);

  // A transport's error from a write that may have been proposed: the service named is the caller's.
  const lost = ambiguousIfProposed(new TimeoutError("KV.Put", 100), {
    ...after,
    service: "shard",
  });
  assert.ok(lost instanceof OutcomeUnknownError && lost.service === "shard", String(lost));
});
