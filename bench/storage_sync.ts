/**
 * Where a durable write's time goes: per-commit latency and commits per
 * second of the storage a Raft node writes on each put, against bare Deno KV
 * and a plain append-only file, with one process and with several at once
 * (three nodes on one disk).
 *
 * Modes (each a loop of durable writes, one at a time unless `--depth`):
 * - `kv-storage`: `DenoKvStorage.save` of one small entry and a hard state
 *   whose commit index moves (what each node does for a 1-client put),
 *   its high-water mark recorded as today (page cache, lazy fsync);
 * - `seg-storage`: the same save through `SegmentLogStorage` (the log in
 *   preallocated segment files: one write and one `fdatasync` per save; its
 *   mark recorded the same way), timed once its next segment is zero-filled;
 * - `kv-bare`: one Deno KV atomic commit of one 100-byte value;
 * - `file-sync`: a 128-byte record appended to a file, then `syncData()`;
 * - `file-prealloc`: the same into a file written with zeros beforehand (as
 *   a log segment preallocated like etcd's), so no write grows the file and
 *   `syncData()` has no size to record;
 * - `file-group`: `--depth` writers queue records; one flusher writes all
 *   queued records in one write and one `syncData()` (group commit);
 * - `mark-write`: the high-water mark written and fsynced (as for a vote);
 * - `mark-record`: the mark recorded only (as for an ordinary save).
 *
 * Run: `deno run -A bench/storage_sync.ts [--seconds 3] [--procs 1,3]
 * [--modes kv-storage,seg-storage,kv-bare,file-sync,file-group,mark-write,mark-record]
 * [--depth 16] [--segment-bytes 67108864] [--dir /tmp/x]`. Children are `deno run -A` of this file
 * with `--child`; each writes into its own folder under `--dir` (default:
 * a new temporary folder on the disk `TMPDIR` names), removed afterwards.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { DenoKvStorage } from "../raft/kv_storage.ts";
import { HighWaterMark } from "../raft/high_water_mark.ts";
import { DEFAULT_SEGMENT_BYTES, SegmentLogStorage } from "../raft/segment_storage.ts";
import { quantile } from "./stats.ts";

const MODES = [
  "kv-storage",
  "seg-storage",
  "kv-bare",
  "file-sync",
  "file-prealloc",
  "file-group",
  "mark-write",
  "mark-record",
];
/** Bytes a `file-prealloc` file is filled with zeros beforehand (more than a run appends). */
const PREALLOC_BYTES = 64 * 1024 * 1024;
const USAGE = "usage: deno run -A bench/storage_sync.ts [--seconds 3] [--procs 1,3] " +
  `[--modes ${MODES.join(",")}] [--depth 16] [--segment-bytes N] [--dir DIR]`;

/** What one child measured. */
interface ChildResult {
  /** Latency of each timed write, ms. */
  latencies: number[];
  seconds: number;
  /** CPU time of the whole process (every thread) over the timed part, µs. */
  cpuMicros: number;
}

function parseOptions() {
  return parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "3" },
      warmup: { type: "string", default: "0.5" },
      procs: { type: "string", default: "1,3" },
      modes: { type: "string", default: MODES.join(",") },
      depth: { type: "string", default: "16" },
      "segment-bytes": { type: "string", default: String(DEFAULT_SEGMENT_BYTES) },
      dir: { type: "string" },
      child: { type: "string" },
      "start-at": { type: "string" },
    },
  });
}

/** Runs `write` in `depth` loops until `end`; the latencies of writes started at or after `from`. */
async function loop(
  write: (i: number) => Promise<void>,
  options: { depth: number; from: number; end: number },
): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (performance.now() < options.end) {
      const i = next++;
      const start = performance.now();
      await write(i);
      if (start >= options.from) latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: options.depth }, worker));
  return latencies;
}

/** A file that appends queued records with one write and one `syncData()` per batch. */
class GroupFile {
  #file: Deno.FsFile;
  #queue: { bytes: Uint8Array; done: () => void }[] = [];
  #flushing = false;
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }
  append(bytes: Uint8Array): Promise<void> {
    return new Promise((done) => {
      this.#queue.push({ bytes, done });
      if (!this.#flushing) this.#flush();
    });
  }
  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      const size = batch.reduce((n, r) => n + r.bytes.length, 0);
      const buffer = new Uint8Array(size);
      let at = 0;
      for (const r of batch) {
        buffer.set(r.bytes, at);
        at += r.bytes.length;
      }
      await writeAll(this.#file, buffer);
      await this.#file.syncData();
      for (const r of batch) r.done();
    }
    this.#flushing = false;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

async function child(mode: string, options: {
  dir: string;
  seconds: number;
  warmup: number;
  depth: number;
  startAt: number;
  segmentBytes: number;
}): Promise<ChildResult> {
  await Deno.mkdir(options.dir, { recursive: true });
  const record = new Uint8Array(128).fill(7);
  const value = new Uint8Array(100).fill(7);
  const command = "x".repeat(100);
  let write: (i: number) => Promise<void>;
  let close: () => Promise<void> | void;
  let depth = 1;
  if (mode === "kv-storage") {
    const storage = await DenoKvStorage.open(`${options.dir}/raft.kv`);
    await storage.load();
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [],
      resetLog: false,
    });
    write = (i) =>
      storage.save({
        hardState: { term: 1, vote: "a", commit: i },
        entries: [{ index: i + 1, term: 1, kind: "command", command }],
        resetLog: false,
      });
    close = () => storage.close();
  } else if (mode === "seg-storage") {
    const dir = `${options.dir}/raft.log`;
    const storage = await SegmentLogStorage.open(dir, { segmentBytes: options.segmentBytes });
    await storage.load();
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [],
      resetLog: false,
    });
    // The first save took the first segment and began zero-filling the next: wait for it.
    const next = `${dir}/${"2".padStart(16, "0")}.seg`;
    for (let waited = 0; !(await Deno.stat(next).then(() => true, () => false)); waited += 20) {
      if (waited > 60_000) throw new Error("seg-storage: the next segment was not made in 60 s");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    write = (i) =>
      storage.save({
        hardState: { term: 1, vote: "a", commit: i },
        entries: [{ index: i + 1, term: 1, kind: "command", command }],
        resetLog: false,
      });
    close = () => storage.close();
  } else if (mode === "kv-bare") {
    const kv = await Deno.openKv(`${options.dir}/bare.kv`);
    write = async (i) => {
      const result = await kv.atomic().set(["log", i], value).commit();
      if (!result.ok) throw new Error("kv-bare: a commit failed");
    };
    close = () => kv.close();
  } else if (mode === "file-prealloc") {
    const file = await Deno.open(`${options.dir}/log`, { write: true, create: true });
    const zeros = new Uint8Array(1024 * 1024);
    for (let at = 0; at < PREALLOC_BYTES; at += zeros.length) await writeAll(file, zeros);
    await file.sync();
    await file.seek(0, Deno.SeekMode.Start);
    write = async () => {
      await writeAll(file, record);
      await file.syncData();
    };
    close = () => file.close();
  } else if (mode === "file-sync" || mode === "file-group") {
    const file = await Deno.open(`${options.dir}/log`, {
      write: true,
      create: true,
      append: true,
    });
    if (mode === "file-sync") {
      write = async () => {
        await writeAll(file, record);
        await file.syncData();
      };
    } else {
      const group = new GroupFile(file);
      write = () => group.append(record);
      depth = options.depth;
    }
    close = () => file.close();
  } else if (mode === "mark-write" || mode === "mark-record") {
    const mark = await HighWaterMark.open(`${options.dir}/raft.kv.mark`);
    write = mode === "mark-write"
      ? (i) => mark.write({ term: 1, vote: "a", index: i + 1, logTerm: 1 })
      : (i) => {
        mark.record({ term: 1, vote: "a", index: i + 1, logTerm: 1 });
        return Promise.resolve();
      };
    close = () => mark.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  // Every process starts its timed part at the same moment.
  const wait = options.startAt - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const from = performance.now() + options.warmup * 1000;
  const end = from + options.seconds * 1000;
  // Writes started in the warm-up end inside the timed part: close enough.
  let cpuStart = process.cpuUsage();
  const timedStart = setTimeout(
    () => (cpuStart = process.cpuUsage()),
    Math.max(0, from - performance.now()),
  );
  const latencies = await loop(write, { depth, from, end });
  clearTimeout(timedStart);
  const cpu = process.cpuUsage(cpuStart);
  await close();
  return { latencies, seconds: options.seconds, cpuMicros: cpu.user + cpu.system };
}

async function runChildren(mode: string, procs: number, options: {
  dir: string;
  seconds: number;
  warmup: number;
  depth: number;
  segmentBytes: number;
}): Promise<ChildResult[]> {
  const startAt = Date.now() + 1500; // after every child's start-up
  const children = Array.from({ length: procs }, (_, k) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-kv",
        import.meta.filename!,
        "--child",
        mode,
        "--dir",
        `${options.dir}/${mode}-${procs}-${k}`,
        "--seconds",
        String(options.seconds),
        "--warmup",
        String(options.warmup),
        "--depth",
        String(options.depth),
        "--segment-bytes",
        String(options.segmentBytes),
        "--start-at",
        String(startAt),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output());
  const outputs = await Promise.all(children);
  return outputs.map((out, k) => {
    if (!out.success) throw new Error(`storage_sync: child ${k} of ${mode} failed`);
    return JSON.parse(new TextDecoder().decode(out.stdout)) as ChildResult;
  });
}

function fmt(n: number, digits = 2): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

async function main(): Promise<number> {
  let values: ReturnType<typeof parseOptions>["values"];
  try {
    ({ values } = parseOptions());
  } catch (err) {
    console.error(`storage_sync: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  const depth = Number(values.depth);
  const segmentBytes = Number(values["segment-bytes"]);
  const procs = values.procs.split(",").map(Number);
  const modes = values.modes.split(",");
  if (
    !(seconds > 0 && warmup >= 0 && Number.isInteger(depth) && depth >= 1 &&
      Number.isInteger(segmentBytes) && segmentBytes >= 4096 &&
      procs.every((p) => Number.isInteger(p) && p >= 1) && modes.every((m) => MODES.includes(m)))
  ) {
    console.error(
      `storage_sync: bad --seconds, --warmup, --depth, --segment-bytes, --procs or --modes\n${USAGE}`,
    );
    return 2;
  }
  if (values.child !== undefined) {
    const result = await child(values.child, {
      dir: values.dir!,
      seconds,
      warmup,
      depth,
      segmentBytes,
      startAt: Number(values["start-at"] ?? Date.now()),
    });
    console.log(JSON.stringify(result));
    return 0;
  }
  const dir = values.dir ?? await Deno.makeTempDir({ prefix: "storage_sync_" });
  console.log(
    `storage_sync: ${seconds} s timed after ${warmup} s warm-up per run, dir ${dir}, ` +
      `load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  console.log(
    "| mode | processes | depth | writes/s per process | writes/s all | p50 ms | p99 ms | p99.9 ms | max ms | CPU µs per write |",
  );
  console.log("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |");
  try {
    for (const mode of modes) {
      for (const p of procs) {
        const results = await runChildren(mode, p, { dir, seconds, warmup, depth, segmentBytes });
        const all = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
        const total = all.length / seconds;
        const d = mode === "file-group" ? depth : 1;
        console.log(
          `| ${mode} | ${p} | ${d} | ${fmt(total / p, 0)} | ${fmt(total, 0)} | ` +
            `${fmt(quantile(all, 0.5), 3)} | ${fmt(quantile(all, 0.99), 3)} | ` +
            `${fmt(quantile(all, 0.999), 3)} | ${fmt(all[all.length - 1], 2)} | ` +
            `${fmt(results.reduce((n, r) => n + r.cpuMicros, 0) / all.length, 0)} |`,
        );
      }
    }
  } finally {
    if (values.dir === undefined) await Deno.remove(dir, { recursive: true });
  }
  console.log(`load average at the end: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
