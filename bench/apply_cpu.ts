/**
 * CPU time per applied put, in process, for the KV service's in-memory
 * machine against its stored machine on a real Deno KV file (issue 19, "CPU
 * per put with the state on disk"). CPU time (user + system of the whole
 * process, `process.cpuUsage()`: Deno KV's SQLite threads included) is not
 * fooled by a busy machine the way puts per second are.
 *
 * Each measurement applies `--puts` entries in runs of `--runs` entries
 * (1, 8, 32: what a node hands its applier at once), each a put of a
 * `--value-bytes` value under a key `k%015d` drawn from `--keys`, with a
 * client session as the service's (`--clients` clients, each numbering its
 * writes). The memory machine is `KvStateMachine` behind `parseWrite` (as
 * `kv/server.ts` applies it); the stored one is `StoredKvState` in a
 * `StateStore` on `Deno.openKv` in a temporary folder, through the replica's
 * `StoredApplier` (each run committed at its last entry, as a node does
 * when it has no more ready). `bare` is the floor under the stored one:
 * the same Deno KV reads and commit per run with none of the store's work.
 * Machines and run sizes are interleaved within
 * each round; each machine starts from `--prefill` keys.
 *
 * ```sh
 * deno run -A bench/apply_cpu.ts [--runs 1,8,32] [--puts 4000] [--rounds 3] \
 *   [--keys 1000000] [--prefill 0] [--clients 16] [--value-bytes 64] [--machines memory,stored,stored-early,bare]
 * ```
 *
 * Prints one JSON line per measurement, then a table of medians (µs of CPU
 * per put, with the range over rounds).
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { realClock } from "../net/clock.ts";
import { silentLogger } from "../net/logger.ts";
import type { Applied } from "../raft/node_options.ts";
import { StoredApplier } from "../rsm/stored_machine.ts";
import { StateStore } from "../store/state_store.ts";
import { KvStateMachine } from "../kvstate/state.ts";
import { StoredKvState } from "../kvstate/stored_state.ts";
import { DEFAULT_KV_LIMITS, parseWrite } from "../kvstate/protocol.ts";
import type { KvResult } from "../kvstate/kv_types.ts";
import { quantile } from "./stats.ts";

/** One machine under measurement: applies a run of entries (committed when it resolves). */
interface Subject {
  name: string;
  applyRun(entries: Applied[]): Promise<void>;
  /** Resolves once everything applied is stored (the measurement's CPU includes it). */
  settle?(): Promise<void>;
  close(): Promise<void>;
}

interface Measurement {
  machine: string;
  run: number;
  round: number;
  puts: number;
  /** CPU (user + system) per put, µs. */
  cpuUs: number;
  /** Wall time per put, µs. */
  wallUs: number;
}

/** Makes the entries: puts of `valueBytes` under random keys, `clients` sessions numbering theirs. */
class Workload {
  readonly #keys: number;
  readonly #value: string;
  readonly #seqs: number[];
  #index = 0;
  #state = 12345;

  constructor(options: { keys: number; clients: number; valueBytes: number }) {
    this.#keys = options.keys;
    this.#value = "v".repeat(options.valueBytes);
    this.#seqs = new Array(options.clients).fill(0);
  }

  /** The next `n` entries, with consecutive log indexes. */
  next(n: number): Applied[] {
    const out: Applied[] = [];
    for (let i = 0; i < n; i++) {
      const c = this.#index % this.#seqs.length;
      const key = `k${String(this.#random() % this.#keys).padStart(15, "0")}`;
      out.push({
        type: "command",
        index: ++this.#index,
        term: 1,
        command: {
          client: `client-${c}`,
          seq: ++this.#seqs[c],
          write: { type: "put", key, value: this.#value },
        },
      });
    }
    return out;
  }

  /** xorshift32: the same keys for every machine and round. */
  #random(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }
}

function memorySubject(): Subject {
  const state = new KvStateMachine({ maxValueBytes: DEFAULT_KV_LIMITS.maxValueBytes });
  return {
    name: "memory",
    applyRun(entries) {
      for (const e of entries) {
        if (e.type !== "command") continue;
        const result = state.apply(parseWrite(e.command, DEFAULT_KV_LIMITS));
        if (!result.ok) throw new Error(`put refused: ${JSON.stringify(result)}`);
      }
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The floor under the stored machine: the Deno KV reads and writes a run
 * costs the store (its keys' rows read 10 at a time, then one atomic commit
 * of a row per key, a session row per client, the key count and the
 * applied point), with none of the store's own work.
 */
async function bareSubject(dir: string): Promise<Subject> {
  const kv = await Deno.openKv(`${dir}/bare.kv`);
  const row = new Uint8Array(64 + 5);
  const session = new Uint8Array(40);
  let applied = 0;
  return {
    name: "bare",
    async applyRun(entries) {
      const keys: string[] = [];
      const clients = new Set<string>();
      for (const e of entries) {
        if (e.type !== "command") continue;
        const c = e.command as { client: string; write: { key: string } };
        keys.push(c.write.key);
        clients.add(c.client);
      }
      for (let at = 0; at < keys.length; at += 10) {
        await kv.getMany(keys.slice(at, at + 10).map((k) => ["state", 1, "d", k]));
      }
      const op = kv.atomic();
      for (const k of keys) op.set(["state", 1, "d", k], row);
      for (const c of clients) op.set(["state", 1, "s", `c/${c}`], session);
      op.set(["state", 1, "s", "n"], session.subarray(0, 9));
      op.set(["state", "current"], session.subarray(0, 30 + (++applied % 2)));
      const result = await op.commit();
      if (!result.ok) throw new Error("a bare commit failed");
    },
    close: () => Promise.resolve(kv.close()),
  };
}

async function storedSubject(dir: string, early: boolean): Promise<Subject> {
  const kv = await Deno.openKv(`${dir}/${early ? "early" : "state"}.kv`);
  const store = await StateStore.open(kv);
  const machine = await StoredKvState.open(store, { limits: DEFAULT_KV_LIMITS });
  let failed: unknown;
  const applier = new StoredApplier<KvResult>(machine, {
    once: undefined,
    logger: silentLogger,
    node: "bench",
    clock: realClock,
    onFailure: (err) => failed = err,
    early,
  });
  let last = 0;
  return {
    name: early ? "stored-early" : "stored",
    async applyRun(entries) {
      let answered = 0;
      for (let i = 0; i < entries.length; i++) {
        await applier.take(entries[i], {
          last: i === entries.length - 1,
          done: (_item, outcome) => {
            if (outcome === undefined || "error" in outcome || !outcome.result.ok) {
              throw new Error(`put not applied: ${JSON.stringify(outcome)}`);
            }
            answered++;
          },
        });
      }
      if (failed !== undefined) throw failed;
      last = entries.at(-1)?.index ?? last;
      if (answered !== entries.length) {
        throw new Error(`${answered} of ${entries.length} puts answered after the run's commit`);
      }
    },
    settle: () => store.whenApplied(last),
    async close() {
      await applier.close();
      await store.close();
      kv.close();
    },
  };
}

async function measure(
  subject: Subject,
  workload: Workload,
  options: { run: number; puts: number },
): Promise<{ cpuUs: number; wallUs: number }> {
  const runs = Array.from(
    { length: Math.ceil(options.puts / options.run) },
    () => workload.next(options.run),
  );
  const puts = runs.length * options.run;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const entries of runs) await subject.applyRun(entries);
  await subject.settle?.();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / puts, wallUs: (wall * 1000) / puts };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "1,8,32" },
      puts: { type: "string", default: "4000" },
      rounds: { type: "string", default: "3" },
      keys: { type: "string", default: "1000000" },
      prefill: { type: "string", default: "0" },
      clients: { type: "string", default: "16" },
      "value-bytes": { type: "string", default: "64" },
      machines: { type: "string", default: "memory,stored" },
    },
  });
  const runSizes = values.runs.split(",").map(Number);
  const puts = Number(values.puts);
  const rounds = Number(values.rounds);
  const shape = {
    keys: Number(values.keys),
    clients: Number(values.clients),
    valueBytes: Number(values["value-bytes"]),
  };
  const names = values.machines.split(",");
  for (const n of [...runSizes, puts, rounds, shape.keys, shape.clients, shape.valueBytes]) {
    if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`not a positive integer: ${n}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "apply_cpu_" });
  try {
    const subjects: Subject[] = [];
    const workloads = new Map<string, Workload>();
    for (const name of names) {
      const subject = name === "memory"
        ? memorySubject()
        : name === "stored" || name === "stored-early"
        ? await storedSubject(dir, name === "stored-early")
        : name === "bare"
        ? await bareSubject(dir)
        : undefined;
      if (subject === undefined) {
        throw new TypeError(`no machine ${name} (memory, stored, stored-early, bare)`);
      }
      const workload = new Workload(shape);
      // Prefill in runs of 256 (not measured): the table the puts land in.
      for (let done = 0; done < Number(values.prefill); done += 256) {
        await subject.applyRun(workload.next(256));
      }
      subjects.push(subject);
      workloads.set(name, workload);
    }
    const results: Measurement[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Alternate the order, so neither machine always runs first (a warmer heap, a cooler CPU).
      const order = round % 2 === 1 ? subjects : [...subjects].reverse();
      for (const run of runSizes) {
        for (const subject of order) {
          const m = await measure(subject, workloads.get(subject.name)!, { run, puts });
          const line: Measurement = { machine: subject.name, run, round, puts, ...m };
          results.push(line);
          console.log(JSON.stringify(line));
        }
      }
    }
    for (const s of subjects) await s.close();
    console.log("\nmachine  run  CPU µs/put (median [min–max])  wall µs/put (median)");
    for (const name of names) {
      for (const run of runSizes) {
        const ms = results.filter((r) => r.machine === name && r.run === run);
        const cpu = ms.map((r) => r.cpuUs).sort((a, b) => a - b);
        const wall = ms.map((r) => r.wallUs).sort((a, b) => a - b);
        console.log(
          `${name.padEnd(8)} ${String(run).padStart(3)}  ${quantile(cpu, 0.5).toFixed(1)} ` +
            `[${cpu[0].toFixed(1)}–${cpu.at(-1)!.toFixed(1)}]`.padEnd(26) +
            `  ${quantile(wall, 0.5).toFixed(1)}`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
