/**
 * MapReduce word count: the distributed job (a coordinator and 1, 2 or 4
 * worker processes on 127.0.0.1) against the sequential runner and against
 * `tr -cs A-Za-z '\n' | sort | uniq -c`, on the 8 Gutenberg texts (when
 * ../shared/data/gutenberg is there) and on a generated corpus of about
 * 200 MB. Every measurement is a fresh set of processes; the variants are
 * interleaved round by round and the table gives the median.
 *
 * Wall time of a job: from starting the coordinator and the workers (all at
 * once: workers retry until the coordinator listens) to the moment every
 * output file is final (the coordinator's "job done"), so it includes
 * starting the processes. The sequential runner and the pipeline are timed
 * as processes too.
 *
 * Each round runs every variant once, in an order that turns from round to
 * round (so none is always first after a change of input or always last);
 * the 1-minute load average is read before each run and shown beside the
 * times, with the spread (min–max) of the rounds. Before each run the
 * driver waits, at most `--quiet-wait` seconds (default 20), until other
 * work used under a quarter of a core over a second, and shows that share
 * ("busy").
 *
 * deno run -A bench/mr_wc.ts [--runs 5] [--corpus-mb 200] [--workers 1,2,4]
 *   [--inputs texts,corpus] [--quiet-wait 20] [--write-benchmarks] [--baseline DIR]
 *
 * `--baseline DIR` runs the jobs of another distkit tree (say `git worktree
 * add /tmp/base main`) in the same rounds, interleaved with this tree's, and
 * adds their rows and ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { writeSection } from "./benchmarks_md.ts";
import { waitQuiet } from "./quiet.ts";
import { median } from "./stats.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = `${ROOT}cli.ts`;
const GUTENBERG = `${ROOT}../shared/data/gutenberg/`;
const PERMS = ["--allow-net=127.0.0.1", "--allow-read", "--allow-write", "--no-prompt"];

async function gutenbergFiles(): Promise<string[] | undefined> {
  try {
    const files: string[] = [];
    for await (const e of Deno.readDir(GUTENBERG)) {
      if (e.name.startsWith("pg-") && e.name.endsWith(".txt")) files.push(GUTENBERG + e.name);
    }
    return files.length > 0 ? files.sort() : undefined;
  } catch {
    return undefined;
  }
}

/** About `mb` MB of text in 8 files: the Gutenberg texts over and over, or generated words. */
async function corpus(mb: number, sources: string[] | undefined): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-mr-corpus-" });
  let text: string;
  if (sources) text = (await Promise.all(sources.map((f) => Deno.readTextFile(f)))).join("\n");
  else {
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const lines: string[] = [];
    for (let l = 0; l < 50_000; l++) {
      const words: string[] = [];
      for (let w = 0; w < 10; w++) {
        let word = "";
        for (let c = 0; c < 2 + (next() % 8); c++) word += String.fromCharCode(97 + (next() % 26));
        words.push(word);
      }
      lines.push(words.join(" "));
    }
    text = lines.join("\n") + "\n";
  }
  const perFile = Math.ceil((mb * 1e6) / 8);
  const files: string[] = [];
  for (let i = 0; i < 8; i++) {
    const file = `${dir}/part-${i}.txt`;
    const f = await Deno.open(file, { write: true, create: true });
    const bytes = new TextEncoder().encode(text);
    for (let written = 0; written < perFile; written += bytes.length) await f.write(bytes);
    f.close();
    files.push(file);
  }
  return files;
}

async function totalBytes(files: string[]): Promise<number> {
  let n = 0;
  for (const f of files) n += (await Deno.stat(f)).size;
  return n;
}

/**
 * Seconds for a distributed job with `workers` workers, run with `cli` (this
 * tree's cli.ts, or another tree's); checks its output against `expected`.
 */
async function job(
  files: string[],
  workers: number,
  expected: string,
  cli = CLI,
): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-mr-job-" });
  try {
    // Workers start with the coordinator (they retry until it listens), as a
    // deployment that starts them all at once would.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const address = `127.0.0.1:${(probe.addr as Deno.NetAddr).port}`;
    probe.close();
    const started = performance.now();
    const coordinator = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...PERMS,
        cli,
        "mr",
        "coordinator",
        "--listen",
        address,
        "--dir",
        dir,
        ...files,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const children = Array.from({ length: workers }, () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", ...PERMS, cli, "mr", "worker", "--coordinator", address, "--app", "wc"],
        cwd: dir,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn());
    const reader = coordinator.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    let finished: number | undefined;
    while (finished === undefined) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
      if (out.includes("job done")) finished = performance.now();
    }
    while (!(await reader.read()).done) { /* drain */ }
    const status = await coordinator.status;
    await Promise.all(children.map((c) => c.status));
    if (!status.success || finished === undefined) throw new Error(`the job failed: ${out}`);
    const lines: string[] = [];
    for (let r = 0; r < 10; r++) {
      lines.push(...(await Deno.readTextFile(`${dir}/mr-out-${r}`)).split("\n").filter((l) => l));
    }
    if (lines.sort().join("\n") !== expected) {
      throw new Error("the job's output differs from sequential wc");
    }
    return (finished - started) / 1000;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Seconds for `distkit mr sequential --app wc`; its sorted output. */
async function sequential(files: string[]): Promise<{ secs: number; lines: string }> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-mr-seq-" });
  try {
    const started = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, CLI, "mr", "sequential", "--app", "wc", "--dir", dir, ...files],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const secs = (performance.now() - started) / 1000;
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    const text = await Deno.readTextFile(`${dir}/mr-out-0`);
    return { secs, lines: text.split("\n").filter((l) => l).sort().join("\n") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Seconds for `tr -cs A-Za-z '\n' | sort | uniq -c` over the files. */
async function pipeline(files: string[]): Promise<number> {
  const quoted = files.map((f) => `'${f.replaceAll("'", "'\\''")}'`).join(" ");
  const started = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-c", `cat ${quoted} | tr -cs A-Za-z '\\n' | LC_ALL=C sort | uniq -c > /dev/null`],
    stdin: "null",
  }).output();
  if (!out.success) throw new Error("the tr | sort | uniq pipeline failed");
  return (performance.now() - started) / 1000;
}

/** The short commit hash of the git tree at `root`. */
async function commitOf(root: string): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["rev-parse", "--short", "HEAD"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "5" },
      "corpus-mb": { type: "string", default: "200" },
      workers: { type: "string", default: "1,2,4" },
      inputs: { type: "string", default: "texts,corpus" },
      "quiet-wait": { type: "string", default: "20" },
      "write-benchmarks": { type: "boolean", default: false },
      baseline: { type: "string" },
    },
  });
  // Another tree of distkit (a `git worktree` of an older commit) whose jobs
  // run in the same rounds, interleaved with this tree's.
  const baselineRoot = values.baseline?.replace(/\/?$/, "/");
  const baselineCommit = baselineRoot ? await commitOf(baselineRoot) : undefined;
  const runs = Number(values.runs);
  const workerCounts = values.workers.split(",").map(Number);
  const inputs = values.inputs.split(",");
  const texts = await gutenbergFiles();
  const datasets: { name: string; files: string[] }[] = [];
  if (inputs.includes("texts")) {
    if (texts) datasets.push({ name: "8 Gutenberg texts", files: texts });
    else console.log("../shared/data/gutenberg not found: no run on the 8 texts");
  }
  let big: string[] | undefined;
  if (inputs.includes("corpus")) {
    if (!texts) console.log("../shared/data/gutenberg not found: the corpus is generated text");
    big = await corpus(Number(values["corpus-mb"]), texts);
    datasets.push({ name: `generated corpus`, files: big });
  }
  const rows: string[] = [];
  const notes: string[] = [];
  const cpu = navigator.hardwareConcurrency;
  const load = () => Deno.loadavg()[0];
  const range = (xs: number[], digits: number) =>
    `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
  try {
    for (const { name, files } of datasets) {
      const bytes = await totalBytes(files);
      const mb = bytes / 1e6;
      const reference = await sequential(files); // warm-up, and the expected output
      const variants: { key: string; run: () => Promise<number> }[] = [
        { key: "sequential", run: async () => (await sequential(files)).secs },
        { key: "pipeline", run: () => pipeline(files) },
        ...workerCounts.map((w) => ({ key: `${w}`, run: () => job(files, w, reference.lines) })),
        ...(baselineRoot === undefined ? [] : workerCounts.map((w) => ({
          key: `${w}@baseline`,
          run: () => job(files, w, reference.lines, `${baselineRoot}cli.ts`),
        }))),
      ];
      const times: Record<string, number[]> = {};
      const loads: Record<string, number[]> = {};
      const busy: Record<string, number[]> = {};
      for (const v of variants) [times[v.key], loads[v.key], busy[v.key]] = [[], [], []];
      for (let round = 0; round < runs; round++) {
        for (let k = 0; k < variants.length; k++) {
          const v = variants[(k + round) % variants.length];
          busy[v.key].push(await waitQuiet(Number(values["quiet-wait"]) * 1000));
          loads[v.key].push(load());
          times[v.key].push(await v.run());
        }
        console.log(
          `${name}, round ${round + 1}: ` +
            variants.map(({ key }) =>
              `${key} ${times[key].at(-1)!.toFixed(2)} s (load ${
                loads[key].at(-1)!.toFixed(1)
              }, busy ${busy[key].at(-1)!.toFixed(0)}%)`
            ).join(", "),
        );
      }
      const seq = median(times.sequential);
      const pipe = median(times.pipeline);
      const one = median(times[`${workerCounts[0]}`]);
      /** Per-round ratios of `ref` to `xs` (how many times as fast `xs` was that round). */
      const perRound = (ref: number[], xs: number[]) => xs.map((x, i) => ref[i] / x);
      const row = (label: string, key: string) => {
        const xs = times[key];
        const t = median(xs);
        return `| ${name} (${mb.toFixed(1)} MB) | ${label} | ${
          xs.map((x) => x.toFixed(2)).join(", ")
        } | **${t.toFixed(2)}** | ${range(xs, 2)} | ${(mb / t).toFixed(1)} | ${
          (seq / t).toFixed(2)
        }× | ${(pipe / t).toFixed(2)}× (${range(perRound(times.pipeline, xs), 2)}) | ${
          (one / t).toFixed(2)
        }× | ${range(loads[key], 1)} | ${median(busy[key]).toFixed(0)} (${range(busy[key], 0)}) |`;
      };
      rows.push(row("sequential runner", "sequential"));
      rows.push(row("tr \\| sort \\| uniq -c", "pipeline"));
      for (const w of workerCounts) rows.push(row(`${w} worker${w === 1 ? "" : "s"}`, `${w}`));
      if (baselineRoot !== undefined) {
        for (const w of workerCounts) {
          rows.push(row(`${w} worker${w === 1 ? "" : "s"}, ${baselineCommit}`, `${w}@baseline`));
          notes.push(
            `${name}: ${w} worker${w === 1 ? "" : "s"} at ${baselineCommit} took ` +
              `${(median(times[`${w}@baseline`]) / median(times[`${w}`])).toFixed(2)}× this ` +
              `tree's time (rounds ${range(perRound(times[`${w}@baseline`], times[`${w}`]), 2)}).`,
          );
        }
      }
      if (workerCounts.includes(1) && workerCounts.includes(2)) {
        notes.push(
          `${name}: 2 workers are ${(median(times["1"]) / median(times["2"])).toFixed(2)}× as ` +
            `fast as 1 (rounds ${range(perRound(times["1"], times["2"]), 2)}); the sequential ` +
            `runner does ${(mb / seq).toFixed(1)} MB/s; one worker takes ` +
            `${(one / pipe).toFixed(2)}× the pipeline's time.`,
        );
      }
    }
  } finally {
    if (big) await Deno.remove(big[0].slice(0, big[0].lastIndexOf("/")), { recursive: true });
  }
  const commit = await commitOf(ROOT);
  const summary = [
    `Run: \`deno run -A bench/mr_wc.ts --runs ${runs} --corpus-mb ${values["corpus-mb"]} ` +
    `--workers ${values.workers} --inputs ${values.inputs} --quiet-wait ${values["quiet-wait"]}${
      baselineRoot ? ` --baseline <a worktree of ${baselineCommit}>` : ""
    }\` at ${commit} on ` +
    `${Deno.build.os}/${Deno.build.arch}, ${cpu} cores, Deno ${Deno.version.deno}, ` +
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; median of ` +
    `${runs} interleaved rounds (the order of the runs turns each round), each a fresh set of ` +
    `processes, with the spread (min–max), the 1-minute load average before each run, and the ` +
    `share of a core other work used in the second before it (the driver waits up to ` +
    `${values["quiet-wait"]} s for it to fall under 25%). A ` +
    `job's time runs from starting the coordinator and the workers (at once) to every output ` +
    `being final (process start-up included); its output is ` +
    `checked against the sequential runner's every time. The pipeline is ` +
    `\`cat FILES | tr -cs A-Za-z '\\n' | LC_ALL=C sort | uniq -c\` (ASCII letters only, so it ` +
    `does a little less than wc). The corpus is the Gutenberg texts repeated into 8 files ` +
    `(generated words when they are absent).`,
    "",
    "| input | run | runs (s) | median s | spread s | MB/s | vs sequential | vs pipeline (rounds) | vs first worker count | load | busy before (% of a core) |",
    "| ----- | --- | -------- | -------: | -------: | ---: | ------------: | -------------------: | --------------------: | ---: | ---: |",
    ...rows,
    "",
    ...notes,
  ].join("\n");
  console.log(`\n${summary}\n`);
  if (values["write-benchmarks"]) {
    await writeSection("mr-wc", "mapreduce: word count (issue #8)", summary);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
