/**
 * Issue 16 §1's workload against a KV cluster's HTTP API, shared by the
 * process test (tests/kv_overload_process_test.ts, scaled down) and the
 * measurement script (bench/overload_1mib.ts, the issue's 200 × 1 MiB):
 * many clients putting 1 MiB values, each to a key of its own with tags of
 * its own, and a canary doing a put and a get every 100 ms.
 *
 * What each answer said is kept, so that {@linkcode verifyOutcomes} can tell
 * afterwards that nothing refused as not applied was applied and nothing
 * acknowledged was lost. An answer that does not state its outcome, an
 * overload refusal that is not a definite 503 with `Retry-After`, or (when
 * redirects are not followed) a redirect, stops the run as a failure.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delay } from "../net/mod.ts";
import { Http1Client, type HttpResponse } from "../bench/http1.ts";
import { residentBytes } from "./proc_stats.ts";

const decoder = new TextDecoder();

/** One mebibyte. */
export const MIB = 1 << 20;
/** The documented maximum value size; the tag is inside it. */
export const VALUE_BYTES = MIB;
const TAG_WIDTH = 24;
/** A value's bytes but its tag: copied for each put, which writes its tag in front. */
const TEMPLATE = new TextEncoder().encode("x".repeat(VALUE_BYTES));

/** What a put's answer said: applied, certainly not applied, or not known. */
export type Outcome = "acked" | "refused" | "unknown";

/** Counts of the load's answers. */
export interface Tally {
  acked: number;
  /** Refused as certainly not applied (overload refusals included). */
  refused: number;
  /** Of `refused`: overload refusals (503 with `overloaded: true`). */
  overloaded: number;
  /** No answer, or an answer that says the put may have been applied. */
  unknown: number;
  /** Refusals and unknown outcomes by kind: status and reason, numbers left out. */
  kinds: Map<string, number>;
  /** Milliseconds from sending each acknowledged put to its answer. */
  ackedMs: number[];
}

/** Options of {@linkcode runLoad}. */
export interface LoadOptions {
  /** The leader's HTTP base URL, `http://host:port`. */
  base: string;
  clients: number;
  /** How long the load runs. */
  ms: number;
  /** Follow redirects (the client does); else a redirect fails the run. Default false. */
  followRedirects?: boolean;
  /** Processes whose resident memory is sampled every 100 ms (peak of each). */
  pids?: (number | undefined)[];
  /**
   * How long a client pauses after a put that was not acknowledged, plus up
   * to 200 ms at random. Default 100: a heavy user, who waits less than
   * `Retry-After` (1 s) says, to keep the pressure on.
   */
  pauseMs?: number;
  /** Called about once a second with the seconds elapsed and the tally so far. */
  onSecond?: (second: number, tally: Tally) => void;
}

/** What {@linkcode runLoad} saw. */
export interface LoadResult {
  tally: Tally;
  /** Each client's puts by number, and what their answers said. */
  outcomes: Map<number, Outcome>[];
  /** Each canary round's time (a put, then a get), sorted, in ms. */
  canaryMs: number[];
  canaryFailures: number;
  /** The peak resident memory of each of `pids` during the load (0 when unreadable). */
  peakRss: number[];
  /** The first answer that broke the rules, if one did (the run stopped there). */
  failure: unknown;
  /** Milliseconds the load ran, from the first put to the last answer. */
  elapsedMs: number;
}

interface Run {
  options: LoadOptions;
  stop: boolean;
  failure: unknown;
  tally: Tally;
  outcomes: Map<number, Outcome>[];
  canaryFailures: number;
}

function tagOf(client: number, seq: number): string {
  return `<${client}:${seq}>`.padEnd(TAG_WIDTH, "-");
}

/** Client `n`'s put `seq`: its tag, then the template's bytes. */
function valueOf(n: number, seq: number): Uint8Array {
  const value = TEMPLATE.slice();
  new TextEncoder().encodeInto(tagOf(n, seq), value);
  return value;
}

function count(tally: Tally, kind: string): void {
  tally.kinds.set(kind, (tally.kinds.get(kind) ?? 0) + 1);
}

/** A refusal's kind: its status and reason with the numbers taken out, so alike ones group. */
function kindOf(status: number, error: unknown): string {
  const reason = typeof error === "string"
    ? error.replace(/^kv: the server is overloaded \(/, "overloaded (").replace(/\d+/g, "N")
      .slice(0, 100)
    : "?";
  return `${status} ${reason}`;
}

/** At most this many redirects are followed for one request. */
const MAX_REDIRECTS = 3;

/** A request, following redirects when the run does; the response, or a thrown failure to send. */
async function send(
  run: Run,
  http: Http1Client,
  request: { method: string; path: string; body?: string | Uint8Array; timeoutMs: number },
): Promise<HttpResponse> {
  const signal = AbortSignal.timeout(request.timeoutMs);
  let url = `${run.options.base}${request.path}`;
  for (let hop = 0;; hop++) {
    const res = await http.request(request.method, url, { body: request.body, signal });
    const location = res.headers.get("location");
    if (res.status !== 307 || !run.options.followRedirects || location === undefined) return res;
    if (hop === MAX_REDIRECTS) return res;
    url = location;
  }
}

/** One PUT; what its answer says. Throws when the answer does not state its outcome. */
async function put(
  run: Run,
  http: Http1Client,
  key: string,
  value: Uint8Array,
): Promise<Outcome> {
  const { tally } = run;
  const started = performance.now();
  let res: HttpResponse;
  try {
    res = await send(run, http, {
      method: "PUT",
      path: `/kv/${key}`,
      body: value,
      timeoutMs: 20_000,
    });
  } catch (err) {
    tally.unknown++;
    count(tally, `no answer: ${(err as Error).message.slice(0, 60)}`);
    return "unknown"; // sent, perhaps, and no answer
  }
  const text = decoder.decode(res.body);
  if (res.status === 204) {
    tally.acked++;
    tally.ackedMs.push(performance.now() - started);
    return "acked";
  }
  let body: { mayHaveApplied?: unknown; overloaded?: unknown; error?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  assert.equal(
    typeof body.mayHaveApplied,
    "boolean",
    `${res.status} ${text}: must say mayHaveApplied`,
  );
  count(tally, kindOf(res.status, body.error));
  if (body.overloaded === true) {
    assert.equal(res.status, 503, text);
    assert.equal(body.mayHaveApplied, false, `an overload refusal is definite: ${text}`);
    assert.match(res.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/, "Retry-After");
    tally.overloaded++;
  }
  assert.notEqual(res.status, 307, `a leader change during the load: ${text}`);
  if (body.mayHaveApplied) {
    tally.unknown++;
    return "unknown";
  }
  tally.refused++;
  return "refused";
}

/** Client `n`: puts its own tagged values to its own key until the run stops. */
async function client(run: Run, n: number): Promise<void> {
  const mine = new Map<number, Outcome>();
  run.outcomes[n] = mine;
  const http = new Http1Client();
  try {
    for (let seq = 1; !run.stop; seq++) {
      mine.set(seq, "unknown");
      try {
        mine.set(seq, await put(run, http, `load-${n}`, valueOf(n, seq)));
      } catch (err) {
        run.failure ??= err;
        run.stop = true;
      }
      if (mine.get(seq) !== "acked") {
        await delay((run.options.pauseMs ?? 100) + Math.random() * 200);
      }
    }
  } finally {
    http.close();
  }
}

/** The `error` of a JSON error answer, if it is one. */
function errorOf(text: string): unknown {
  try {
    return JSON.parse(text).error;
  } catch {
    return text.slice(0, 60);
  }
}

function canaryFailed(run: Run, why: string): void {
  run.canaryFailures++;
  count(run.tally, `canary failed: ${why}`);
}

/** A put and a get every 100 ms; each round's time goes to `times`. */
async function canaryLoop(run: Run, times: number[]): Promise<void> {
  const http = new Http1Client();
  try {
    for (let i = 0; !run.stop; i++) {
      const started = performance.now();
      try {
        const res = await send(run, http, {
          method: "PUT",
          path: "/kv/canary",
          body: String(i),
          timeoutMs: 10_000,
        });
        const got = await send(run, http, { method: "GET", path: "/kv/canary", timeoutMs: 10_000 });
        if (res.status !== 204) {
          canaryFailed(run, `put ${kindOf(res.status, errorOf(decoder.decode(res.body)))}`);
        } else if (got.status !== 200) canaryFailed(run, `get ${got.status}`);
      } catch (err) {
        canaryFailed(run, (err as Error).message.slice(0, 60));
      }
      times.push(performance.now() - started);
      await delay(100);
    }
  } finally {
    http.close();
  }
}

/**
 * Runs the load for `options.ms` and returns what it saw. Never throws for
 * what the cluster answered: a broken rule is `failure` in the result.
 *
 * @example
 * ```ts ignore
 * const result = await runLoad({ base: "http://127.0.0.1:8001", clients: 48, ms: 8000 });
 * ```
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const tally: Tally = {
    acked: 0,
    refused: 0,
    overloaded: 0,
    unknown: 0,
    kinds: new Map(),
    ackedMs: [],
  };
  const run: Run = {
    options,
    stop: false,
    failure: undefined,
    tally,
    outcomes: [],
    canaryFailures: 0,
  };
  const pids = options.pids ?? [];
  const peakRss = pids.map(() => 0);
  const sampler = (async () => {
    while (!run.stop) {
      const now = await Promise.all(pids.map((pid) => residentBytes(pid)));
      now.forEach((bytes, i) => peakRss[i] = Math.max(peakRss[i], bytes ?? 0));
      await delay(100);
    }
  })();
  const started = performance.now();
  const canaryMs: number[] = [];
  const load = [...Array(options.clients).keys()].map((n) => client(run, n));
  const canaryDone = canaryLoop(run, canaryMs);
  // By the wall clock: a starved event loop runs its timers late.
  for (let second = 1; !run.stop;) {
    await delay(100);
    const elapsed = performance.now() - started;
    if (elapsed >= second * 1000) options.onSecond?.(second++, tally);
    if (elapsed >= options.ms) break;
  }
  run.stop = true;
  await Promise.all(load);
  const elapsedMs = performance.now() - started;
  await canaryDone;
  await sampler;
  canaryMs.sort((a, b) => a - b);
  tally.ackedMs.sort((a, b) => a - b);
  return {
    tally,
    outcomes: run.outcomes,
    canaryMs,
    canaryFailures: run.canaryFailures,
    peakRss,
    failure: run.failure,
    elapsedMs,
  };
}

async function getValue(base: string, key: string): Promise<string | null> {
  const res = await fetch(`${base}/kv/${key}`, { signal: AbortSignal.timeout(20_000) });
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  assert.equal(res.status, 200, `GET ${key}`);
  return await res.text();
}

/**
 * Reads each client's key after the load: what is wrong, one line each (none:
 * nothing refused as not applied was applied, nothing acknowledged was lost,
 * each value whole and the client's own).
 */
export async function verifyOutcomes(
  base: string,
  outcomes: Map<number, Outcome>[],
): Promise<string[]> {
  const wrong: string[] = [];
  for (let n = 0; n < outcomes.length; n++) {
    const mine = outcomes[n];
    const acked = [...mine].filter(([, o]) => o === "acked").map(([s]) => s);
    const lastAcked = acked.length === 0 ? 0 : Math.max(...acked);
    const value = await getValue(base, `load-${n}`);
    if (value === null) {
      if (lastAcked !== 0) wrong.push(`client ${n}'s acknowledged put ${lastAcked} is lost`);
      continue;
    }
    const match = /^<(\d+):(\d+)>/.exec(value);
    if (value.length !== VALUE_BYTES || !match || Number(match[1]) !== n) {
      wrong.push(`client ${n}'s key holds ${value.length} bytes not its own whole value`);
      continue;
    }
    const seq = Number(match[2]);
    const outcome = mine.get(seq);
    if (outcome === "refused") {
      wrong.push(`client ${n}'s put ${seq} was refused as not applied, yet applied`);
    }
    if (outcome === undefined) wrong.push(`client ${n}'s key holds put ${seq}, never sent`);
    if (seq < lastAcked) {
      wrong.push(`client ${n}'s acknowledged put ${lastAcked} was lost to ${seq}`);
    }
  }
  return wrong;
}

/** A node's leadership as its `/status` says. */
export interface NodeView {
  term: number;
  leaderChanges: number;
  leader: string | null;
  /** Snapshots taken and installed so far (from `/status`'s `kv`), when it says. */
  snapshots?: number;
  installs?: number;
}

/** Node `i`'s term, leader-change count and leader, from `status` (retried for 10 s). */
export async function viewOf(
  status: () => Promise<Record<string, unknown> | undefined>,
  i: number,
): Promise<NodeView> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const s = await status() as unknown as
      | NodeView & { kv?: { snapshots?: number; installs?: number } }
      | undefined;
    if (s !== undefined) {
      return {
        term: s.term,
        leaderChanges: s.leaderChanges,
        leader: s.leader,
        snapshots: s.kv?.snapshots,
        installs: s.kv?.installs,
      };
    }
    await delay(250);
  }
  throw new Error(`node ${i} did not answer /status`);
}
