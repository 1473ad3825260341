/**
 * Issue 15 §3 with real processes: three `distkit kv serve` nodes on
 * 127.0.0.1, eight appenders over the leader's HTTP API, both followers
 * killed with SIGKILL for about 3 s and restarted. Every append carries a
 * value of its own, so the final values show what was applied:
 *
 * - an append answered 204 is there exactly once;
 * - one answered `"mayHaveApplied": false` is not there at all;
 * - one answered `"mayHaveApplied": true` (or not answered) is there at most once.
 *
 * Four appenders send each value once, without a session; four number their
 * writes (`X-Distkit-Client`, `X-Distkit-Seq`) and resend a value whose
 * outcome is unknown until it is acknowledged, following redirects: their
 * values are acknowledged or still open at the end, and never doubled.
 * Correctness only: nothing here depends on speed.
 */
import assert from "node:assert/strict";
import { LocalCluster } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { runCli } from "./node_process.ts";

const APPENDERS = 8;
const KEYS = 4;
/** At most this many values in all, so a fast machine does not build huge values. */
const MAX_VALUES = 6000;
const OUTAGE_MS = 3000;

type Outcome = "acked" | "refused" | "unknown";

interface Answer {
  outcome: Outcome;
  /** Where the leader is, when the answer says (a redirect). */
  location?: string;
}

/** One POST of an append; what the answer says about it. */
async function append(
  base: string,
  key: string,
  value: string,
  headers: Record<string, string>,
): Promise<Answer> {
  let res: Response;
  try {
    res = await fetch(`${base}/kv/${key}?op=append`, {
      method: "POST",
      body: value,
      headers,
      redirect: "manual",
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    // Sent, perhaps, and no answer: the client cannot tell.
    return { outcome: "unknown" };
  }
  const text = await res.text();
  if (res.status === 204) return { outcome: "acked" };
  let body: { mayHaveApplied?: unknown; location?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${res.status} with a body that is not JSON: ${text}`);
  }
  // The rule under test: every refusal of a write says which it is.
  assert.equal(
    typeof body.mayHaveApplied,
    "boolean",
    `${res.status} ${text}: a refusal of a write must say mayHaveApplied`,
  );
  const location = typeof body.location === "string" ? new URL(body.location).origin : undefined;
  return { outcome: body.mayHaveApplied ? "unknown" : "refused", location };
}

Deno.test('kv processes: no append answered "not applied" was applied, none acknowledged is lost or doubled, with both followers killed', async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-ambiguity-" });
  const cluster = await LocalCluster.start({ dataDir, maxRaftState: 64 * 1024 });
  try {
    const leader = await cluster.leader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const outcomes = new Map<string, Outcome>();
    let values = 0;
    let stop = false;

    const appender = async (n: number): Promise<void> => {
      const key = `k${n % KEYS}`;
      let base = `http://${cluster.httpAddress(leader)}`;
      const session = n >= APPENDERS / 2;
      let seq = 0;
      while (!stop && values < MAX_VALUES) {
        const value = `<${n}-${values++}>`;
        seq++;
        const headers: Record<string, string> = session
          ? { "x-distkit-client": `appender-${n}`, "x-distkit-seq": String(seq) }
          : {};
        let outcome: Outcome = "refused";
        for (let attempt = 0;; attempt++) {
          const answer = await append(base, key, value, headers);
          if (answer.location !== undefined) base = answer.location;
          // A value once possibly applied stays so until acknowledged.
          if (answer.outcome === "acked" || outcome !== "unknown") outcome = answer.outcome;
          if (outcome === "acked" || (attempt === 0 && outcome === "refused")) break;
          // Only a session's resend is safe; without one, the value is left open.
          if (!session || stop) break;
          await delay(50);
        }
        outcomes.set(value, outcome);
        if (outcome !== "acked") await delay(20);
      }
    };

    const running = Array.from({ length: APPENDERS }, (_, n) => appender(n));
    await delay(2000);
    for (const f of followers) await cluster.kill(f);
    // The command-line client meanwhile: its append cannot be committed, and it says so.
    const [cli] = await Promise.all([
      runCli(
        "kv",
        "append",
        "--endpoints",
        cluster.peers.join(","),
        "--timeout",
        "1500ms",
        "cli",
        "<cli>",
      ),
      delay(OUTAGE_MS),
    ]);
    assert.equal(cli.code, 3, `kv append during the outage: ${cli.code} ${cli.stderr}`);
    assert.match(cli.stderr, /the write may or may not have been applied/);
    await Promise.all(followers.map((f) => cluster.restart(f)));
    await delay(2500);
    stop = true;
    await Promise.all(running);

    // The final values, read from whichever node leads now.
    const now = await cluster.leader();
    const found = new Map<string, number>();
    for (const key of [...Array.from({ length: KEYS }, (_, k) => `k${k}`), "cli"]) {
      const res = await fetch(`http://${cluster.httpAddress(now)}/kv/${key}`);
      const text = await res.text();
      assert.ok(res.status === 200 || res.status === 404, `GET ${key}: ${res.status} ${text}`);
      for (const token of text.match(/<[^>]*>/g) ?? []) {
        found.set(token, (found.get(token) ?? 0) + 1);
      }
    }

    outcomes.set("<cli>", "unknown"); // the command line's append, at most once
    const count = { acked: 0, refused: 0, unknown: 0, unknownPresent: 0 };
    const problems: string[] = [];
    for (const [value, outcome] of outcomes) {
      const times = found.get(value) ?? 0;
      count[outcome]++;
      if (outcome === "acked" && times !== 1) {
        problems.push(`${value} acknowledged, present ${times}×`);
      }
      if (outcome === "refused" && times !== 0) {
        problems.push(`${value} refused as not applied, present ${times}×`);
      }
      if (outcome === "unknown") {
        if (times > 1) problems.push(`${value} of unknown outcome, present ${times}×`);
        if (times === 1) count.unknownPresent++;
      }
    }
    for (const [value] of found) {
      if (!outcomes.has(value)) problems.push(`${value} present but never sent`);
    }
    const summary = `${outcomes.size} appends: ${count.acked} acknowledged, ${count.refused} ` +
      `refused as not applied, ${count.unknown} of unknown outcome (${count.unknownPresent} of ` +
      `them applied)`;
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems; ${summary}`);
    // The outage happened to writes in flight, and the cluster served before and after it.
    assert.ok(count.refused + count.unknown > 0, `nothing was refused: ${summary}`);
    assert.ok(count.acked > 0, summary);
    console.log(`  ${summary}`);
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
