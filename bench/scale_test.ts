import assert from "node:assert/strict";
import {
  errorKind,
  keyName,
  parseScaleArgs,
  reportTable,
  ScaleUsageError,
  SecondBuckets,
  type SystemResult,
} from "./scale.ts";

Deno.test("parseScaleArgs: the issue's defaults, and counts with k and M", () => {
  const o = parseScaleArgs([]);
  assert.equal(o.keys, 1_000_000);
  assert.equal(o.split, 200_000);
  assert.equal(o.valueBytes, 64);
  assert.equal(o.clients, 64);
  assert.deepEqual(o.systems, ["distkit", "etcd"]);
  assert.equal(o.ports, undefined);
  assert.equal(o.skipRestart, false);
  assert.equal(o.skipCatchup, false);

  const p = parseScaleArgs([
    "--keys",
    "20k",
    "--value-bytes",
    "1024",
    "--systems",
    "etcd",
    "--ports",
    "27000-27999",
    "--skip-restart",
    "--skip-catchup",
    "--max-raft-state",
    "1_048_576",
  ]);
  assert.equal(p.keys, 20_000);
  assert.equal(p.split, 20_000, "the split is at most the number of keys");
  assert.equal(p.valueBytes, 1024);
  assert.deepEqual(p.systems, ["etcd"]);
  assert.equal(p.ports?.low, 27000);
  assert.equal(p.ports?.high, 27999);
  assert.equal(p.skipRestart, true);
  assert.equal(p.skipCatchup, true);
  assert.equal(p.maxRaftState, 1_048_576);
  assert.equal(parseScaleArgs(["--keys", "2M", "--split", "500k"]).split, 500_000);
});

Deno.test("parseScaleArgs: bad input is a ScaleUsageError that names the option", () => {
  const refused: [string[], RegExp][] = [
    [["--keys", "0"], /--keys takes a whole number/],
    [["--keys", "1.5M"], /--keys takes a whole number/],
    [["--keys", "lots"], /--keys/],
    [["--value-bytes", "100000"], /--value-bytes .* 1 to 65536/],
    [["--clients", "0"], /--clients/],
    [["--systems", "distkit,redis"], /--systems takes distkit, etcd or both/],
    [["--systems", "etcd,etcd"], /each once/],
    [["--systems", ""], /--systems/],
    [["--ports", "27000"], /LOW-HIGH/],
    [["--ports", "27000-27005"], /at least 12 ports/],
    [["--frobnicate"], /frobnicate/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseScaleArgs(args), (err: unknown) => {
      assert.ok(err instanceof ScaleUsageError, `${args.join(" ")}: ${err}`);
      assert.match(err.message, message, args.join(" "));
      return true;
    });
  }
});

Deno.test("keyName: k and 15 digits, 16 bytes, in key order", () => {
  assert.equal(keyName(0), "k000000000000000");
  assert.equal(keyName(999_999), "k000000000999999");
  assert.equal(keyName(42).length, 16);
  assert.ok(keyName(9) < keyName(10));
});

Deno.test("SecondBuckets: p99 per second of acknowledgement; slow and empty seconds counted", () => {
  const b = new SecondBuckets();
  // Second 0: 100 puts of 1..100 ms: p99 (nearest rank) is 99 ms, not over 100.
  for (let i = 1; i <= 100; i++) b.add(10 * i - 5, i);
  // Second 1: nothing acknowledged (a stall). Second 2: 99 fast puts and 2 slow ones.
  for (let i = 0; i < 99; i++) b.add(2000 + i, 5);
  b.add(2500, 1500);
  b.add(2999.9, 300);
  const s = b.summary();
  assert.equal(s.seconds, 3);
  assert.equal(s.p99s[0], 99);
  assert.ok(Number.isNaN(s.p99s[1]));
  assert.equal(s.p99s[2], 300, "101 puts: the 100th fastest is the 300 ms one");
  assert.equal(s.empty, 1);
  assert.equal(s.slow, 2, "the empty second and second 2");
  assert.equal(s.worstP99, 300);
  assert.equal(b.summary(1000).slow, 1, "a higher limit leaves only the empty second");
});

Deno.test("SecondBuckets: nothing recorded is zero seconds; a negative time is refused", () => {
  assert.deepEqual(new SecondBuckets().summary(), {
    seconds: 0,
    slow: 0,
    empty: 0,
    worstP99: 0,
    p99s: [],
  });
  assert.throws(() => new SecondBuckets().add(-1, 5), RangeError);
  assert.throws(() => new SecondBuckets().add(5, Number.NaN), RangeError);
});

const MIB = 2 ** 20;

/** A result as `measure` leaves it, with `perSecond` puts/s and `rss` MiB per node. */
function result(system: "distkit" | "etcd", perSecond: number, rss: number): SystemResult {
  const latency = { seconds: 50, slow: 5, empty: 0, worstP99: 150, p99s: [] };
  return {
    system,
    phases: [{
      keys: 200_000,
      ms: 50_000,
      perSecond,
      errors: 0,
      errorKinds: {},
      latency,
      load: 2.5,
    }],
    memory: { split: { values: [rss * MIB, rss * MIB, 2 * rss * MIB], load: 2.5 } },
    disk: { end: { values: [40 * MIB, 41 * MIB, 42 * MIB], load: 3 } },
    restart: { ms: 2_500, load: 3.5, convergedMs: 2_600 },
  };
}

Deno.test("reportTable: a row per figure measured, distkit over etcd, each system's load average", () => {
  const options = parseScaleArgs(["--keys", "200k", "--systems", "etcd,distkit"]);
  const text = reportTable([result("etcd", 4000, 100), result("distkit", 3000, 200)], options);
  const lines = text.split("\n");
  assert.match(
    lines[0],
    /\| etcd 3\.4 +\| distkit +\| distkit \/ etcd \| load avg \(etcd \/ distkit\)/,
  );
  const row = (label: string) => lines.find((l) => l.includes(label)) ?? "";
  assert.match(row("0 → 200k keys: throughput"), /4,000\/s .*3,000\/s .*0\.75× .*2\.5 \/ 2\.5/);
  // Memory: every node's figure, and the ratio of the median nodes.
  assert.match(
    row("memory (RSS) per node at 200k"),
    /100 \/ 100 \/ 200 MiB .*200 \/ 200 \/ 400 MiB .*2\.00×/,
  );
  assert.match(row("restart to first write"), /2\.5 s \(all at one position: 2\.6 s\)/);
  // Left out: what was not measured (no catch-up, no restart figures for memory or disk).
  assert.equal(row("catch-up"), "");
  assert.equal(row("after the restart"), "");
  assert.equal(row("200k → "), "", "no second phase when N is the split");
});

Deno.test("reportTable: one system alone has no ratio column", () => {
  const options = parseScaleArgs(["--keys", "200k", "--systems", "distkit"]);
  const header = reportTable([result("distkit", 3000, 200)], options).split("\n")[0];
  assert.doesNotMatch(header, /etcd/);
  assert.match(header, /\| distkit +\| load avg \(distkit\) \|/);
});

Deno.test("errorKind: an HTTP status when the message has one, else the message's first words", () => {
  assert.equal(
    errorKind(new Error('distkit: HTTP 503 {"error":"kv: the server is overloaded"}')),
    "HTTP 503",
  );
  assert.equal(errorKind(new Error("etcd: HTTP 500 etcdserver: request timed out")), "HTTP 500");
  assert.equal(
    errorKind(new Error("the server closed the connection")),
    "the server closed the connection",
  );
  assert.equal(errorKind(new Error("Connection refused (os error 111)")), "Connection refused");
  assert.equal(errorKind("boom"), "boom");
});
