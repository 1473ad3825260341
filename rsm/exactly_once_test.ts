import assert from "node:assert/strict";
import { ExactlyOnce, parseStampedWrite, type WriteOutcome } from "./exactly_once.ts";
import { ArgumentsError } from "../net/errors.ts";

/** A machine that counts its calls: the result is the call's number. */
function counter(): { calls: number; run: (command: unknown) => WriteOutcome<number> } {
  const c = {
    calls: 0,
    run: (_: unknown): WriteOutcome<number> => ({ result: ++c.calls }),
  };
  return c;
}

Deno.test("exactly-once: a retry gets the recorded outcome and runs nothing", () => {
  const once = new ExactlyOnce<number>();
  const m = counter();
  const write = once.entry({ client: "c", seq: 1, command: { op: "take" } });
  assert.deepEqual(once.apply(write, m.run), { result: 1 });
  assert.deepEqual(once.apply(write, m.run), { result: 1 });
  assert.equal(m.calls, 1);
  assert.deepEqual(once.recall({ client: "c", seq: 1, command: { op: "take" } }), { result: 1 });
  assert.equal(once.recall({ client: "c", seq: 2, command: { op: "take" } }), undefined);
});

Deno.test("exactly-once: another write under a used number is a conflict, not applied", () => {
  const once = new ExactlyOnce<number>();
  const m = counter();
  once.apply(once.entry({ client: "c", seq: 2, command: "a" }), m.run);
  const other = once.apply(once.entry({ client: "c", seq: 2, command: "b" }), m.run);
  assert.equal("error" in other && other.error, "conflict");
  const stale = once.apply(once.entry({ client: "c", seq: 1, command: "a" }), m.run);
  assert.equal("error" in stale && stale.error, "conflict");
  assert.equal(m.calls, 1);
  // A write without a session runs every time.
  once.apply(once.entry({ command: "raw" }), m.run);
  once.apply(once.entry({ command: "raw" }), m.run);
  assert.equal(m.calls, 3);
});

Deno.test("exactly-once: the table travels in the snapshot, undefined and error outcomes too", () => {
  const once = new ExactlyOnce<number | undefined>();
  once.apply(once.entry({ client: "a", seq: 1, command: 1 }), () => ({ result: undefined }));
  once.apply(once.entry({ client: "b", seq: 4, command: 2 }), () => ({
    error: "apply",
    message: "boom",
  }));
  const bytes = once.wrap(Uint8Array.of(7, 8), once.capture());
  const restored = new ExactlyOnce<number | undefined>();
  assert.deepEqual(restored.restore(bytes), Uint8Array.of(7, 8));
  assert.equal(restored.sessions, 2);
  const a = restored.recall({ client: "a", seq: 1, command: 1 });
  assert.ok(a !== undefined && !("error" in a) && a.result === undefined);
  assert.deepEqual(restored.recall({ client: "b", seq: 4, command: 2 }), {
    error: "apply",
    message: "boom",
  });
});

Deno.test("exactly-once: a machine's own snapshot is refused with a clear error", () => {
  const once = new ExactlyOnce<number>();
  assert.throws(() => once.restore(new TextEncoder().encode("42")), /exactlyOnce: false/);
});

Deno.test("exactly-once: a malformed write is an ArgumentsError", () => {
  assert.throws(() => parseStampedWrite("take"), ArgumentsError);
  assert.throws(() => parseStampedWrite({ client: "", seq: 1 }), ArgumentsError);
  assert.throws(() => parseStampedWrite({ client: "c", seq: 0 }), ArgumentsError);
  assert.deepEqual(parseStampedWrite({ client: "c", seq: 3, command: [1] }), {
    client: "c",
    seq: 3,
    command: [1],
  });
});
