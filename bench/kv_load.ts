/**
 * KV load generator: puts of 64-byte values under distinct keys from N
 * concurrent clients, against distkit (HTTP `PUT /kv/<key>`, or the TCP
 * `KvClerk`) or etcd (its gRPC-JSON gateway, `POST /v3/kv/put`), reporting
 * puts/s and latency percentiles; and the failover gap (the leader killed
 * under load → the first write acknowledged through a survivor).
 *
 * Used by `bench/kv_vs_etcd.ts`; also runs on its own against a cluster you
 * started:
 *
 * deno run -A bench/kv_load.ts --system etcd|distkit-http|distkit-tcp
 *   --urls <url or host:port,...> [--clients 16] [--seconds 5] [--warmup 1]
 *
 * (distkit-http and etcd: the first URL must be the leader's, e.g.
 * http://127.0.0.1:8001; distkit-tcp: every node's TCP address, in order.)
 *
 * @module
 */
import { parseArgs } from "node:util";
import { delay } from "../net/async.ts";
import { connectKv } from "../kv/node.ts";
import type { KvClerk } from "../kv/clerk.ts";
import { Http1Client } from "./http1.ts";
import { quantile } from "./stats.ts";

/** The value every put writes: 64 bytes. */
export const VALUE = "0123456789abcdef".repeat(4);
const VALUE_BASE64 = btoa(VALUE);

/** Sends one put to `member` (an index into the system's members); resolves once acknowledged. */
export type Put = (member: number, key: string, signal?: AbortSignal) => Promise<void>;

/** Which system a driver talks to, and how. */
export type System = "etcd" | "distkit-http" | "distkit-tcp";

/** Puts over HTTP, and the way to close their connections. */
export interface HttpPuts {
  put: Put;
  close(): void;
}

/** Options of the HTTP put drivers. */
export interface HttpPutsOptions {
  /** The value every put writes (ASCII). Default {@linkcode VALUE}, 64 bytes. */
  value?: string;
}

/**
 * Puts through etcd's gRPC-JSON gateway at `urls[member]` (`http://host:port`):
 * `POST /v3/kv/put` with the key and value in base64.
 */
export function etcdPuts(urls: string[], options: HttpPutsOptions = {}): HttpPuts {
  const client = new Http1Client();
  const value64 = options.value === undefined ? VALUE_BASE64 : btoa(options.value);
  const put: Put = async (member, key, signal) => {
    const res = await client.request("POST", `${urls[member]}/v3/kv/put`, {
      contentType: "application/json",
      body: `{"key":"${btoa(key)}","value":"${value64}"}`,
      signal,
    });
    const text = new TextDecoder().decode(res.body);
    if (res.status !== 200 || !text.includes('"revision"')) {
      throw new Error(`etcd: HTTP ${res.status} ${text.slice(0, 120)}`);
    }
  };
  return { put, close: () => client.close() };
}

/**
 * Puts through distkit's HTTP API at `urls[member]`: `PUT /kv/<key>`,
 * following one redirect to the leader (a follower answers 307).
 */
export function distkitHttpPuts(urls: string[], options: HttpPutsOptions = {}): HttpPuts {
  const client = new Http1Client();
  const value = options.value ?? VALUE;
  const put: Put = async (member, key, signal) => {
    const options = { contentType: "text/plain", body: value, signal };
    let res = await client.request("PUT", `${urls[member]}/kv/${encodeURIComponent(key)}`, options);
    const location = res.headers.get("location");
    if (res.status === 307 && location !== undefined) {
      res = await client.request("PUT", location, options);
    }
    if (res.status !== 204) {
      throw new Error(
        `distkit: HTTP ${res.status} ${new TextDecoder().decode(res.body).slice(0, 120)}`,
      );
    }
  };
  return { put, close: () => client.close() };
}

/** A put through a distkit `KvClerk` (it finds the leader and retries by itself). */
export function clerkPut(clerk: KvClerk): Put {
  return (_member, key, signal) => clerk.put(key, VALUE, { signal });
}

/** Distinct keys of 16 bytes: a prefix of up to 5 characters and a counter. */
export class Keys {
  #n = 0;
  readonly #prefix: string;

  constructor(prefix: string) {
    if (prefix.length > 5) throw new RangeError("a key prefix has at most 5 characters");
    this.#prefix = prefix + "-";
  }

  next(): string {
    return this.#prefix + String(this.#n++).padStart(16 - this.#prefix.length, "0");
  }
}

/** Outcome of {@linkcode runLoad}. */
export interface LoadResult {
  /** Puts acknowledged within the timed window. */
  ops: number;
  seconds: number;
  perSecond: number;
  /** Latency percentiles of those puts, in milliseconds. */
  p50: number;
  p99: number;
  /** Failed puts (none expected). */
  errors: number;
  firstError?: string;
}

/**
 * Runs `clients` concurrent loops of puts to `member` for `warmupSeconds`
 * (not counted), calls `onTimed`, then for `seconds`. A put counts when it
 * is acknowledged before the window closes; its latency runs from the call
 * to the end of the response.
 */
export async function runLoad(options: {
  put: Put;
  member: number;
  clients: number;
  seconds: number;
  warmupSeconds: number;
  keys: Keys;
  onTimed?: () => void;
}): Promise<LoadResult> {
  const { put, member, clients, keys } = options;
  let errors = 0;
  let firstError: string | undefined;
  const phase = async (ms: number, latencies?: number[]) => {
    const end = performance.now() + ms;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await put(member, keys.next());
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          await delay(10);
          continue;
        }
        const t1 = performance.now();
        if (t1 <= end) latencies?.push(t1 - t0);
      }
    }));
  };
  await phase(options.warmupSeconds * 1000);
  errors = 0;
  firstError = undefined;
  options.onTimed?.();
  const latencies: number[] = [];
  await phase(options.seconds * 1000, latencies);
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: sorted.length,
    seconds: options.seconds,
    perSecond: sorted.length / options.seconds,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    errors,
    firstError,
  };
}

/** Outcome of {@linkcode measureFailover}. */
export interface FailoverResult {
  /** Milliseconds from the kill to the first acknowledged put sent after it; null: none in time. */
  gapMs: number | null;
  /** Puts acknowledged (warm load, before the kill). */
  before: number;
  /** Failed attempts after the kill. */
  failures: number;
}

/**
 * Puts from `clients` loops to the leader (`members[leader]`); after
 * `loadMs`, calls `kill` (which must kill the leader with SIGKILL). From then
 * on the loops send to the survivors in turn (each failed attempt moves on to
 * the next, after 10 ms), and one more put starts every 10 ms through a
 * survivor, each bounded by `attemptMs`. The gap runs from just before the
 * kill to the end of the first successful put sent after it.
 */
export async function measureFailover(options: {
  put: Put;
  members: number;
  leader: number;
  clients: number;
  kill: () => Promise<void>;
  keys: Keys;
  loadMs?: number;
  attemptMs?: number;
  limitMs?: number;
}): Promise<FailoverResult> {
  const { put, leader, keys } = options;
  const attemptMs = options.attemptMs ?? 2000;
  const limitMs = options.limitMs ?? 20_000;
  const survivors = Array.from({ length: options.members }, (_, i) => i).filter((i) =>
    i !== leader
  );
  let killedAt = Infinity;
  let firstOk: number | null = null;
  let before = 0;
  let failures = 0;
  let stop = false;
  let turn = 0;
  const attempt = async (member: number): Promise<boolean> => {
    const t0 = performance.now();
    try {
      await put(member, keys.next(), AbortSignal.timeout(attemptMs));
    } catch {
      if (t0 >= killedAt) failures++;
      return false;
    }
    const t1 = performance.now();
    if (t0 >= killedAt) firstOk = Math.min(firstOk ?? Infinity, t1);
    else before++;
    return true;
  };
  const loops = Array.from({ length: options.clients }, async (_, w) => {
    let member = leader;
    while (!stop) {
      if (await attempt(member)) continue;
      if (killedAt !== Infinity) member = survivors[(w + turn++) % survivors.length];
      await delay(10);
    }
  });
  await delay(options.loadMs ?? 2000);
  killedAt = performance.now();
  await options.kill();
  const probes: Promise<boolean>[] = [];
  while (firstOk === null && performance.now() - killedAt < limitMs) {
    probes.push(attempt(survivors[probes.length % survivors.length]));
    await delay(10);
  }
  stop = true;
  await Promise.all([...loops, ...probes]);
  return { gapMs: firstOk === null ? null : firstOk - killedAt, before, failures };
}

/** Milliseconds of CPU busy (not idle, not waiting for I/O) so far, all cores together, or NaN. */
export function machineCpuMs(): number {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const busy = ticks.reduce((a, b) => a + b, 0) - ticks[3] - ticks[4];
    return busy * 10;
  } catch {
    return NaN;
  }
}

/** Milliseconds of CPU (user + system) used so far by process `pid`, or NaN. */
export function cpuMs(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state is field 3; utime and stime are fields 14 and 15, in 1/100 s.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      system: { type: "string" },
      urls: { type: "string" },
      clients: { type: "string" },
      seconds: { type: "string" },
      warmup: { type: "string" },
    },
  });
  const system = values.system as System;
  const urls = (values.urls ?? "").split(",").filter((u) => u !== "");
  if (!["etcd", "distkit-http", "distkit-tcp"].includes(system) || urls.length === 0) {
    console.error(
      "usage: kv_load.ts --system etcd|distkit-http|distkit-tcp --urls <a,b,c> " +
        "[--clients 16] [--seconds 5] [--warmup 1]",
    );
    Deno.exit(2);
  }
  const tcp = system === "distkit-tcp" ? connectKv(urls) : undefined;
  const http = tcp ? undefined : system === "etcd" ? etcdPuts(urls) : distkitHttpPuts(urls);
  const put = tcp ? clerkPut(tcp.clerk) : http!.put;
  const result = await runLoad({
    put,
    member: 0,
    clients: Number(values.clients ?? 16),
    seconds: Number(values.seconds ?? 5),
    warmupSeconds: Number(values.warmup ?? 1),
    keys: new Keys(crypto.randomUUID().slice(0, 5)),
  });
  console.log(JSON.stringify(result));
  await tcp?.close();
  http?.close();
}
