/**
 * Issue 16 §1 with real processes: three `distkit kv serve` nodes on
 * 127.0.0.1, and many HTTP clients putting values of the documented maximum
 * size (1 MiB) to the leader as fast as it answers, with a canary doing a put
 * and a get every 100 ms. Scaled down from the 200 clients for 20 s
 * to 48 clients for 8 s, so that it fits a shared 2-core CI machine in about
 * 20 s; 48 MiB of bodies at once is three times the node's 16 MiB limit of
 * bodies held (and six times its 8 MiB of writes admitted), so the
 * admission limits are reached.
 *
 * What is asserted (correctness and bounds, not speed):
 * - no leader change: every node's term and leader-change count the same
 *   after the load as before;
 * - every refusal is definite or says it is not: a refused put says
 *   `mayHaveApplied`, and an overload refusal is 503 with `Retry-After` and
 *   `mayHaveApplied: false`;
 * - nothing refused was applied, nothing acknowledged was lost: each client
 *   puts values with tags of its own to a key of its own; the final value's
 *   tag is never one refused as not applied, and is the last acknowledged
 *   one or a later one whose outcome the client could not know;
 * - memory: the leader's resident memory (VmRSS) stays under a bound stated
 *   from the configured limits, during the load and after it.
 */
import assert from "node:assert/strict";
import { LocalCluster } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { residentBytes as rss } from "./proc_stats.ts";
import { MIB, runLoad, VALUE_BYTES, verifyOutcomes, viewOf } from "./overload_load.ts";
import { quantile } from "../bench/stats.ts";
import { DEFAULT_MAX_PENDING_WRITE_BYTES } from "../rsm/replica_sizing.ts";

const CLIENTS = 48;
const LOAD_MS = 8_000;
/** The node's defaults this test relies on (kv/http.ts, rsm/replica.ts). */
const BODY_BUDGET = 16 * MIB;
const PENDING_BUDGET = DEFAULT_MAX_PENDING_WRITE_BYTES;
const INFLIGHT_BUDGET = 4 * MIB;
const MAX_RAFT_STATE = 32 * MIB;

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(0)} MiB`;
}

/** Whether every node is in one term and follows one leader. */
function settled(views: { term: number; leader: string | null }[]): boolean {
  const [first] = views;
  return first.leader !== null &&
    views.every((v) => v.term === first.term && v.leader === first.leader);
}

function view(cluster: LocalCluster, i: number) {
  return viewOf(() => cluster.status(i), i);
}

/** One HTTP/1.1 request sent as written (fetch would resolve `..` in the path); status and body. */
async function rawRequest(
  address: string,
  request: { method: string; path: string; body?: string },
): Promise<{ status: number; body: string }> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const body = request.body ?? "";
    await conn.write(
      new TextEncoder().encode(
        `${request.method} ${request.path} HTTP/1.1\r\nHost: ${address}\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

Deno.test("kv processes: 48 clients putting 1 MiB values: no leader change, definite refusals, nothing refused applied, memory bounded", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-overload-" });
  const cluster = await LocalCluster.start({ dataDir, maxRaftState: MAX_RAFT_STATE });
  try {
    const leader = await cluster.leader();
    const base = `http://${cluster.httpAddress(leader)}`;
    // Settled: every node knows the leader, and one write went through.
    assert.equal(
      await fetch(`${base}/kv/warm-up`, { method: "PUT", body: "1" }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }),
      204,
    );
    // Every node in the leader's term, following it (polled, bounded): the baseline the
    // no-election check compares with.
    let before = await Promise.all([0, 1, 2].map((i) => view(cluster, i)));
    for (const deadline = Date.now() + 30_000; !settled(before);) {
      assert.ok(Date.now() < deadline, `the nodes did not settle: ${JSON.stringify(before)}`);
      await delay(100);
      before = await Promise.all([0, 1, 2].map((i) => view(cluster, i)));
    }
    const pid = cluster.pid(leader);
    const baseline = (await rss(pid))!;
    assert.ok(baseline > 0, "the leader's VmRSS is readable");

    const result = await runLoad({ base, clients: CLIENTS, ms: LOAD_MS, pids: [pid] });
    const { tally, failure, outcomes, canaryMs: canary } = result;
    const peak = Math.max(baseline, result.peakRss[0]);

    const after = await Promise.all([0, 1, 2].map((i) => view(cluster, i)));
    const p99 = quantile(canary, 0.99);
    console.log(
      `  ${CLIENTS} clients × 1 MiB for ${LOAD_MS} ms: ${tally.acked} acknowledged, ` +
        `${tally.refused} refused as not applied (${tally.overloaded} overloaded), ` +
        `${tally.unknown} unknown; canary ${canary.length} rounds, p99 ${p99.toFixed(0)} ms, ` +
        `${result.canaryFailures} failed; leader VmRSS ${mib(baseline)} before, peak ${mib(peak)}`,
    );

    if (failure !== undefined) {
      for (let i = 0; i < 3; i++) console.log(`node ${i} stderr:\n${cluster.stderr(i)}`);
      throw failure;
    }
    // No leader change on any node.
    for (let i = 0; i < 3; i++) {
      assert.equal(after[i].term, before[i].term, `node ${i}'s term moved: an election happened`);
      assert.equal(after[i].leaderChanges, before[i].leaderChanges, `node ${i} saw a new leader`);
      assert.equal(after[i].leader, String(leader), `node ${i} follows ${leader}`);
    }
    assert.ok(tally.acked > 0, "some puts were acknowledged");
    assert.ok(
      tally.overloaded > 0,
      "the load reached the admission limits (else it tests nothing)",
    );

    // Nothing refused was applied; nothing acknowledged was lost.
    assert.deepEqual(await verifyOutcomes(base, outcomes), []);

    // Keys are literal (README, HTTP API): ".." and "a/../b" are keys of their own.
    const http = cluster.httpAddress(leader);
    for (const path of ["/kv/..", "/kv/a/../b"]) {
      assert.equal((await rawRequest(http, { method: "PUT", path, body: path })).status, 204);
      assert.deepEqual(await rawRequest(http, { method: "GET", path }), {
        status: 200,
        body: path,
      });
    }
    assert.equal((await rawRequest(http, { method: "GET", path: "/kv/b" })).status, 404);

    // Memory: the leader holds at most its limits' worth of data in flight:
    // bodies held, writes admitted, appends in flight to two followers, the
    // uncompacted log. Each byte of it is counted six times: the body, its
    // string, the entry encoded for the log and for each follower, and the
    // garbage V8 keeps resident until a major collection (1 MiB values are
    // large objects, freed only then). The state on top, three times: the
    // store, the latest snapshot (the Raft node keeps it to send to
    // followers), and the next one being encoded. Measured on a shared 2-core
    // machine: peaks of 298–445 MiB (the higher ones when the machine was
    // less busy and more was written) for a bound of about 570 MiB; the issue
    // saw 0.9–1.24 GB before admission control. (The node snapshots when the log
    // reaches max(MAX_RAFT_STATE, the last snapshot's size): with at most 48 MiB of
    // state the log can hold 16 MiB more than MAX_RAFT_STATE, well within its ×6.)
    const limits = BODY_BUDGET + PENDING_BUDGET + 2 * INFLIGHT_BUDGET + MAX_RAFT_STATE;
    const state = CLIENTS * VALUE_BYTES;
    const bound = baseline + 6 * limits + 3 * state;
    assert.ok(peak < bound, `leader VmRSS peaked at ${mib(peak)}, over the bound ${mib(bound)}`);
    // Once the load is gone nothing more is held: still under the bound a
    // few seconds later. (Not back at the baseline yet: V8 keeps freed large
    // objects resident until a major collection, which the node runs once it
    // has been idle for 10 s; see the README's limits.)
    await delay(3000);
    const now = (await rss(pid))!;
    console.log(`  leader VmRSS 3 s after the load: ${mib(now)} (bound ${mib(bound)})`);
    assert.ok(now < bound, `leader VmRSS grew to ${mib(now)} after the load`);
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
