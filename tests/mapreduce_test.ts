/**
 * The 7 MapReduce scenarios of LABS.md §6, with a real coordinator and real
 * worker processes on 127.0.0.1 (`distkit mr ...`), on the 8 Gutenberg texts
 * of ../shared/data/gutenberg when present and on generated text otherwise.
 * Outputs are compared, sorted, with the sequential runner's.
 */
import assert from "node:assert/strict";
import { loadApp, runSequential } from "../mapreduce/mod.ts";
import { Random } from "../net/mod.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
/** The standalone worker's entry point (what `deno task compile:worker` compiles). */
const WORKER_MAIN = new URL("../cli/mr_worker.ts", import.meta.url).pathname;
const GUTENBERG = new URL("../../shared/data/gutenberg/", import.meta.url).pathname;

/** The inputs: the 8 texts when present, else 8 generated ones (named so early_exit's slow keys occur). */
async function inputs(): Promise<{ files: string[]; expectedWc?: string }> {
  try {
    const files: string[] = [];
    for await (const e of Deno.readDir(GUTENBERG)) {
      if (e.name.startsWith("pg-") && e.name.endsWith(".txt")) files.push(GUTENBERG + e.name);
    }
    if (files.length === 8) {
      return {
        files: files.sort(),
        expectedWc: await Deno.readTextFile(GUTENBERG + "expected-wc.txt"),
      };
    }
  } catch { /* not there */ }
  console.log("  mapreduce: ../shared/data/gutenberg not found; generating 8 texts instead");
  return { files: await generateTexts() };
}

let generated: string[] | undefined;

async function generateTexts(): Promise<string[]> {
  if (generated) return generated;
  const dir = await Deno.makeTempDir({ prefix: "distkit-mr-input-" });
  // Shared by every test of this file, so removed when the file's tests are over.
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const random = new Random(42);
  const vocabulary = Array.from({ length: 3000 }, (_, i) => {
    let w = "";
    for (let k = 0; k < 2 + (i % 9); k++) w += String.fromCharCode(97 + random.int(26));
    return random.chance(0.1) ? w[0].toUpperCase() + w.slice(1) : w;
  });
  const names = ["sherlock", "tom", "alice", "dorian", "grimm", "finn", "ernest", "kafka"];
  generated = [];
  for (const name of names) {
    const lines: string[] = [];
    for (let l = 0; l < 4000; l++) {
      const n = 5 + random.int(10);
      lines.push(
        Array.from({ length: n }, () => vocabulary[random.int(vocabulary.length)]).join(
          random.chance(0.2) ? ", " : " ",
        ) + ".",
      );
    }
    const file = `${dir}/pg-gen-${name}.txt`;
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    generated.push(file);
  }
  return generated;
}

/** A `distkit mr` process (or, with `main`, another entry point) working in the job's folder. */
function spawn(dir: string, ...args: string[]): Deno.ChildProcess {
  return spawnEntry(dir, [CLI, "mr", ...args]);
}

function spawnEntry(dir: string, entry: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      ...entry,
    ],
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Starts a coordinator and returns it with the address it printed. */
async function startCoordinator(dir: string, files: string[], ...options: string[]) {
  const child = spawn(dir, "coordinator", "--dir", dir, ...options, ...files);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let address: string | undefined;
  while (address === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the coordinator exited: ${text}`);
    text += value;
    address = /listening on (\S+)/.exec(text)?.[1];
  }
  const rest = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const stderr = new Response(child.stderr).text();
  const status = Promise.all([child.status, rest, stderr]).then(([s, , err]) => ({
    code: s.code,
    stderr: err,
  }));
  return { address, status };
}

async function runWorkerProcess(dir: string, address: string, app: string, standalone = false) {
  const args = ["--coordinator", address, "--app", app];
  const child = standalone
    ? spawnEntry(dir, [WORKER_MAIN, ...args])
    : spawn(dir, "worker", ...args);
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, out, err };
}

/** The sorted lines of every mr-out-* file in `dir`. */
async function outputLines(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.startsWith("mr-out-")) continue;
    for (const line of (await Deno.readTextFile(`${dir}/${e.name}`)).split("\n")) {
      if (line !== "") lines.push(line);
    }
  }
  return lines.sort();
}

async function sequentialLines(app: string, files: string[]): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-mr-seq-" });
  try {
    await runSequential(await loadApp(app), files, { dir });
    return await outputLines(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs a whole job: a coordinator and `workers` workers (the last through
 * the standalone worker's entry point); returns the output.
 */
async function runJob(app: string, workers: number, files: string[], dir: string) {
  const coordinator = await startCoordinator(dir, files);
  const results = await Promise.all(
    Array.from(
      { length: workers },
      (_, i) => runWorkerProcess(dir, coordinator.address, app, i === workers - 1),
    ),
  );
  const status = await coordinator.status;
  assert.equal(status.code, 0, `the coordinator failed: ${status.stderr}`);
  for (const r of results) assert.equal(r.code, 0, `a worker failed: ${r.err}`);
  return { lines: await outputLines(dir), workers: results };
}

function mrTest(name: string, body: (dir: string, files: string[], wc?: string) => Promise<void>) {
  Deno.test(`mapreduce: ${name}`, async () => {
    const { files, expectedWc } = await inputs();
    const dir = await Deno.makeTempDir({ prefix: "distkit-mr-" });
    const started = performance.now();
    try {
      await body(dir, files, expectedWc);
      console.log(`  ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

mrTest("wc", async (dir, files, expectedWc) => {
  const { lines } = await runJob("wc", 3, files, dir);
  const left = [];
  for await (const e of Deno.readDir(dir)) if (!e.name.startsWith("mr-out-")) left.push(e.name);
  assert.deepEqual(left, [], "only the outputs remain once the job is done");
  assert.ok(lines.length > 1000, `only ${lines.length} words`);
  assert.deepEqual(lines, await sequentialLines("wc", files), "output differs from sequential wc");
  if (expectedWc !== undefined) {
    assert.deepEqual(lines, expectedWc.split("\n").filter((l) => l !== "").sort());
  }
});

mrTest("indexer", async (dir, files) => {
  const { lines } = await runJob("indexer", 2, files, dir);
  assert.ok(lines.length > 1000);
  assert.deepEqual(lines, await sequentialLines("indexer", files));
});

mrTest("map parallelism", async (dir, files) => {
  const { lines } = await runJob("mtiming", 2, files, dir);
  const times = lines.filter((l) => l.startsWith("times-"));
  assert.equal(times.length, 2, `expected 2 workers to run maps, saw ${times.length}`);
  assert.ok(
    lines.some((l) => /^parallel-\d+ .*\b[2-9]\b/.test(l)),
    `the maps did not run in parallel: ${lines.join("; ")}`,
  );
});

mrTest("reduce parallelism", async (dir, files) => {
  const { lines } = await runJob("rtiming", 2, files, dir);
  assert.ok(
    lines.some((l) => /^[a-j] [2-9]$/.test(l)),
    `the reduces did not run in parallel: ${lines.join("; ")}`,
  );
});

mrTest("job count", async (dir, files) => {
  const { lines } = await runJob("jobcount", 4, files, dir);
  assert.deepEqual(lines, [`a ${files.length}`], "every map task must run exactly once");
});

mrTest("early exit", async (dir, files) => {
  const coordinator = await startCoordinator(dir, files);
  const workers = Array.from(
    { length: 3 },
    () => runWorkerProcess(dir, coordinator.address, "early_exit"),
  );
  // The moment any process exits, the output must already be final.
  await Promise.race([coordinator.status, ...workers]);
  const atFirstExit = await outputLines(dir);
  const [status, ...results] = await Promise.all([coordinator.status, ...workers]);
  assert.equal(status.code, 0, status.stderr);
  for (const r of results) assert.equal(r.code, 0, r.err);
  assert.ok(atFirstExit.length > 0, "the output was empty when the first process exited");
  assert.deepEqual(await outputLines(dir), atFirstExit, "output changed after a process exited");
  assert.equal(atFirstExit.length, files.length);
});

mrTest("crash", async (dir, files) => {
  const coordinator = await startCoordinator(dir, files, "--task-timeout", "10s");
  let over = false;
  const coordinatorDone = coordinator.status.then((s) => {
    over = true;
    return s;
  });
  let crashes = 0;
  // Three worker slots; a worker that dies is replaced while the job goes on.
  const slots = Array.from({ length: 3 }, async () => {
    while (!over) {
      const r = await runWorkerProcess(dir, coordinator.address, "crash");
      if (r.code !== 0) crashes++;
    }
  });
  const status = await coordinatorDone;
  await Promise.all(slots);
  assert.equal(status.code, 0, status.stderr);
  console.log(`  crash: ${crashes} workers crashed`);
  assert.deepEqual(await outputLines(dir), await sequentialLines("nocrash", files));
});

mrTest("bad input: clear errors, never a hang", async (dir, files) => {
  // An input that cannot be read: the coordinator says which, before it listens.
  const missing = spawn(dir, "coordinator", `${dir}/no-such-file.txt`);
  const [status, err] = await Promise.all([
    missing.status,
    new Response(missing.stderr).text(),
    new Response(missing.stdout).text(),
  ]);
  assert.equal(status.code, 2, "a usage error");
  assert.match(err, /no-such-file\.txt/);
  // An app module without map: the worker says so and exits 2 (its --app is wrong).
  await Deno.writeTextFile(`${dir}/nomap.ts`, "export const reduce = () => '';");
  const coordinator = await startCoordinator(dir, files.slice(0, 2));
  const noMap = await runWorkerProcess(dir, coordinator.address, `${dir}/nomap.ts`);
  assert.equal(noMap.code, 2);
  assert.match(noMap.err, /does not export a map function/);
  // A client that speaks garbage gets nowhere, and the job goes on.
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(coordinator.address.split(":")[1]),
  });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n\x00\xff garbage"));
  conn.close();
  // An app that throws in map: each attempt is reported; the third failure ends the job with the reason.
  await Deno.writeTextFile(
    `${dir}/throws.ts`,
    "export const map = () => { throw new Error('map exploded'); }; export const reduce = () => '';",
  );
  const thrower = await runWorkerProcess(dir, coordinator.address, `${dir}/throws.ts`);
  assert.equal(thrower.code, 3, thrower.err);
  assert.match(thrower.out, /job failed: map task \d failed 3 times; last: map exploded/);
  const coordinatorStatus = await coordinator.status;
  assert.equal(coordinatorStatus.code, 3);
  assert.match(
    coordinatorStatus.stderr,
    /the job failed: map task \d failed 3 times; last: map exploded/,
  );
});

mrTest(
  "a worker of another app is refused: exit 2, naming both; the job runs the pinned app",
  async (dir, all) => {
    const files = all.slice(0, 2);
    // An --app that names nothing is the coordinator's usage error.
    const bad = spawn(dir, "coordinator", "--app", "nosuchapp", ...files);
    const [badStatus, badErr] = await Promise.all([
      bad.status,
      new Response(bad.stderr).text(),
      new Response(bad.stdout).text(),
    ]);
    assert.equal(badStatus.code, 2, badErr);
    assert.match(badErr, /cannot load MapReduce app "nosuchapp": no built-in app of that name/);

    const coordinator = await startCoordinator(dir, files, "--app", "wc");
    // The standalone worker's entry point, with the wrong app: refused before any task.
    const indexer = await runWorkerProcess(dir, coordinator.address, "indexer", true);
    assert.equal(indexer.code, 2, `${indexer.out}\n${indexer.err}`);
    assert.match(
      indexer.err,
      /refused by the coordinator: the worker runs app "indexer", but this job runs app "wc" \(chosen with the coordinator's --app\): start the worker with --app "wc"/,
    );
    const wc = await runWorkerProcess(dir, coordinator.address, "wc");
    assert.equal(wc.code, 0, wc.err);
    const status = await coordinator.status;
    assert.equal(status.code, 0, status.stderr);
    const refusals = status.stderr.split("\n").filter((l) => l.includes("refused worker"));
    assert.equal(refusals.length, 1, status.stderr);
    assert.match(refusals[0], /^refused worker worker-\d+-\S+: the worker runs app "indexer"/);
    assert.deepEqual(await outputLines(dir), await sequentialLines("wc", files));
  },
);

mrTest(
  "a module app is its source: a copy elsewhere works, an edited one is refused",
  async (dir, all) => {
    const files = all.slice(0, 2);
    const source = `export function map(_name, text) {
  return (text.match(/[A-Za-z]+/g) ?? []).map((w) => [w, "1"]);
}
export function reduce(_key, values) {
  return String(values.length);
}
`;
    await Deno.writeTextFile(`${dir}/count.js`, source);
    await Deno.mkdir(`${dir}/copy`);
    await Deno.writeTextFile(`${dir}/copy/count.js`, source);
    await Deno.writeTextFile(
      `${dir}/count_v2.js`,
      source.replace("values.length", "-values.length"),
    );
    const coordinator = await startCoordinator(dir, files, "--app", "./count.js");
    const edited = await runWorkerProcess(dir, coordinator.address, "./count_v2.js");
    assert.equal(edited.code, 2, `${edited.out}\n${edited.err}`);
    assert.match(
      edited.err,
      /the worker runs app "\.\/count_v2\.js" \(sha256:[0-9a-f]{64}\), but this job runs app "\.\/count\.js" \(sha256:[0-9a-f]{64}\)/,
    );
    const copy = await runWorkerProcess(dir, coordinator.address, `${dir}/copy/count.js`);
    assert.equal(copy.code, 0, copy.err);
    const status = await coordinator.status;
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stderr, /refused worker \S+: the worker runs app "\.\/count_v2\.js"/);
    const lines = await outputLines(dir);
    assert.ok(lines.length > 100 && lines.every((l) => /^[A-Za-z]+ [1-9]\d*$/.test(l)));
  },
);
