/**
 * Issue 16 §1's load against etcd, for the side-by-side in BENCHMARKS.md: a
 * fresh 3-member etcd cluster (`bench/etcd_cluster.ts`, the `etcd` on PATH,
 * default settings: its request limit of 1.5 MiB takes a 1 MiB value), and
 * the load of `bench/overload_1mib.ts`: `--clients` clients (200, one
 * HTTP/1.1 connection each) putting 1 MiB values to a key of their own for
 * `--seconds` (20), pausing 100–300 ms after an answer that is not a success,
 * and a canary doing a put and a get every 100 ms. Sent to the leader through
 * etcd's gRPC-JSON gateway (`POST /v3/kv/put`, the value in base64: 1.33 MiB
 * a request). Prints puts acknowledged per second, errors by kind, leader
 * changes (`etcd_server_leader_changes_seen_total` of each member), the
 * canary's latency and each member's resident memory (before, peak, and at
 * each `--settle` time after the load).
 *
 * ```sh
 * deno run -A bench/overload_etcd.ts --clients 200 --seconds 20 --ports 24300-24305 --rounds 2
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { delay } from "../net/mod.ts";
import { residentBytes } from "../tests/proc_stats.ts";
import { MIB, VALUE_BYTES } from "../tests/overload_load.ts";
import { quantile } from "./stats.ts";
import { EtcdCluster, which } from "./etcd_cluster.ts";
import { Http1Client } from "./http1.ts";
import { PortRange } from "./ports.ts";

const USAGE = "usage: deno run -A bench/overload_etcd.ts [--clients 200] [--seconds 20] " +
  "[--rounds 1] [--ports LOW-HIGH (6 ports)] [--pause-ms 100] [--settle 30,120]";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** The gateway's put body for `key` and `value`. */
function putBody(key: string, value: Uint8Array): Uint8Array {
  return encoder.encode(JSON.stringify({ key: btoa(key), value: base64(value) }));
}

interface Tally {
  acked: number;
  failed: number;
  kinds: Map<string, number>;
  ackedMs: number[];
}

function count(tally: Tally, kind: string): void {
  tally.kinds.set(kind, (tally.kinds.get(kind) ?? 0) + 1);
}

/** An error answer's kind: its status and message, numbers taken out. */
function kindOf(status: number, text: string): string {
  let message = text;
  try {
    message = JSON.parse(text).error ?? JSON.parse(text).message ?? text;
  } catch { /* not JSON */ }
  return `${status} ${String(message).replace(/\d+/g, "N").slice(0, 100)}`;
}

async function leaderChanges(url: string): Promise<number> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const m = /^etcd_server_leader_changes_seen_total (\S+)$/m.exec(text);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

interface Options {
  clients: number;
  seconds: number;
  pauseMs: number;
  settle: number[];
}

async function oneRound(cluster: EtcdCluster, options: Options): Promise<void> {
  const leader = await cluster.leader();
  const url = cluster.clientUrls[leader];
  const pids = cluster.pids();
  const changesBefore = await Promise.all(cluster.clientUrls.map(leaderChanges));
  const rssBefore = await Promise.all(pids.map((p) => residentBytes(p).then((b) => b ?? 0)));
  const tally: Tally = { acked: 0, failed: 0, kinds: new Map(), ackedMs: [] };
  const canaryMs: number[] = [];
  let canaryFailures = 0;
  const peak = pids.map(() => 0);
  let stop = false;
  const load1 = [Deno.loadavg()[0]];
  const client = async (n: number) => {
    const http = new Http1Client();
    const value = new Uint8Array(VALUE_BYTES).fill(0x78);
    try {
      for (let seq = 1; !stop; seq++) {
        encoder.encodeInto(`<${n}:${seq}>`, value);
        const body = putBody(`load-${n}`, value);
        const started = performance.now();
        let ok = false;
        try {
          const res = await http.request("POST", `${url}/v3/kv/put`, {
            body,
            signal: AbortSignal.timeout(20_000),
          });
          ok = res.status === 200;
          if (ok) {
            tally.acked++;
            tally.ackedMs.push(performance.now() - started);
          } else count(tally, kindOf(res.status, decoder.decode(res.body)));
        } catch (err) {
          count(tally, `no answer: ${(err as Error).message.slice(0, 60)}`);
        }
        if (!ok) {
          tally.failed++;
          await delay(options.pauseMs + Math.random() * 200);
        }
      }
    } finally {
      http.close();
    }
  };
  const canary = async () => {
    const http = new Http1Client();
    try {
      for (let i = 0; !stop; i++) {
        const started = performance.now();
        try {
          const put = await http.request("POST", `${url}/v3/kv/put`, {
            body: putBody("canary", encoder.encode(String(i))),
            signal: AbortSignal.timeout(10_000),
          });
          const got = await http.request("POST", `${url}/v3/kv/range`, {
            body: encoder.encode(JSON.stringify({ key: btoa("canary") })),
            signal: AbortSignal.timeout(10_000),
          });
          if (put.status !== 200 || got.status !== 200) {
            canaryFailures++;
            count(tally, `canary failed: ${put.status}/${got.status}`);
          }
        } catch (err) {
          canaryFailures++;
          count(tally, `canary failed: ${(err as Error).message.slice(0, 60)}`);
        }
        canaryMs.push(performance.now() - started);
        await delay(100);
      }
    } finally {
      http.close();
    }
  };
  const sampler = (async () => {
    while (!stop) {
      const now = await Promise.all(pids.map((p) => residentBytes(p)));
      now.forEach((b, i) => peak[i] = Math.max(peak[i], b ?? 0));
      await delay(100);
    }
  })();
  const started = performance.now();
  const clients = [...Array(options.clients).keys()].map(client);
  const canaryDone = canary();
  for (let second = 1;;) {
    await delay(100);
    const elapsed = performance.now() - started;
    if (elapsed >= second * 1000) {
      if (second % 5 === 0) {
        load1.push(Deno.loadavg()[0]);
        console.error(`  ${second} s: ${tally.acked} acknowledged, ${tally.failed} not`);
      }
      second++;
    }
    if (elapsed >= options.seconds * 1000) break;
  }
  stop = true;
  await Promise.all(clients);
  const elapsedS = (performance.now() - started) / 1000;
  await canaryDone;
  await sampler;
  load1.push(Deno.loadavg()[0]);
  const changesAfter = await Promise.all(cluster.clientUrls.map(leaderChanges));
  const settled: number[][] = [];
  let waited = 0;
  for (const s of options.settle) {
    await delay((s - waited) * 1000);
    waited = s;
    settled.push(await Promise.all(pids.map((p) => residentBytes(p).then((b) => b ?? 0))));
  }
  tally.ackedMs.sort((a, b) => a - b);
  canaryMs.sort((a, b) => a - b);
  const mib = (b: number) => (b / MIB).toFixed(0);
  const ms = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(0);
  console.log(
    `\netcd: ${options.clients} clients × 1 MiB for ${options.seconds} s (a pause of ` +
      `${options.pauseMs}–${options.pauseMs + 200} ms after each failure)`,
  );
  console.log(
    `  load average (1 min) before / every 5 s / after  ${load1.map((l) => l.toFixed(2))}`,
  );
  console.log(
    `  puts acknowledged  ${tally.acked} (${(tally.acked / elapsedS).toFixed(1)}/s; latency p50 ${
      ms(quantile(tally.ackedMs, 0.5))
    } ms, p99 ${ms(quantile(tally.ackedMs, 0.99))} ms); not acknowledged ${tally.failed}`,
  );
  for (const [kind, n] of [...tally.kinds].sort((a, b) => b[1] - a[1])) {
    console.log(`    ${n} × ${kind}`);
  }
  console.log(
    `  leader changes seen per member during the load  ${
      changesAfter.map((a, i) => a - changesBefore[i]).join(", ")
    }`,
  );
  console.log(
    `  canary p50 / p99 / max  ${[0.5, 0.99].map((q) => ms(quantile(canaryMs, q))).join(" / ")} / ${
      ms(canaryMs.at(-1) ?? NaN)
    } ms (${canaryMs.length} rounds, ${canaryFailures} failed)`,
  );
  pids.forEach((_, i) => {
    console.log(
      `  member ${i} RSS MiB before / peak / ${options.settle.map((s) => `+${s} s`).join(" / ")}  ${
        [rssBefore[i], peak[i], ...settled.map((s) => s[i])].map(mib).join(" / ")
      }`,
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      clients: { type: "string", default: "200" },
      seconds: { type: "string", default: "20" },
      rounds: { type: "string", default: "1" },
      ports: { type: "string" },
      "pause-ms": { type: "string", default: "100" },
      settle: { type: "string", default: "30,120" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const numbers = (text: string, what: string) =>
    text.split(",").map((s) => {
      const n = Number(s);
      if (!(n >= 0)) throw new RangeError(`${what} takes numbers >= 0, got "${text}"\n${USAGE}`);
      return n;
    });
  const [clients] = numbers(values.clients, "--clients");
  const [seconds] = numbers(values.seconds, "--seconds");
  const [rounds] = numbers(values.rounds, "--rounds");
  const [pauseMs] = numbers(values["pause-ms"], "--pause-ms");
  const settle = numbers(values.settle, "--settle");
  const etcd = which("etcd");
  if (etcd === undefined) throw new Error("no etcd on PATH; install it (apt-get install etcd)");
  const version = decoder.decode(
    (await new Deno.Command(etcd, { args: ["--version"], stdout: "piped" }).output()).stdout,
  ).split("\n")[0];
  console.log(`overload_etcd: ${version}, ${navigator.hardwareConcurrency} cores`);
  for (let r = 1; r <= rounds; r++) {
    const dataDir = await Deno.makeTempDir({ prefix: "overload-etcd-" });
    const ports = values.ports === undefined ? undefined : PortRange.parse(values.ports).take(6);
    const cluster = await EtcdCluster.start({ etcd, dataDir, ports });
    const interrupted = () => {
      cluster.stop().finally(() => Deno.exit(130));
    };
    Deno.addSignalListener("SIGINT", interrupted);
    try {
      await oneRound(cluster, { clients, seconds, pauseMs, settle });
    } finally {
      await cluster.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      Deno.removeSignalListener("SIGINT", interrupted);
    }
  }
}

if (import.meta.main) await main();
