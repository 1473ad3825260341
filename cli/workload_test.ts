import assert from "node:assert/strict";
import type { KvClerk } from "../kv/clerk.ts";
import { AppendWorkload } from "./workload.ts";

/** A macrotask turn, as a network round trip would take. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A clerk over a plain map, with a switch that makes one append apply twice. */
function fakeClerk(store: Map<string, string>, doubled?: string): KvClerk {
  return {
    append: async (key: string, value: string) => {
      await tick();
      const times = value === doubled ? 2 : 1;
      store.set(key, (store.get(key) ?? "") + value.repeat(times));
    },
    get: async (key: string) => {
      await tick();
      return store.get(key) ?? null;
    },
  } as unknown as KvClerk;
}

async function run(doubled?: string, tamper?: (store: Map<string, string>) => void) {
  const store = new Map<string, string>();
  const workload = new AppendWorkload({ keys: 2 });
  const running = workload.start([1, 2, 3].map(() => fakeClerk(store, doubled)));
  // Until every client has had at least 3 appends acknowledged, however slow the machine:
  // the checks below need appends (c.0), (c.1) and (c.2) of each client.
  while (workload.acknowledged.length < 3 || workload.acknowledged.some((n) => n < 3)) await tick();
  await running.stop();
  tamper?.(store);
  return { workload, lost: await workload.lostAppends(fakeClerk(store)) };
}

Deno.test("append workload: a clean run loses nothing and records every operation", async () => {
  const { workload, lost } = await run();
  assert.equal(lost, 0);
  assert.ok(workload.acknowledged.every((n) => n >= 3));
  assert.ok(workload.completed >= 15, "3 clients, each with 3 appends and the reads between");
  assert.equal(
    workload.history.filter((o) => o.input.op === "append").length,
    workload.acknowledged.reduce((a, b) => a + b, 0),
  );
});

Deno.test("append workload: missing, doubled and reordered appends are counted", async () => {
  assert.equal((await run("(1.0)")).lost, 1, "a doubled append");
  const missing = await run(undefined, (s) => s.set("k0", s.get("k0")!.replace("(0.1)", "")));
  assert.equal(missing.lost, 1, "a missing append");
  const swapped = await run(undefined, (s) => {
    const v = s.get("k0")!;
    s.set("k0", v.replace("(0.0)", "#").replace("(0.1)", "(0.0)").replace("#", "(0.1)"));
  });
  assert.equal(swapped.lost, 1, "two appends out of order");
});
