/**
 * Linearizability checker timings on the real histories of
 * `../shared/data/histories` (the porcupine checker's test data): median of
 * five runs of `checkOperations` with default options per case (after one
 * warm-up run, for the JIT), next to porcupine's (Go) medians on the same
 * 2-core machine, then the process's peak memory. Then the append histories
 * of issue #21, decided by inference: key "0" of c50-bad (which porcupine
 * never finishes), a 30,000-operation history in the shape of `distkit demo`'s
 * (cli/workload.ts over an in-memory store), and a generated 1,000,000-operation
 * one (1,000 keys, 8 clients each); `--export DIR` also writes those three as
 * EDN files, for porcupine.
 *
 * ```sh
 * deno run --allow-read --allow-env bench/checker_load.ts [folder] [--export DIR]
 * ```
 *
 * The folder defaults to `$DISTKIT_HISTORIES`, then `../shared/data/histories`
 * next to the project; when absent the script says so and exits with 0.
 * Histories are read with `parseHistory` (checker/formats.ts).
 *
 * @module
 */
import {
  checkOperations,
  type CheckResult,
  kvMapModel,
  kvModel,
  type Model,
  modelsByName,
  type NondeterministicModel,
  type Operation,
  parseHistory,
} from "../checker/mod.ts";
import { appendHistory, type KvOperation } from "../checker/test_util.ts";
import { AppendWorkload } from "../cli/workload.ts";
import { Random } from "../net/random.ts";
import { median } from "./stats.ts";

/**
 * Porcupine (Go) on this machine, median ms of 5 runs: the figures the issue
 * asks to beat ("issue"; its jepsen total is over porcupine's 102 logs), and
 * those of porcupine's checker.go and test models (kv, etcd, and a map state
 * for the unpartitioned case) run with Go 1.19 on the histories here
 * ("measured": the median over several sessions of 5 runs each; kv/c50-bad varies
 * from 17 to 58 ms with Go's scheduling, the others by about 10%; its jepsen
 * total is over the same logs as ours). c50-ok and kv-map were re-measured for
 * issue 20 (bench/porcupine/main.go, 2026-12-07): the 1,960 and 17,600 ms
 * first recorded did not reproduce: 7 rounds at load 1.8–2.0 gave c50-ok
 * 194–242 ms (median 232; the issue measured 151–244) and kv-map 2,023–2,668
 * ms (median 2,317).
 */
const PORCUPINE_MS: Record<string, { issue: number; measured: number }> = {
  "kv/c10-ok": { issue: 1.3, measured: 0.8 },
  "kv/c50-ok": { issue: 198, measured: 232 },
  "kv/c50-bad": { issue: 37, measured: 44 },
  "jepsen/etcd_002": { issue: 209, measured: 182 },
  "jepsen/etcd_007": { issue: 139, measured: 120 },
  "jepsen/etcd_057": { issue: 63, measured: 60 },
  "jepsen (all)": { issue: 555, measured: 395 },
  "kv/c10-ok, unpartitioned (kv-map)": { issue: 2891, measured: 2317 },
};

const RUNS = 5;

const exportAt = Deno.args.indexOf("--export");
const exportDir = exportAt >= 0 ? Deno.args[exportAt + 1] : undefined;
const positional = exportAt < 0
  ? Deno.args
  : Deno.args.filter((_, i) => i !== exportAt && i !== exportAt + 1);

/**
 * Porcupine on the issue #21 histories (its checker.go with the kv model of its
 * tests, CheckEventsTimeout with 10 minutes, on the EDN files `--export` writes;
 * measured by hand, see BENCHMARKS.md): ms, or why it gave no answer.
 */
const PORCUPINE_21: Record<string, string> = {
  'kv/c50-bad key "0"': "no answer (past 12 GiB after 398 s)",
  "demo-shaped, 30,000 ops": "3,250 ms",
};

function historiesFolder(): string | undefined {
  const candidates = [
    positional[0],
    Deno.env.get("DISTKIT_HISTORIES"),
    new URL("../../shared/data/histories", import.meta.url).pathname,
  ];
  for (const dir of candidates) {
    if (!dir) continue;
    try {
      if (Deno.statSync(dir).isDirectory) return dir;
    } catch {
      // not there
    }
  }
  return undefined;
}

// deno-lint-ignore no-explicit-any
type AnyModel = Model<any, any, any> | NondeterministicModel<any, any, any>;

interface Case {
  name: string;
  /** (model, operations) pairs checked one after the other in one timed run. */
  histories: { model: AnyModel; operations: Operation[]; expect: string }[];
}

function load(dir: string, file: string, model?: AnyModel): Case["histories"][number] {
  const parsed = parseHistory(Deno.readTextFileSync(`${dir}/${file}`));
  const base = file.split("/").pop()!.replace(/\.\w+$/, "");
  // Known verdicts: ../shared/data/histories/README.md.
  const linearizable = file.startsWith("kv/")
    ? base.endsWith("-ok")
    : LINEARIZABLE_JEPSEN.has(base.slice(-3));
  return {
    model: model ?? modelsByName[parsed.model!],
    operations: parsed.operations,
    expect: linearizable ? "linearizable" : "not linearizable",
  };
}

const LINEARIZABLE_JEPSEN = new Set(
  "002 005 007 018 025 031 038 045 048 049 051 053 056 067".split(" "),
);

function peakRssMiB(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux, or no permission: fall back to the current size
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

function time(c: Case): { ms: number; verdicts: string[] } {
  const samples: number[] = [];
  let verdicts: string[] = [];
  for (const h of c.histories) checkOperations(h.model, h.operations); // warm-up
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    const results: CheckResult[] = c.histories.map((h) => checkOperations(h.model, h.operations));
    samples.push(performance.now() - t0);
    verdicts = results.map((r) => r.verdict);
  }
  return { ms: median(samples), verdicts };
}

async function main(): Promise<number> {
  const dir = historiesFolder();
  if (dir === undefined) {
    console.log(
      "skipping the checker benchmark: no histories folder (pass one, set DISTKIT_HISTORIES, " +
        "or put porcupine's test data in ../shared/data/histories)",
    );
    return 0;
  }
  const jepsen = [...Deno.readDirSync(`${dir}/jepsen`)].map((e) => e.name).filter((f) =>
    f.endsWith(".log")
  ).sort();
  const cases: Case[] = [
    { name: "kv/c10-ok", histories: [load(dir, "kv/c10-ok.txt")] },
    { name: "kv/c50-ok", histories: [load(dir, "kv/c50-ok.txt")] },
    { name: "kv/c50-bad", histories: [load(dir, "kv/c50-bad.txt")] },
    { name: "jepsen/etcd_002", histories: [load(dir, "jepsen/etcd_002.log")] },
    { name: "jepsen/etcd_007", histories: [load(dir, "jepsen/etcd_007.log")] },
    { name: "jepsen/etcd_057", histories: [load(dir, "jepsen/etcd_057.log")] },
    { name: "jepsen (all)", histories: jepsen.map((f) => load(dir, `jepsen/${f}`)) },
    {
      name: "kv/c10-ok, unpartitioned (kv-map)",
      histories: [load(dir, "kv/c10-ok.txt", kvMapModel)],
    },
  ];
  let wrong = million();
  console.log(
    `checker benchmark: ${dir}, median of ${RUNS} runs after a warm-up, default options`,
  );
  console.log(
    `${"history".padEnd(36)}${"ops".padStart(6)}${"ms".padStart(9)}  ${
      "porcupine ms: issue".padStart(19)
    }` +
      `${"measured".padStart(10)}  ${"ratio to: issue".padStart(15)}${
        "measured".padStart(10)
      }  verdict`,
  );
  for (const c of cases) {
    const { ms, verdicts } = time(c);
    const ops = c.histories.reduce((n, h) => n + h.operations.length, 0);
    const bad = verdicts.filter((v, i) => v !== c.histories[i].expect).length;
    wrong += bad;
    const verdict = verdicts.length === 1
      ? verdicts[0]
      : `${verdicts.filter((v) => v === "linearizable").length} of ${verdicts.length} linearizable`;
    const ref = PORCUPINE_MS[c.name];
    const label = c.name === "jepsen (all)" ? `jepsen (all ${jepsen.length} logs)` : c.name;
    const cell = (x: number | undefined, width: number, digits = 1) =>
      (x === undefined ? "" : x.toFixed(digits)).padStart(width);
    console.log(
      `${label.padEnd(36)}${String(ops).padStart(6)}${ms.toFixed(1).padStart(9)}  ${
        cell(ref?.issue, 19)
      }${cell(ref?.measured, 10)}  ${cell(ref && ms / ref.issue, 15, 2)}${
        cell(ref && ms / ref.measured, 10, 2)
      }  ${verdict}${bad ? `  WRONG (${bad} not as expected)` : ""}`,
    );
  }
  console.log(`peak RSS: ${peakRssMiB().toFixed(0)} MiB`);
  wrong += await inference(dir);
  return wrong === 0 ? 0 : 1;
}

/**
 * A history in the shape of `distkit demo`'s: cli/workload.ts's AppendWorkload
 * (8 clients, 4 keys, appends and gets alternating) over an in-memory store
 * whose calls take effect after a random number of turns, until `total`
 * operations; the strings are copied flat, as if read from the wire.
 */
async function demoShaped(random: Random, total: number): Promise<KvOperation[]> {
  const store = new Map<string, string>();
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await Promise.resolve();
  };
  const clerk = () => ({
    append: async (key: string, value: string) => {
      await turns(random.int(20));
      store.set(key, (store.get(key) ?? "") + value);
      await turns(random.int(20));
    },
    get: async (key: string) => {
      await turns(random.int(20));
      const value = store.get(key) ?? "";
      await turns(random.int(20));
      return value;
    },
  });
  const workload = new AppendWorkload();
  const running = workload.start(Array.from({ length: 8 }, clerk));
  while (workload.completed < total) await turns(200);
  await running.stop();
  return JSON.parse(JSON.stringify(workload.history.slice(0, total)));
}

/** The history as EDN lines in time order (calls before returns at equal times), for porcupine. */
function toEdn(history: KvOperation[]): string {
  const events: [number, number, string][] = [];
  history.forEach((op, i) => {
    const { op: f, key, value } = op.input;
    const v = f === "get" ? "nil" : JSON.stringify(value);
    const head = `{:process ${op.client}, :type`;
    events.push([
      op.call,
      i,
      `${head} :invoke, :f :${f}, :key ${JSON.stringify(key)}, :value ${v}}`,
    ]);
    if (op.unknown) return;
    const out = f === "get" ? JSON.stringify(op.output) : v;
    events.push([
      op.return,
      history.length + i,
      `${head} :ok, :f :${f}, :key "${key}", :value ${out}}`,
    ]);
  });
  events.sort((a, b) =>
    a[0] - b[0] || (a[1] < history.length ? 0 : 1) - (b[1] < history.length ? 0 : 1) || a[1] - b[1]
  );
  return events.map((e) => e[2]).join("\n") + "\n";
}

async function inference(dir: string): Promise<number> {
  console.log(
    "\nissue #21: append histories, decided by inference (median of 5 after a warm-up; " +
      "the 1,000,000-operation ones: one run each)",
  );
  const key0 =
    (parseHistory(Deno.readTextFileSync(`${dir}/kv/c50-bad.txt`)).operations as KvOperation[])
      .filter((op) => op.input.key === "0");
  const demo = await demoShaped(new Random(21), 30_000);
  const cases: { name: string; ops: KvOperation[]; expect: string; runs: number }[] = [
    { name: 'kv/c50-bad key "0"', ops: key0, expect: "not linearizable", runs: RUNS },
    { name: "demo-shaped, 30,000 ops", ops: demo, expect: "linearizable", runs: RUNS },
  ];
  let wrong = 0;
  const row = (name: string, ops: number, ms: number, verdict: string, extra = "") =>
    console.log(
      `${name.padEnd(46)}${String(ops).padStart(9)}${ms.toFixed(1).padStart(10)} ms  ${
        verdict.padEnd(17)
      }porcupine: ${PORCUPINE_21[name] || "see BENCHMARKS.md"}${extra}`,
    );
  for (const c of cases) {
    checkOperations(kvModel, c.ops); // warm-up
    const samples: number[] = [];
    let verdict = "";
    for (let run = 0; run < c.runs; run++) {
      const r = checkOperations(kvModel, c.ops);
      samples.push(r.elapsedMs);
      verdict = r.verdict;
    }
    if (verdict !== c.expect) wrong++;
    row(c.name, c.ops.length, median(samples), verdict);
  }
  // The general search on key "0", for comparison: it runs into its memory budget.
  const searched = checkOperations(kvModel, key0, { inference: false });
  console.log(
    `${"  the same, search only (default budgets)".padEnd(46)}${String(key0.length).padStart(9)}${
      searched.elapsedMs.toFixed(0).padStart(10)
    } ms  ${searched.verdict} (${searched.gaveUp} budget: ${searched.states} states)`,
  );
  if (exportDir) {
    Deno.writeTextFileSync(`${exportDir}/c50-bad-key0.txt`, toEdn(key0));
    Deno.writeTextFileSync(`${exportDir}/demo-30k.txt`, toEdn(demo));
  }
  return wrong;
}

/**
 * The generated 1,000,000-operation history (1,000 keys, 8 clients per key, 2%
 * puts), checked once; then with one late read of a key made to return the
 * empty value (a lost key), which cannot be linearized. Run first, so the
 * process's peak memory is this case's.
 */
function million(): number {
  const t0 = performance.now();
  const history = appendHistory(new Random(2101), {
    operations: 1_000_000,
    keys: 1000,
    clientsPerKey: 8,
    putChance: 0.02,
    unknownChance: 0,
  });
  const made = performance.now() - t0;
  const good = checkOperations(kvModel, history);
  const late = history.findLast((op) =>
    op.input.key === "500" && op.input.op === "get" && op.output !== ""
  )!;
  const saw = late.output;
  late.output = "";
  const bad = checkOperations(kvModel, history);
  console.log(
    `generated 1,000,000-operation append history (made in ${
      made.toFixed(0)
    } ms): ${good.verdict} in ${
      good.elapsedMs.toFixed(0)
    } ms; with one late read of the empty value: ${bad.verdict} in ${
      bad.elapsedMs.toFixed(0)
    } ms; ` +
      `peak RSS of the process so far: ${peakRssMiB().toFixed(0)} MiB`,
  );
  if (exportDir) {
    Deno.writeTextFileSync(`${exportDir}/append-1m-bad.txt`, toEdn(history));
    late.output = saw;
    Deno.writeTextFileSync(`${exportDir}/append-1m.txt`, toEdn(history));
  }
  return (good.verdict === "linearizable" ? 0 : 1) + (bad.verdict === "not linearizable" ? 0 : 1);
}

Deno.exit(await main());
