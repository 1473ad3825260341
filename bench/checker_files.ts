/**
 * The checker's whole-process time against porcupine's on the history files
 * of `../shared/data/histories` (kv/*.txt and jepsen/*.log), start-up and
 * reading included: `distkit check FILE...` in one process against a
 * porcupine program checking the same files in one process
 * (bench/porcupine/main.go), and each as one process per file. The four
 * variants run in interleaved rounds (the order turns each round), with the
 * 1-minute load average beside each; every round checks that both give each
 * file the same verdict.
 *
 * ```sh
 * deno run -A bench/checker_files.ts \
 *   --porcupine-src DIR | --porcupine BIN [--rounds 7] [--deno-flags "..."]
 *   [--quiet-wait 20] [--write-benchmarks] [folder]
 * ```
 *
 * `--porcupine-src DIR` builds bench/porcupine/main.go against porcupine's
 * source in DIR (a checkout of github.com/anishathalye/porcupine; needs `go`
 * and no network); `--porcupine BIN` takes a program built as main.go says.
 * `--deno-flags` adds flags to every `deno run` of the checker (for example
 * `--unstable-lazy-dynamic-imports`). Before each run the driver waits, at
 * most `--quiet-wait` seconds (default 20), until other work used under a
 * quarter of a core over a second, and shows that share ("busy") beside the
 * load. The folder defaults to
 * `$DISTKIT_HISTORIES`, then `../shared/data/histories` next to the project.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { waitQuiet } from "./quiet.ts";
import { writeSection } from "./benchmarks_md.ts";
import { median } from "./stats.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = `${ROOT}cli.ts`;

interface Variant {
  name: string;
  /** Runs once; resolves with each file's verdict. */
  run(files: string[]): Promise<Map<string, string>>;
}

const VERDICT_BY_CODE: Record<number, string> = {
  0: "linearizable",
  1: "not linearizable",
  3: "unknown",
};

/** Reads "FILE: verdict (…)" lines. */
function verdicts(stdout: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const m = /^(.*): (linearizable|not linearizable|unknown) \(/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

async function runOnce(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
}

function oneProcess(name: string, cmd: string, args: string[]): Variant {
  return {
    name,
    run: async (files) => {
      const r = await runOnce(cmd, [...args, ...files]);
      if (r.code !== 0 && r.code !== 1) {
        throw new Error(`${name} exited with ${r.code}: ${new TextDecoder().decode(r.stderr)}`);
      }
      return verdicts(r.stdout);
    },
  };
}

function perFile(name: string, cmd: string, args: string[]): Variant {
  return {
    name,
    run: async (files) => {
      const out = new Map<string, string>();
      for (const file of files) {
        const r = await runOnce(cmd, [...args, file]);
        const verdict = VERDICT_BY_CODE[r.code];
        if (verdict === undefined) {
          throw new Error(
            `${name} on ${file}: exit ${r.code}: ${new TextDecoder().decode(r.stderr)}`,
          );
        }
        out.set(file, verdict);
      }
      return out;
    },
  };
}

async function historyFiles(folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const [sub, ext] of [["kv", ".txt"], ["jepsen", ".log"]]) {
    for await (const e of Deno.readDir(`${folder}/${sub}`)) {
      if (e.isFile && e.name.endsWith(ext)) files.push(`${folder}/${sub}/${e.name}`);
    }
  }
  return files.sort();
}

function historiesFolder(given: string | undefined): string | undefined {
  for (const dir of [given, Deno.env.get("DISTKIT_HISTORIES"), `${ROOT}../shared/data/histories`]) {
    if (!dir) continue;
    try {
      if (Deno.statSync(dir).isDirectory) return dir;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** Builds bench/porcupine/main.go against porcupine's source in `src`; the binary's path. */
async function buildPorcupine(src: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-porcupine-" });
  await Deno.copyFile(`${ROOT}bench/porcupine/main.go`, `${dir}/main.go`);
  const env = { GOFLAGS: "-mod=mod", GOPROXY: "off" };
  const steps = [
    ["mod", "init", "porcupine-check"],
    [
      "mod",
      "edit",
      "-require",
      "github.com/anishathalye/porcupine@v0.0.0",
      "-replace",
      `github.com/anishathalye/porcupine=${await Deno.realPath(src)}`,
    ],
    ["build", "-o", "porcupine-check", "."],
  ];
  for (const args of steps) {
    const r = await new Deno.Command("go", {
      args,
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!r.success) {
      throw new Error(`go ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
    }
  }
  return `${dir}/porcupine-check`;
}

async function git(...args: string[]): Promise<string> {
  const r = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(r.stdout).trim();
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      porcupine: { type: "string" },
      "porcupine-src": { type: "string" },
      rounds: { type: "string", default: "7" },
      "deno-flags": { type: "string", default: "" },
      "quiet-wait": { type: "string", default: "20" },
      "write-benchmarks": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  const folder = historiesFolder(positionals[0]);
  if (folder === undefined) {
    console.log("skipping: no histories folder (pass one, or set DISTKIT_HISTORIES)");
    return 0;
  }
  const binary = values.porcupine ??
    (values["porcupine-src"] ? await buildPorcupine(values["porcupine-src"]) : undefined);
  if (binary === undefined) {
    console.error("give --porcupine BIN or --porcupine-src DIR (see bench/porcupine/main.go)");
    return 2;
  }
  const rounds = Number(values.rounds);
  const files = await historyFiles(folder);
  const denoFlags = values["deno-flags"].split(/\s+/).filter((f) => f !== "");
  const deno = ["run", "--allow-read", ...denoFlags, CLI, "check"];
  const variants: Variant[] = [
    oneProcess("porcupine, one process", binary, []),
    oneProcess("distkit check, one process", Deno.execPath(), deno),
    perFile("porcupine, a process per file", binary, []),
    perFile("distkit check, a process per file", Deno.execPath(), deno),
  ];
  const started = new Date().toISOString().slice(0, 16).replace("T", " ");
  const header = `${files.length} files in ${folder}; ${rounds} rounds; commit ${await git(
    "rev-parse",
    "--short",
    "HEAD",
  )}${
    (await git("status", "--porcelain")) ? " (with changes)" : ""
  }; ${navigator.hardwareConcurrency} cores; Deno ${Deno.version.deno}; distkit: deno ${
    deno.join(" ")
  } FILE...`;
  console.log(header);
  const times = variants.map(() => [] as number[]);
  const loads = variants.map(() => [] as number[]);
  const busy = variants.map(() => [] as number[]);
  const quietMs = Number(values["quiet-wait"]) * 1000;
  let disagreements = 0;
  for (let round = 0; round < rounds; round++) {
    const seen = variants.map(() => new Map<string, string>());
    for (let k = 0; k < variants.length; k++) {
      const i = (k + round) % variants.length;
      busy[i].push(await waitQuiet(quietMs));
      loads[i].push(Deno.loadavg()[0]);
      const t0 = performance.now();
      seen[i] = await variants[i].run(files);
      times[i].push(performance.now() - t0);
    }
    for (const file of files) {
      const all = seen.map((s) => s.get(file));
      if (all.some((v) => v === undefined || v !== all[0])) {
        disagreements++;
        console.log(`  DISAGREE on ${file}: ${all.join(" / ")}`);
      }
    }
    console.log(
      `round ${round + 1}: ` +
        variants.map((v, i) =>
          `${v.name} ${times[i].at(-1)!.toFixed(0)} ms (load ${loads[i].at(-1)!.toFixed(2)}, busy ${
            busy[i].at(-1)!.toFixed(0)
          }%)`
        ).join(", "),
    );
  }
  const table = [
    "| variant | median ms | min–max ms | rounds (ms) | load (1 min) | busy before (% of a core) | vs porcupine |",
    "| --- | ---: | ---: | --- | --- | --- | ---: |",
  ];
  for (let i = 0; i < variants.length; i++) {
    const ref = median(times[i < 2 ? 0 : 2]);
    const ts = times[i];
    const ratios = ts.map((t, r) => t / times[i < 2 ? 0 : 2][r]);
    table.push(
      `| ${variants[i].name} | **${median(ts).toFixed(0)}** | ${Math.min(...ts).toFixed(0)}–${
        Math.max(...ts).toFixed(0)
      } | ${ts.map((t) => t.toFixed(0)).join(", ")} | ${Math.min(...loads[i]).toFixed(2)}–${
        Math.max(...loads[i]).toFixed(2)
      } | ${median(busy[i]).toFixed(0)} (${Math.min(...busy[i]).toFixed(0)}–${
        Math.max(...busy[i]).toFixed(0)
      }) | ${(median(ts) / ref).toFixed(2)}× (rounds ${Math.min(...ratios).toFixed(2)}–${
        Math.max(...ratios).toFixed(2)
      }) |`,
    );
  }
  const counts = new Map<string, number>();
  for (const v of (await variants[0].run(files)).values()) counts.set(v, (counts.get(v) ?? 0) + 1);
  const verdictLine = `Verdicts (porcupine): ${
    [...counts].map(([v, n]) => `${n} ${v}`).join(", ")
  }; ${
    disagreements === 0
      ? "distkit agrees on every file in every round."
      : `${disagreements} disagreements.`
  }`;
  const summary = [
    `Run: \`deno run -A bench/checker_files.ts --porcupine BIN --rounds ${rounds} --quiet-wait ${
      values["quiet-wait"]
    }\`, ${started} UTC: ${header.replaceAll(ROOT, "")}`,
    "",
    ...table,
    "",
    verdictLine,
  ].join("\n");
  console.log(`\n${summary}\n`);
  if (values["write-benchmarks"]) {
    await writeSection(
      "checker-files",
      "checker: whole processes against porcupine (issue 20)",
      summary,
    );
  }
  return disagreements === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
