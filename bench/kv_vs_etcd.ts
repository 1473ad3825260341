/**
 * distkit's KV service against etcd, the same workload in one session: puts
 * of 64-byte values under distinct 16-byte keys from 1, 16 and 64 concurrent
 * clients, 3 nodes on 127.0.0.1 with durable writes, and the failover gap
 * (the leader killed with SIGKILL under load → the first put acknowledged
 * through a survivor).
 *
 * - etcd: the `etcd` on PATH, 3 members with default settings (fsync of
 *   every WAL write), data in a fresh temporary folder, driven over its
 *   gRPC-JSON gateway (`POST /v3/kv/put`).
 * - distkit: `LocalCluster` (3 `distkit kv serve` processes, Deno KV storage
 *   in a fresh temporary folder), driven over its HTTP API (`PUT /kv/<key>`
 *   on the leader) with the same driver, and through the TCP `KvClerk`.
 *
 * Every measurement gets a fresh cluster; runs are interleaved (etcd,
 * distkit, ... for each client count, then the next round) and the table
 * shows the median of the rounds. When `go` is on PATH the HTTP rows are
 * measured again with a Go driver (`bench/kv_http_load.go`, standard library
 * only), to show whether the Deno driver limits them.
 *
 * With `--wrk` and `wrk` on PATH, the HTTP puts are measured again by wrk
 * (an independent load generator) with the scripts in `bench/wrk/`, and
 * with `--gets` linearizable reads of 10,000 preloaded keys too (wrk only).
 * `--ports LOW-HIGH` keeps every cluster's ports inside that range.
 * `--wrk-only` leaves out our own driver's rows (Deno and Go), so a round is
 * wrk's rows alone; `--get-clients 64` measures the gets at those client
 * counts only (default: every `--clients` count); `--no-repeat` keeps a
 * measurement however busy the rest of the machine was (for runs beside
 * deliberate CPU load, such as two `yes > /dev/null`, which would otherwise
 * be repeated every time).
 *
 * deno run -A bench/kv_vs_etcd.ts [--seconds 5] [--runs 3] [--clients 1,16,64]
 *   [--warmup 1] [--failover-clients 16] [--failover-runs 5] [--no-go] [--no-failover]
 *   [--wrk] [--gets] [--wrk-only] [--get-clients 64] [--no-repeat]
 *   [--ports 23000-23999] [--quiet-wait 30] [--write-benchmarks]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { delay } from "../net/async.ts";
import { LocalCluster } from "../cli/local_cluster.ts";
import { connectKv } from "../kv/node.ts";
import { writeSection } from "./benchmarks_md.ts";
import { git, machine, markdownTable as table } from "./bench_env.ts";
import { EtcdCluster, which } from "./etcd_cluster.ts";
import { PortRange } from "./ports.ts";
import { runWrk } from "./wrk_load.ts";
import {
  clerkPut,
  cpuMs,
  distkitHttpPuts,
  etcdPuts,
  type FailoverResult,
  Keys,
  type LoadResult,
  machineCpuMs,
  measureFailover,
  type Put,
  runLoad,
} from "./kv_load.ts";
import { median } from "./stats.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** One way of driving one system. */
export interface Variant {
  label: string;
  system: "etcd" | "distkit";
  api: "HTTP" | "TCP";
  driver: "Deno" | "Go" | "wrk";
  /** What the load does: puts (default) or linearizable gets. */
  op?: "put" | "get";
}

const ETCD_HTTP: Variant = { label: "etcd, HTTP", system: "etcd", api: "HTTP", driver: "Deno" };
const DISTKIT_HTTP: Variant = {
  label: "distkit, HTTP",
  system: "distkit",
  api: "HTTP",
  driver: "Deno",
};
const DISTKIT_TCP: Variant = {
  label: "distkit, TCP KvClerk",
  system: "distkit",
  api: "TCP",
  driver: "Deno",
};
const ETCD_GO: Variant = {
  label: "etcd, HTTP, Go driver",
  system: "etcd",
  api: "HTTP",
  driver: "Go",
};
const DISTKIT_GO: Variant = {
  label: "distkit, HTTP, Go driver",
  system: "distkit",
  api: "HTTP",
  driver: "Go",
};

const ETCD_WRK: Variant = { label: "etcd, HTTP, wrk", system: "etcd", api: "HTTP", driver: "wrk" };
const DISTKIT_WRK: Variant = {
  label: "distkit, HTTP, wrk",
  system: "distkit",
  api: "HTTP",
  driver: "wrk",
};
const ETCD_WRK_GET: Variant = { ...ETCD_WRK, label: "etcd, HTTP, wrk, get", op: "get" };
const DISTKIT_WRK_GET: Variant = { ...DISTKIT_WRK, label: "distkit, HTTP, wrk, get", op: "get" };

/** The etcd variant a distkit variant is compared with: the same driver and operation. */
function referenceOf(v: Variant): Variant {
  if (v.driver === "Go") return ETCD_GO;
  if (v.driver === "wrk") return v.op === "get" ? ETCD_WRK_GET : ETCD_WRK;
  return ETCD_HTTP;
}

/**
 * The variants measured at `clients` clients: every one of `all`, less the
 * get rows when `getClients` is given and leaves `clients` out.
 */
export function variantsAt(
  all: Variant[],
  clients: number,
  options: { getClients?: number[] } = {},
): Variant[] {
  const { getClients } = options;
  return all.filter((v) =>
    v.op !== "get" || getClients === undefined || getClients.includes(clients)
  );
}

/** The ports every cluster takes when `--ports` was given. */
let portRange: PortRange | undefined;
/** distkit's `--state` when `--state` was given (default: the node's, memory). */
let distkitState: "disk" | "memory" | undefined;
/** distkit's `--log` when `--log` was given (default: the node's, Deno KV). */
let distkitLog: "kv" | "segments" | undefined;

/** A running cluster of either kind, seen the same way. */
interface Cluster {
  /** HTTP base URLs (`http://host:port`) by member. */
  httpUrls: string[];
  /** TCP addresses for the clerk (distkit only). */
  peers: string[];
  leader(): Promise<number>;
  kill(i: number): Promise<void>;
  /** Process ids of the running members. */
  pids(): number[];
  stop(): Promise<void>;
}

/** Process ids whose command line mentions `text`. */
function pidsMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).includes(text)) {
        pids.push(Number(entry.name));
      }
    } catch { /* gone */ }
  }
  return pids;
}

/** Clusters running now, stopped on SIGINT or SIGTERM, and the data folders to remove then. */
const running = new Set<Cluster>();
const dataDirs = new Set<string>();

/** Starts a cluster of `system` and tracks it until stopped. */
async function startCluster(system: "etcd" | "distkit", etcd: string): Promise<Cluster> {
  const cluster = await startUntracked(system, etcd);
  running.add(cluster);
  return {
    ...cluster,
    stop: async () => {
      running.delete(cluster);
      await cluster.stop();
    },
  };
}

async function startUntracked(system: "etcd" | "distkit", etcd: string): Promise<Cluster> {
  const dataDir = await Deno.makeTempDir({ prefix: `kv-vs-etcd-${system}-` });
  dataDirs.add(dataDir);
  const cleanup = async () => {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    dataDirs.delete(dataDir);
  };
  try {
    if (system === "etcd") {
      const c = await EtcdCluster.start({ etcd, dataDir, ports: portRange?.take(6) });
      return {
        httpUrls: c.clientUrls,
        peers: [],
        leader: () => c.leader(),
        kill: (i) => c.kill(i),
        pids: () => c.pids(),
        stop: async () => {
          await c.stop();
          await cleanup();
        },
      };
    }
    // With a range, each node's HTTP port is in its upper half.
    const httpOffset = portRange ? Math.floor(portRange.size / 2) : undefined;
    const c = await LocalCluster.start({
      dataDir,
      ports: httpOffset === undefined ? undefined : portRange!.take(3, httpOffset),
      httpOffset,
      state: distkitState,
      raftLog: distkitLog,
    });
    return {
      httpUrls: c.peers.map((_, i) => `http://${c.httpAddress(i)}`),
      peers: c.peers,
      leader: () => c.leader(),
      kill: (i) => c.kill(i),
      pids: () => pidsMentioning(dataDir),
      stop: async () => {
        await c.stop();
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * CPU used while a load ran, in percent of one core: the driver's, the
 * servers' (summed), and everything else on the machine (other processes,
 * interrupts): a busy neighbour shows up there.
 */
interface Cpu {
  driver: number;
  servers: number;
  other: number;
}

type Measurement = LoadResult & { cpu: Cpu; load: number };

/**
 * CPU meter over a window: `start()` then `stop(seconds)`. The driver's CPU
 * time is read from /proc when `driverPid` is given, else passed to `stop`.
 */
function cpuMeter(serverPids: number[], driverPid?: number | "self") {
  let d0 = 0;
  let s0 = 0;
  let m0 = 0;
  const servers = () => serverPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  return {
    start() {
      if (driverPid !== undefined) d0 = cpuMs(driverPid);
      s0 = servers();
      m0 = machineCpuMs();
    },
    stop(seconds: number, driverMs?: number): Cpu {
      const used = driverMs ?? (driverPid === undefined ? NaN : cpuMs(driverPid) - d0);
      const percent = (ms: number) => ms / seconds / 10;
      const driver = percent(used);
      const server = percent(servers() - s0);
      const other = Math.max(0, percent(machineCpuMs() - m0) - driver - server);
      return { driver, servers: server, other };
    },
  };
}

/** A measurement during which other processes used more than this (percent of a core) is repeated. */
const OTHER_LIMIT = 25;
/** How many times a disturbed measurement is tried; the last try stands (marked † in the table). */
const TRIES = 4;

/**
 * Waits until the machine is quiet (under {@linkcode OTHER_LIMIT} percent of
 * a core busy over a second), at most `limitMs`; says so when it waits, and
 * carries on when the limit passes (the table shows the load of each row).
 */
async function waitQuiet(limitMs: number): Promise<void> {
  const start = Date.now();
  let said = false;
  while (Date.now() - start < limitMs) {
    const m0 = machineCpuMs();
    await delay(1000);
    const busy = (machineCpuMs() - m0) / 10;
    if (!(busy > OTHER_LIMIT)) return;
    if (!said) console.log(`  (waiting for the machine to be quiet: ${busy.toFixed(0)}% busy)`);
    said = true;
  }
  if (said) console.log(`  (not quiet after ${limitMs / 1000} s: measuring anyway)`);
}

/** The Deno driver's puts for a variant, and how to close its connections. */
function openDrivers(v: Variant, cluster: Cluster): { put: Put; close(): Promise<void> } {
  if (v.api === "TCP") {
    const { clerk, close } = connectKv(cluster.peers);
    return { put: clerkPut(clerk), close };
  }
  const http = v.system === "etcd" ? etcdPuts(cluster.httpUrls) : distkitHttpPuts(cluster.httpUrls);
  return { put: http.put, close: () => Promise.resolve(http.close()) };
}

async function measureDeno(
  variant: Variant,
  cluster: Cluster,
  leader: number,
  clients: number,
  seconds: number,
  warmup: number,
  prefix: string,
): Promise<Omit<Measurement, "load">> {
  const drivers = openDrivers(variant, cluster);
  try {
    const put = drivers.put;
    const pids = cluster.pids();
    const meter = cpuMeter(pids, "self");
    const result = await runLoad({
      put,
      member: leader,
      clients,
      seconds,
      warmupSeconds: warmup,
      keys: new Keys(prefix),
      onTimed: () => meter.start(),
    });
    return { ...result, cpu: meter.stop(seconds) };
  } finally {
    await drivers.close();
  }
}

async function measureGo(
  binary: string,
  variant: Variant,
  cluster: Cluster,
  leader: number,
  clients: number,
  seconds: number,
  warmup: number,
  prefix: string,
): Promise<Omit<Measurement, "load">> {
  const args = [
    "-system",
    variant.system === "etcd" ? "etcd" : "distkit-http",
    "-url",
    cluster.httpUrls[leader],
    "-clients",
    String(clients),
    "-seconds",
    String(seconds),
    "-warmup",
    String(warmup),
    "-prefix",
    prefix,
  ];
  const child = new Deno.Command(binary, { args, stdout: "piped", stderr: "piped" }).spawn();
  const pids = cluster.pids();
  const meter = cpuMeter(pids);
  let cpu: Cpu | undefined;
  let result: LoadResult | undefined;
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line === "timed") meter.start();
      else if (line.startsWith("{")) {
        const parsed = JSON.parse(line);
        cpu = meter.stop(seconds, parsed.cpuMs);
        result = parsed;
      }
    }
  }
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  const status = await child.status;
  if (!status.success || result === undefined || cpu === undefined) {
    throw new Error(`the Go driver failed (exit ${status.code}): ${stderr.slice(0, 500)}`);
  }
  return { ...result, cpu };
}

/** The 16-byte keys of the wrk scripts (`bench/wrk/common.lua`). */
function wrkKey(i: number): string {
  return `key-${String(i).padStart(12, "0")}`;
}

/** Puts every key the wrk get scripts read, 64 at a time, through the Deno driver. */
async function preloadWrkKeys(variant: Variant, cluster: Cluster, leader: number): Promise<void> {
  const http = variant.system === "etcd"
    ? etcdPuts(cluster.httpUrls)
    : distkitHttpPuts(cluster.httpUrls);
  try {
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < 10_000) await http.put(leader, wrkKey(next++));
    }));
  } finally {
    http.close();
  }
}

async function measureWrk(
  wrk: string,
  variant: Variant,
  cluster: Cluster,
  leader: number,
  clients: number,
  seconds: number,
  warmup: number,
): Promise<Omit<Measurement, "load">> {
  if (variant.op === "get") await preloadWrkKeys(variant, cluster, leader);
  const meter = cpuMeter(cluster.pids());
  const result = await runWrk({
    wrk,
    script: `${variant.system}_${variant.op ?? "put"}.lua`,
    url: cluster.httpUrls[leader],
    clients,
    seconds,
    warmupSeconds: warmup,
    onTimed: () => meter.start(),
  });
  return { ...result, cpu: meter.stop(seconds, result.cpuMs) };
}

/** Builds the Go driver into a temporary folder; undefined when there is no `go`. */
async function buildGo(): Promise<{ binary: string; dir: string } | undefined> {
  const go = which("go");
  if (go === undefined) return undefined;
  const dir = await Deno.makeTempDir({ prefix: "kv-vs-etcd-go-" });
  const binary = `${dir}/kv_http_load`;
  const out = await new Deno.Command(go, {
    args: ["build", "-o", binary, `${ROOT}bench/kv_http_load.go`],
    env: { GO111MODULE: "off" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    console.log(
      `(the Go driver did not build, skipping it: ${new TextDecoder().decode(out.stderr)})`,
    );
    await Deno.remove(dir, { recursive: true });
    return undefined;
  }
  return { binary, dir };
}

const int = (x: number) => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–";
const ms = (x: number) =>
  !Number.isFinite(x) ? "–" : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
const ratio = (x: number) => Number.isFinite(x) ? `${x.toFixed(2)}×` : "–";

const USAGE = "usage: deno run -A bench/kv_vs_etcd.ts [--seconds 5] [--runs 3] " +
  "[--clients 1,16,64] [--warmup 1] [--failover-clients 16] [--failover-runs 5] [--no-go] " +
  "[--no-failover] [--wrk] [--gets] [--wrk-only] [--get-clients 64] [--no-repeat] " +
  "[--ports LOW-HIGH] [--quiet-wait 30] [--write-benchmarks] [--state disk|memory] [--log kv|segments]";

function parseOptions() {
  return parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "5" },
      runs: { type: "string", default: "3" },
      warmup: { type: "string", default: "1" },
      clients: { type: "string", default: "1,16,64" },
      "failover-clients": { type: "string", default: "16" },
      "failover-runs": { type: "string", default: "5" },
      "no-go": { type: "boolean", default: false },
      "no-failover": { type: "boolean", default: false },
      wrk: { type: "boolean", default: false },
      gets: { type: "boolean", default: false },
      "wrk-only": { type: "boolean", default: false },
      "get-clients": { type: "string" },
      "no-repeat": { type: "boolean", default: false },
      ports: { type: "string" },
      "quiet-wait": { type: "string", default: "30" },
      "write-benchmarks": { type: "boolean", default: false },
      state: { type: "string" },
      log: { type: "string" },
    },
  });
}

async function main(): Promise<number> {
  let values: ReturnType<typeof parseOptions>["values"];
  try {
    ({ values } = parseOptions());
  } catch (err) {
    console.error(`kv_vs_etcd: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const seconds = Number(values.seconds);
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const clientCounts = values.clients.split(",").map(Number);
  const failoverClients = Number(values["failover-clients"]);
  const failoverRuns = values["no-failover"] ? 0 : Number(values["failover-runs"]);
  const quietWaitMs = Number(values["quiet-wait"]) * 1000;
  const getClients = values["get-clients"]?.split(",").map(Number);
  const tries = values["no-repeat"] ? 1 : TRIES;
  try {
    portRange = values.ports === undefined ? undefined : PortRange.parse(values.ports);
  } catch (err) {
    console.error(`kv_vs_etcd: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!(quietWaitMs >= 0)) {
    console.error(`kv_vs_etcd: --quiet-wait takes seconds (0 or more)\n${USAGE}`);
    return 2;
  }
  if (values.state !== undefined && values.state !== "disk" && values.state !== "memory") {
    console.error(`kv_vs_etcd: --state takes disk or memory, got "${values.state}"\n${USAGE}`);
    return 2;
  }
  distkitState = values.state;
  if (values.log !== undefined && values.log !== "kv" && values.log !== "segments") {
    console.error(`kv_vs_etcd: --log takes kv or segments, got "${values.log}"\n${USAGE}`);
    return 2;
  }
  distkitLog = values.log;
  const wrk = values.wrk || values.gets ? which("wrk") : undefined;
  if ((values.wrk || values.gets) && wrk === undefined) {
    console.log("(no `wrk` on PATH: the wrk rows are skipped; Debian/Ubuntu: `apt install wrk`)");
  }
  if (
    !(seconds > 0 && Number.isInteger(runs) && runs >= 1 && warmup >= 0 &&
      clientCounts.every((c) => Number.isInteger(c) && c >= 1) && failoverClients >= 1 &&
      (getClients ?? []).every((c) => Number.isInteger(c) && c >= 1) &&
      Number.isInteger(failoverRuns) && failoverRuns >= 0)
  ) {
    console.error(
      `kv_vs_etcd: bad --seconds, --runs, --warmup, --clients, --get-clients or --failover-*\n${USAGE}`,
    );
    return 2;
  }
  const etcd = which("etcd");
  if (etcd === undefined) {
    console.log(
      "etcd is not on PATH: measuring distkit alone. To compare, install etcd " +
        "(Debian/Ubuntu: `apt install etcd-server`) and run this again.",
    );
  }
  const go = values["no-go"] || etcd === undefined ? undefined : await buildGo();
  if (go === undefined && !values["no-go"] && etcd !== undefined) {
    console.log("(no `go` on PATH: the Go driver check is skipped)");
  }
  if (values["wrk-only"] && wrk === undefined) {
    console.error(`kv_vs_etcd: --wrk-only needs \`wrk\` on PATH and --wrk or --gets\n${USAGE}`);
    return 2;
  }
  const ours = !values["wrk-only"];
  const variants = [
    ...(ours && etcd ? [ETCD_HTTP] : []),
    ...(ours ? [DISTKIT_HTTP, DISTKIT_TCP] : []),
    ...(ours && go && etcd ? [ETCD_GO] : []),
    ...(ours && go ? [DISTKIT_GO] : []),
    ...(wrk && values.wrk ? [...(etcd ? [ETCD_WRK] : []), DISTKIT_WRK] : []),
    ...(wrk && values.gets ? [...(etcd ? [ETCD_WRK_GET] : []), DISTKIT_WRK_GET] : []),
  ];
  const failoverVariants = [...(etcd ? [ETCD_HTTP] : []), DISTKIT_HTTP, DISTKIT_TCP];
  const at = (clients: number) => variantsAt(variants, clients, { getClients });
  const interrupted = async () => {
    console.log("interrupted: stopping the clusters");
    await Promise.all([...running].map((c) => c.stop()));
    for (const dir of dataDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (go) await Deno.remove(go.dir, { recursive: true }).catch(() => {});
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  const startedAt = new Date();
  const loadAtStart = Deno.loadavg()[0];
  const loads = new Map<string, Measurement[]>();
  const failovers = new Map<string, FailoverResult[]>();
  const key = (v: Variant, c: number) => `${v.label}/${c}`;
  let repeated = 0;

  try {
    for (let run = 1; run <= runs; run++) {
      for (const clients of clientCounts) {
        for (const v of at(clients)) {
          let m: Measurement | undefined;
          for (let attempt = 1; attempt <= tries; attempt++) {
            await waitQuiet(quietWaitMs);
            const load = Deno.loadavg()[0];
            const cluster = await startCluster(v.system, etcd ?? "");
            try {
              const leader = await cluster.leader();
              const prefix = `${run}${v.driver[0]}${clients}`.slice(0, 5);
              const measured = v.driver === "Go"
                ? await measureGo(go!.binary, v, cluster, leader, clients, seconds, warmup, prefix)
                : v.driver === "wrk"
                ? await measureWrk(wrk!, v, cluster, leader, clients, seconds, warmup)
                : await measureDeno(v, cluster, leader, clients, seconds, warmup, prefix);
              m = { ...measured, load };
            } finally {
              await cluster.stop();
            }
            if (m.cpu.other <= OTHER_LIMIT || attempt === tries) break;
            repeated++;
            console.log(
              `  (again: other processes used ${m.cpu.other.toFixed(0)}% of a core meanwhile)`,
            );
          }
          loads.set(key(v, clients), [...(loads.get(key(v, clients)) ?? []), m!]);
          console.log(
            `run ${run}  ${v.label.padEnd(25)} ${String(clients).padStart(3)} clients  ` +
              `${int(m!.perSecond).padStart(6)}/s  p50 ${ms(m!.p50)} ms  p99 ${ms(m!.p99)} ms  ` +
              `load ${m!.load.toFixed(2)}  ` +
              `cpu: driver ${m!.cpu.driver.toFixed(0)}%, servers ${m!.cpu.servers.toFixed(0)}%, ` +
              `other ${m!.cpu.other.toFixed(0)}%` +
              (m!.errors ? `  ${m!.errors} errors (${m!.firstError})` : ""),
          );
        }
      }
    }
    for (let run = 1; run <= failoverRuns; run++) {
      for (const v of failoverVariants) {
        await waitQuiet(quietWaitMs);
        const cluster = await startCluster(v.system, etcd ?? "");
        let f: FailoverResult;
        const drivers = openDrivers(v, cluster);
        try {
          const leader = await cluster.leader();
          f = await measureFailover({
            put: drivers.put,
            members: cluster.httpUrls.length,
            leader,
            clients: failoverClients,
            kill: () => cluster.kill(leader),
            keys: new Keys(`${run}f`),
          });
        } finally {
          await drivers.close();
          await cluster.stop();
        }
        failovers.set(v.label, [...(failovers.get(v.label) ?? []), f]);
        console.log(
          `failover ${run}  ${v.label.padEnd(25)} gap ${
            f.gapMs === null ? "none within 20 s" : `${f.gapMs.toFixed(0)} ms`
          } (${f.failures} failed attempts after the kill)`,
        );
      }
    }
  } finally {
    if (go) await Deno.remove(go.dir, { recursive: true });
  }

  // The table: one row per variant and client count; ratios to etcd with the same driver.
  const rows: string[][] = [];
  for (const clients of clientCounts) {
    for (const v of at(clients)) {
      const ms_ = loads.get(key(v, clients)) ?? [];
      const reference = loads.get(key(referenceOf(v), clients));
      const per = median(ms_.map((m) => m.perSecond));
      const p50 = median(ms_.map((m) => m.p50));
      const p99 = median(ms_.map((m) => m.p99));
      const refPer = reference ? median(reference.map((m) => m.perSecond)) : NaN;
      const refP99 = reference ? median(reference.map((m) => m.p99)) : NaN;
      const errors = ms_.reduce((n, m) => n + m.errors, 0);
      rows.push([
        v.label,
        String(clients),
        ms_.map((m) => int(m.perSecond) + (m.cpu.other > OTHER_LIMIT ? "†" : "")).join(", "),
        `**${int(per)}**`,
        ms(p50),
        ms(p99),
        v.system === "etcd" ? "" : ratio(per / refPer),
        v.system === "etcd" ? "" : ratio(p99 / refP99),
        ["driver", "servers", "other"].map((k) =>
          `${median(ms_.map((m) => m.cpu[k as keyof Cpu])).toFixed(0)}%`
        ).join(" / "),
        ms_.map((m) => m.load.toFixed(1)).join(", "),
        errors ? String(errors) : "0",
      ]);
    }
  }
  const loadTable = table(
    [
      "system, API",
      "clients",
      "runs (ops/s)",
      "median ops/s",
      "p50 ms",
      "p99 ms",
      "ops/s vs etcd",
      "p99 vs etcd",
      "CPU driver / servers / other",
      "load avg (runs)",
      "errors",
    ],
    rows,
    [false, true, false, true, true, true, true, true, true, false, true],
  );
  const failoverRows = failoverVariants.flatMap((v) => {
    const fs = failovers.get(v.label);
    if (!fs) return [];
    const gaps = fs.map((f) => f.gapMs ?? NaN);
    return [[
      v.label,
      fs.map((f) => f.gapMs === null ? "none in 20 s" : int(f.gapMs)).join(", "),
      `**${int(median(gaps))} ms**`,
    ]];
  });
  const failoverTable = failoverRows.length
    ? table(["system, API", "runs (ms)", "median gap"], failoverRows, [false, false, true])
    : "";

  const commit = await git("rev-parse", "--short", "HEAD");
  const dirty = (await git("status", "--porcelain", "--", "kv", "raft", "net", "cli.ts")) !== "";
  const etcdVersion = etcd
    ? /etcd Version: (\S+)/.exec(
      new TextDecoder().decode(
        (await new Deno.Command(etcd, { args: ["--version"], stdout: "piped" }).output()).stdout,
      ),
    )?.[1] ?? "?"
    : "";
  const command = ["deno run -A bench/kv_vs_etcd.ts", ...Deno.args].join(" ");
  const summary = [
    `Run ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, \`${command}\`, on ` +
    `${machine()}, Deno ${Deno.version.deno}${etcd ? `, etcd ${etcdVersion}` : ""}; distkit ` +
    `at commit ${commit || "?"}${
      dirty ? " (with uncommitted changes in kv/, raft/, net/ or cli.ts)" : ""
    }. Load average ${loadAtStart.toFixed(2)} at the start, ${
      Deno.loadavg()[0].toFixed(2)
    } at the end.`,
    "",
    `Each measurement: a fresh cluster (data in a new temporary folder), ${warmup} s of ` +
    `warm-up, then ${seconds} s timed; the median of ${runs} rounds, each round interleaving ` +
    `the rows below. A put counts when acknowledged within the window; its latency runs from ` +
    `the call to the end of the response. HTTP rows: the same Deno driver for both (its own ` +
    `minimal HTTP/1.1 client, one keep-alive connection per client, to the leader); ` +
    `${
      go
        ? "Go driver rows: `bench/kv_http_load.go`, the same loops in Go's standard library"
        : "no Go driver rows"
    }. ` +
    `${
      wrk
        ? "wrk rows: wrk itself (2 threads, one keep-alive connection per client, to the " +
          "leader) with `bench/wrk/*.lua`: random keys among 10,000, 64-byte values; get rows " +
          "read keys preloaded before the timed run (linearizable reads on both systems). "
        : ""
    }` +
    `Load avg: the machine's 1-minute load average as each measurement started. ` +
    `CPU: percent of one core over the timed window (the machine has ` +
    `${navigator.hardwareConcurrency * 100}%): the driver's, the three servers' together, and ` +
    `everything else's; the driver and the servers share the cores. A measurement during which ` +
    (tries > 1
      ? `other processes used over ${OTHER_LIMIT}% was repeated (${repeated} were), up to ` +
        `${tries} times; † marks a run still disturbed at the last try (it counts in the median).`
      : `other processes used over ${OTHER_LIMIT}% was kept (--no-repeat), marked †.`),
    "",
    loadTable,
    ...(failoverTable
      ? [
        "",
        `Failover gap (${failoverRuns} runs, median): ${failoverClients} clients putting through ` +
        `the leader; after 2 s the leader is killed with SIGKILL; from then on the clients send ` +
        `to the survivors (HTTP: a follower's 307 is followed; the KvClerk finds the leader ` +
        `itself) and one more put starts every 10 ms through a survivor; the gap runs from the ` +
        `kill to the first acknowledged put sent after it.`,
        "",
        failoverTable,
      ]
      : []),
  ].join("\n");
  console.log(`\n${summary}\n`);

  if (values["write-benchmarks"]) {
    await writeSection("kv-vs-etcd", "kv: distkit vs etcd (issue #6)", summary);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
