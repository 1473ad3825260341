/**
 * `distkit mr` commands: a job's coordinator, its workers, and the
 * sequential reference runner.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import {
  type CliCommand,
  count,
  durationMs,
  EXIT,
  EXIT_HELP,
  parseCommandArgs,
  usageError,
} from "./util.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient } from "../net/tcp.ts";
import { AddressError, parseAddress } from "../net/address.ts";
import { appIdentity, AppLoadError, loadApp } from "../mapreduce/app.ts";
import { type Assignment, Coordinator, type JobProgress } from "../mapreduce/coordinator.ts";
import { outputName, runSequential } from "../mapreduce/engine.ts";
import { runWorker } from "../mapreduce/worker.ts";
import { SUMMARIES } from "./summaries.ts";

const MIB = 1024 * 1024;

/** When mapping began (the first worker asked for a task) and ended (the last map task was done). */
interface MapSpan {
  from?: number;
  to?: number;
}

/**
 * One progress line. The rate is of the map phase alone, from when the
 * first worker asked for a task: time spent waiting for workers, or
 * reducing, is not mapping.
 */
function progressLine(p: JobProgress, startedMs: number, map: MapSpan): string {
  const now = performance.now();
  const secs = (now - startedMs) / 1000;
  const mapping = map.from === undefined ? 0 : ((map.to ?? now) - map.from) / 1000;
  const rate = mapping > 0
    ? `${(p.bytesMapped / 1e6 / Math.max(mapping, 0.001)).toFixed(1)} MB/s`
    : "-";
  const failed = `${p.failed} attempt${p.failed === 1 ? "" : "s"} failed or re-issued`;
  const elapsed = `${secs.toFixed(1)} s`;
  if (p.phase === "done") {
    return `all tasks done, ${failed}, mapped at ${rate}, ${elapsed}`;
  }
  if (p.phase === "failed") return `job failed: ${p.reason ?? "unknown reason"}, ${elapsed}`;
  const waiting = map.from === undefined ? " (waiting for a worker)" : "";
  return `${p.phase} tasks: ${p.done}/${p.total} done, ${p.running} running, ${failed}, ` +
    `mapped at ${rate}, ${elapsed}${waiting}`;
}

function isRefusal(assignment: Assignment): boolean {
  return assignment.kind === "exit" && assignment.refused !== undefined;
}

const coordinator: CliCommand = {
  summary: "run a job's coordinator: hands out tasks until every output is final",
  usage: `usage: distkit mr coordinator [--app <wc|indexer|...|PATH>] [--listen 127.0.0.1:0]
                             [--reduce 10] [--task-timeout 10s] [--chunk-mb 64] [--dir .]
                             [--keep-intermediate] FILES...

Splits FILES into map tasks (one per file, or per --chunk-mb MiB of a larger file, cut
at a line end), prints the address it listens on, and hands tasks to workers
(\`distkit mr worker --coordinator <address> --app ...\`). A task whose worker has
not reported within --task-timeout goes to another. Writes mr-out-0..N-1 (lines
"<key> <value>") in --dir and exits 0 when all are final, or 3 with the reason
when a task fails 3 times. Shows progress on a terminal.

A job runs one app: a worker started with another --app is refused before it gets a
task (it exits 2), and the coordinator prints a line for it. Give --app (the same as
the workers': a built-in's name, or a module whose source is the same): without it,
the first worker given a task sets the job's app.

options:
  --app <name|path|url>    the job's app, as the workers give it (recommended); a module
                           is read, not run (see \`distkit mr worker --help\`)
  --listen <host:port>     where to listen (default 127.0.0.1:0, a free port)
  --reduce <n>             reduce tasks and output files (default 10)
  --task-timeout <time>    re-issue a task after this long without a report (default 10s)
  --chunk-mb <n>           largest map task input, in MiB (default 64)
  --dir <dir>              where intermediate and output files go (default: here);
                           workers must see the same folder
  --keep-intermediate      keep the intermediate files mr-<m> (default: deleted when done)

${EXIT_HELP}`,
  async run(args) {
    const parsed = parseCommandArgs("mr coordinator", this, args, {
      app: { type: "string" },
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
    // Coordinator events (the app pinned by a worker, a worker refused) go to
    // stderr with the progress; on a terminal, over the progress line.
    const terminal = Deno.stderr.isTerminal();
    const log = (line: string) => console.error(`${terminal ? "\r\x1b[K" : ""}${line}`);
    try {
      if (parsed.positionals.length === 0) throw new RangeError("give the input FILES");
      address = parseAddress(typeof v.listen === "string" ? v.listen : "127.0.0.1:0", {
        listen: true, // port 0: any free port, the default
      });
      const chunkMb = count(v["chunk-mb"], "--chunk-mb");
      const app = typeof v.app === "string" ? await appIdentity(v.app) : undefined;
      job = await Coordinator.create({
        appIdentity: app,
        log,
        files: parsed.positionals,
        nReduce: count(v.reduce, "--reduce"),
        taskTimeoutMs: durationMs(v["task-timeout"], "--task-timeout"),
        chunkBytes: chunkMb === undefined ? undefined : Math.max(1, Math.round(chunkMb * MIB)),
        dir: typeof v.dir === "string" ? v.dir : undefined,
      });
    } catch (err) {
      // A bad number, or an input file that is not there: the command line is wrong.
      if (
        err instanceof RangeError || err instanceof AddressError || err instanceof AppLoadError ||
        (err as Error).cause instanceof Deno.errors.NotFound
      ) {
        return usageError("mr coordinator", this, (err as Error).message);
      }
      console.error(`distkit mr coordinator: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    const server = new RpcServer();
    const methods = job.methods();
    const map: MapSpan = {};
    server.addService("MR", {
      ...methods,
      // Mapping begins when a worker that is not refused first asks.
      Task: async (taskArgs: unknown) => {
        const asked = performance.now();
        const assignment = await methods.Task(taskArgs);
        if (!isRefusal(assignment)) map.from ??= asked;
        return assignment;
      },
      Next: async (nextArgs: unknown) => {
        const asked = performance.now();
        const assignment = methods.Next(nextArgs);
        if (map.to === undefined && job.progress().phase !== "map") map.to = performance.now();
        const answer = await assignment;
        if (!isRefusal(answer)) map.from ??= asked;
        return answer;
      },
      Done: (doneArgs: unknown) => {
        methods.Done(doneArgs);
        if (map.to === undefined && job.progress().phase !== "map") map.to = performance.now();
      },
    });
    const listener = serveTcp(server, address);
    const nReduce = count(v.reduce, "--reduce") ?? 10;
    const outDir = typeof v.dir === "string" ? v.dir : ".";
    const outputs = nReduce === 1
      ? `${outDir}/mr-out-0`
      : `${outDir}/mr-out-0 .. ${outDir}/mr-out-${nReduce - 1}`;
    console.log(`coordinator listening on ${listener.address}`);
    console.log(
      `${job.mapTasks.length} map task${job.mapTasks.length === 1 ? "" : "s"}, then ` +
        `${nReduce} reduce task${nReduce === 1 ? "" : "s"}; output: ${outputs}`,
    );
    const app = job.app?.identity;
    console.log(
      app === undefined
        ? "app: set by the first worker given a task (give --app to choose it)"
        : `app: ${JSON.stringify(app.name)} (${app.id}); workers with another are refused`,
    );
    const started = performance.now();
    const encoder = new TextEncoder();
    let lastPhase = "";
    const show = () => {
      const p = job.progress();
      const line = progressLine(p, started, map);
      if (terminal) Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}`));
      else if (p.phase !== lastPhase) console.error(line);
      lastPhase = p.phase;
    };
    const ticker = setInterval(show, 250);
    let code: number = EXIT.ok;
    try {
      await job.finished;
    } catch (err) {
      code = EXIT.noAnswer;
      console.error(`\ndistkit mr coordinator: the job failed: ${(err as Error).message}`);
    } finally {
      clearInterval(ticker);
      show();
      if (terminal) Deno.stderr.writeSync(encoder.encode("\n"));
    }
    if (code === EXIT.ok) {
      console.log(
        `job done in ${((performance.now() - started) / 1000).toFixed(2)} s; output: ${outputs}`,
      );
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

Loads the app, then runs tasks from the coordinator until it says the job is over
or has been unreachable for 3 s (after answering; 30 s while it has not answered
yet). Exits 0 then; 2 if the app cannot be loaded, or the coordinator refuses it
because its job runs another app (the message names both); 3 if the job failed or
the coordinator never answered.

The worker tells the coordinator which app it runs: a built-in by its name, a module
by a SHA-256 of its file's source (so the same source anywhere is the same app; only
that file counts, not the modules it imports), a module at a non-file URL by the URL.

options:
  --coordinator <host:port>  the coordinator's address (it prints it when it starts)
  --app <name|path|url>      a built-in app by name (wc, indexer, mtiming, rtiming,
                             jobcount, early_exit, crash, nocrash), or a module that
                             exports map and reduce, by path or URL
  --verbose                  log every task to stderr

${EXIT_HELP}`,
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
    let identity;
    try {
      // The identity first: the source it hashes is then the one loaded,
      // unless the file changes in between.
      identity = await appIdentity(v.app);
      app = await loadApp(v.app);
    } catch (err) {
      if (err instanceof AppLoadError) return usageError("mr worker", this, err.message);
      console.error(`distkit mr worker: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    // Workers start with their coordinator, and the client's default backoff
    // (50 ms doubling to 2 s) could leave a worker asleep for 50–100 ms after
    // the coordinator began to listen. runWorker paces its own retries (every
    // 2 ms in the first second, then 25 ms, then 100 ms once the coordinator
    // has answered and gone), so the client adds no backoff of its own.
    const end = new TcpClient(v.coordinator, {
      timeoutMs: 5000,
      backoff: { baseMs: 0, maxMs: 0 },
    });
    try {
      const report = await runWorker(end, app, {
        appIdentity: identity,
        log: v.verbose ? (line) => console.error(`${new Date().toISOString()} ${line}`) : undefined,
      });
      if (report.ended === "refused") {
        // Its --app is wrong for this job: a usage error, like an app that cannot be loaded.
        console.error(`distkit mr worker: refused by the coordinator: ${report.reason}`);
        return EXIT.usage;
      }
      console.log(
        `worker ${Deno.pid}: ${report.maps} maps, ${report.reduces} reduces, ` +
          `${report.failures} failed; ${report.ended}${report.reason ? `: ${report.reason}` : ""}`,
      );
      return report.ended === "job failed" || report.ended === "coordinator unreachable"
        ? EXIT.noAnswer
        : EXIT.ok;
    } catch (err) {
      console.error(`distkit mr worker: ${(err as Error).message}`);
      return EXIT.noAnswer;
    } finally {
      await end.close();
    }
  },
};

const sequential: CliCommand = {
  summary: "run a job in this process (the reference the distributed runs are checked against)",
  usage:
    `usage: distkit mr sequential --app <wc|indexer|...|PATH> [--dir .] [--chunk-mb 64] FILES...

Runs every map and one reduce here and writes <dir>/mr-out-0.

options:
  --app <name|path|url>    a built-in app by name (wc, indexer...), or a module that
                           exports map and reduce, by path or URL
  --dir <dir>              where mr-out-0 goes (default: here)
  --chunk-mb <n>           largest map task input, in MiB (default 64)

${EXIT_HELP}`,
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
          `${secs.toFixed(2)} s (${(r.bytes / 1e6 / secs).toFixed(1)} MB/s); output: ` +
          outputName(typeof v.dir === "string" ? v.dir : ".", 0),
      );
      return EXIT.ok;
    } catch (err) {
      if (err instanceof AppLoadError || err instanceof RangeError) {
        return usageError("mr sequential", this, (err as Error).message);
      }
      console.error(`distkit mr sequential: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
  },
};

/** The `distkit mr` command group. */
export const mrCommands: { summary: string; commands: Record<string, CliCommand> } = {
  summary: SUMMARIES.mr,
  commands: { coordinator, worker, sequential },
};
