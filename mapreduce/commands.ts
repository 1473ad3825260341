/**
 * `distkit mr` commands: a job's coordinator, its workers, and the
 * sequential reference runner.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { type CliCommand, count, parseCommandArgs, usageError } from "../net/cli_util.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient } from "../net/tcp.ts";
import { parseAddress } from "../kv/hosting.ts";
import { type AppLoadError, loadApp } from "./app.ts";
import { Coordinator, type JobProgress } from "./coordinator.ts";
import { runSequential } from "./engine.ts";
import { runWorker } from "./worker.ts";

const MIB = 1024 * 1024;

/** `10s`, `500ms`, `2m` or plain milliseconds. */
function duration(text: string | boolean | undefined, what: string): number | undefined {
  if (typeof text !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new RangeError(`${what} takes a duration like 10s or 500ms, got ${text}`);
  const n = Number(m[1]);
  return m[2] === "s" ? n * 1000 : m[2] === "m" ? n * 60_000 : n;
}

function progressLine(p: JobProgress, startedMs: number): string {
  const secs = (performance.now() - startedMs) / 1000;
  const mbps = p.bytesMapped / 1e6 / Math.max(secs, 0.001);
  return `${p.phase} ${p.done}/${p.total} done, ${p.running} running, ${p.failed} failed or ` +
    `re-issued, ${mbps.toFixed(1)} MB/s mapped, ${secs.toFixed(1)} s`;
}

const coordinator: CliCommand = {
  summary: "run a job's coordinator: hands out tasks until every output is final",
  usage: `usage: distkit mr coordinator [--listen 127.0.0.1:0] [--reduce 10] [--task-timeout 10s]
                             [--chunk-mb 64] [--dir .] [--keep-intermediate] FILES...

Splits FILES into map tasks (one per file, or per --chunk-mb MiB of a larger file, cut
at a line end), prints the address it listens on, and hands tasks to workers
(\`distkit mr worker --coordinator <address> --app ...\`). A task whose worker has
not reported within --task-timeout goes to another. Writes mr-out-0..N-1 (lines
"<key> <value>") in --dir and exits 0 when all are final, or 1 with the reason
when a task fails 3 times. Shows progress on a terminal.

options:
  --listen <host:port>     where to listen (default 127.0.0.1:0, a free port)
  --reduce <n>             reduce tasks and output files (default 10)
  --task-timeout <time>    re-issue a task after this long without a report (default 10s)
  --chunk-mb <n>           largest map task input, in MiB (default 64)
  --dir <dir>              where intermediate and output files go (default: here);
                           workers must see the same folder
  --keep-intermediate      keep the intermediate files mr-<m>-<r> (default: deleted when done)`,
  async run(args) {
    const parsed = parseCommandArgs("mr coordinator", this, args, {
      listen: { type: "string" },
      reduce: { type: "string" },
      "task-timeout": { type: "string" },
      "chunk-mb": { type: "string" },
      dir: { type: "string" },
      "keep-intermediate": { type: "boolean" },
    });
    if (!parsed) return 2;
    const v = parsed.values;
    let job: Coordinator;
    let address: { hostname: string; port: number };
    try {
      if (parsed.positionals.length === 0) throw new RangeError("give the input FILES");
      address = parseAddress(typeof v.listen === "string" ? v.listen : "127.0.0.1:0");
      const chunkMb = count(v["chunk-mb"], "--chunk-mb");
      job = await Coordinator.create({
        files: parsed.positionals,
        nReduce: count(v.reduce, "--reduce"),
        taskTimeoutMs: duration(v["task-timeout"], "--task-timeout"),
        chunkBytes: chunkMb === undefined ? undefined : Math.max(1, Math.round(chunkMb * MIB)),
        dir: typeof v.dir === "string" ? v.dir : undefined,
      });
    } catch (err) {
      if (err instanceof RangeError) return usageError("mr coordinator", this, err.message);
      console.error(`distkit mr coordinator: ${(err as Error).message}`);
      return 1;
    }
    const server = new RpcServer();
    server.addService("MR", job.methods());
    const listener = serveTcp(server, address);
    console.log(`coordinator listening on ${listener.address}`);
    console.log(`${job.mapTasks.length} map tasks, ${job.progress().total} total in this phase`);
    const started = performance.now();
    const terminal = Deno.stderr.isTerminal();
    const encoder = new TextEncoder();
    let lastPhase = "";
    const show = () => {
      const p = job.progress();
      if (terminal) Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${progressLine(p, started)}`));
      else if (p.phase !== lastPhase) console.error(progressLine(p, started));
      lastPhase = p.phase;
    };
    const ticker = setInterval(show, 250);
    let code = 0;
    try {
      await job.finished;
    } catch (err) {
      code = 1;
      console.error(`\ndistkit mr coordinator: the job failed: ${(err as Error).message}`);
    } finally {
      clearInterval(ticker);
      show();
      if (terminal) Deno.stderr.writeSync(encoder.encode("\n"));
    }
    if (code === 0) {
      console.log(`job done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
      if (!v["keep-intermediate"]) await job.cleanUp();
    }
    // Workers hear "exit" (and why) when they next ask; wait for them a little.
    const lingerUntil = performance.now() + 2000;
    while (job.untoldWorkers > 0 && performance.now() < lingerUntil) await delay(20);
    await listener.close();
    return code;
  },
};

const worker: CliCommand = {
  summary: "run a worker: runs tasks from a coordinator until the job is over",
  usage: `usage: distkit mr worker --coordinator <host:port> --app <wc|indexer|...|PATH> [--verbose]

Loads the app (a built-in by name, or a module exporting map and reduce by path or
URL), then runs tasks from the coordinator until it says the job is over or has
been unreachable for 3 s (after answering; 30 s while it has not answered yet).
Exits 0 then; 1 if the app cannot be loaded, the job failed, or the coordinator
never answered.

built-in apps: wc, indexer, mtiming, rtiming, jobcount, early_exit, crash, nocrash`,
  async run(args) {
    const parsed = parseCommandArgs("mr worker", this, args, {
      coordinator: { type: "string" },
      app: { type: "string" },
      verbose: { type: "boolean" },
    });
    if (!parsed) return 2;
    const v = parsed.values;
    if (typeof v.coordinator !== "string" || typeof v.app !== "string") {
      return usageError("mr worker", this, "--coordinator and --app are required");
    }
    try {
      parseAddress(v.coordinator);
    } catch (err) {
      return usageError("mr worker", this, (err as Error).message);
    }
    let app;
    try {
      app = await loadApp(v.app);
    } catch (err) {
      console.error(`distkit mr worker: ${(err as AppLoadError).message}`);
      return 1;
    }
    const end = new TcpClient(v.coordinator, { timeoutMs: 5000 });
    try {
      const report = await runWorker(end, app, {
        log: v.verbose ? (line) => console.error(`${new Date().toISOString()} ${line}`) : undefined,
      });
      console.log(
        `worker ${Deno.pid}: ${report.maps} maps, ${report.reduces} reduces, ` +
          `${report.failures} failed; ${report.ended}${report.reason ? `: ${report.reason}` : ""}`,
      );
      return report.ended === "job failed" || report.ended === "coordinator unreachable" ? 1 : 0;
    } catch (err) {
      console.error(`distkit mr worker: ${(err as Error).message}`);
      return 1;
    } finally {
      await end.close();
    }
  },
};

const sequential: CliCommand = {
  summary: "run a job in this process (the reference the distributed runs are checked against)",
  usage:
    `usage: distkit mr sequential --app <wc|indexer|...|PATH> [--dir .] [--chunk-mb 64] FILES...

Runs every map and one reduce here and writes <dir>/mr-out-0.`,
  async run(args) {
    const parsed = parseCommandArgs("mr sequential", this, args, {
      app: { type: "string" },
      dir: { type: "string" },
      "chunk-mb": { type: "string" },
    });
    if (!parsed) return 2;
    const v = parsed.values;
    if (typeof v.app !== "string" || parsed.positionals.length === 0) {
      return usageError("mr sequential", this, "--app and FILES are required");
    }
    try {
      const chunkMb = count(v["chunk-mb"], "--chunk-mb");
      const started = performance.now();
      const r = await runSequential(await loadApp(v.app), parsed.positionals, {
        dir: typeof v.dir === "string" ? v.dir : ".",
        chunkBytes: chunkMb === undefined ? undefined : Math.max(1, Math.round(chunkMb * MIB)),
      });
      const secs = (performance.now() - started) / 1000;
      console.log(
        `${r.tasks} inputs, ${r.keys} keys, ${(r.bytes / 1e6).toFixed(1)} MB in ` +
          `${secs.toFixed(2)} s (${(r.bytes / 1e6 / secs).toFixed(1)} MB/s)`,
      );
      return 0;
    } catch (err) {
      console.error(`distkit mr sequential: ${(err as Error).message}`);
      return 1;
    }
  },
};

/** The `distkit mr` command group. */
export const mrCommands: { summary: string; commands: Record<string, CliCommand> } = {
  summary: "MapReduce: a coordinator, workers, and the sequential runner",
  commands: { coordinator, worker, sequential },
};
