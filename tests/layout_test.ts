/**
 * The layout's dependency rules, read from the source tree (README, "Layout"):
 *
 * - no library folder imports `cli/` or `cli.ts`;
 * - no service (kv, shard, pb, mapreduce) imports another service;
 * - a library folder imports only the folders below it ({@linkcode BELOW}, the
 *   README's `net ← store ← raft ← rsm ← kvstate ← kv, shard; rsm, kvstate ← pb; net ← mapreduce`);
 * - a library folder imports `checker/` only where {@linkcode CHECKER_USERS} says so;
 * - `raft/` imports from `net/` only the files in {@linkcode RAFT_NET_FILES};
 * - no import cycle between files;
 * - no library file is over {@linkcode MAX_LINES} lines unless {@linkcode LONG_FILES} says why.
 *
 * "Library" means what the package publishes: the folders' files, not their
 * `*_test.ts` files nor `test_util.ts` (tests may reach across, as a user would).
 * Each rule is also run on a small made-up tree that breaks it, so a rule
 * that can no longer fail is noticed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const LIBRARY = [
  "net",
  "store",
  "raft",
  "rsm",
  "kvstate",
  "kv",
  "shard",
  "pb",
  "mapreduce",
  "checker",
];
const SERVICES = ["kv", "shard", "pb", "mapreduce"];

/** The folders each library folder may import: those below it in the README's arrows. */
const BELOW: Record<string, string[]> = {
  net: [],
  store: ["net"],
  raft: ["net", "store"],
  rsm: ["net", "store", "raft"],
  kvstate: ["net", "store", "raft", "rsm"],
  kv: ["net", "store", "raft", "rsm", "kvstate"],
  shard: ["net", "store", "raft", "rsm", "kvstate"],
  pb: ["net", "store", "raft", "rsm", "kvstate"],
  mapreduce: ["net"],
  checker: [],
};

/** Library files allowed to import checker/ (path → why). A library feature only, never a demo. */
const CHECKER_USERS: Record<string, string> = {};

// The codec and its byte helpers (CRC-32, UTF-8 and entry sizes: pure functions the codec uses
// too), errors, clock and random source; env.ts is the clock's and the random source's default
// (the real ones, or a loud failure inside a simulation); logger.ts is the logging interface
// RaftNode reports through.
const RAFT_NET_FILES = [
  "net/bytes.ts",
  "net/clock.ts",
  "net/codec.ts",
  "net/env.ts",
  "net/errors.ts",
  "net/logger.ts",
  "net/random.ts",
];

const MAX_LINES = 800;

/** Library files allowed over MAX_LINES, each with the reason. */
const LONG_FILES: Record<string, string> = {
  "checker/formats.ts": "three history formats (JSONL, EDN, Jepsen) sharing one reader",
};

/**
 * A reference from one file to another: a static import, a dynamic
 * `import()`, or a module URL (a worker or a process to spawn).
 */
interface Edge {
  from: string;
  to: string;
  kind: "import" | "dynamic" | "url";
}

/** The repository's files, relative path → text; `.tools/`, `node_modules/` and dot folders left out. */
async function readTree(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${root}${dir}`)) {
      if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && path.endsWith(".ts")) {
        files.set(path, await Deno.readTextFile(`${root}${path}`));
      }
    }
  }
  await walk("");
  return files;
}

/** `to` resolved against the folder of `from`, both repository-relative. */
function resolve(from: string, to: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of to.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

// Top-level statements start at column 0 (deno fmt), so the imports in JSDoc
// examples (" * import ...") are not taken for the file's own.
// The clause between the keyword and the path holds names, braces, commas, `*` and `type` only.
const STATIC = /^(?:import|export)\b(?:[\w\s{},*$]*?\bfrom)?\s*["'](\.{1,2}\/[^"']+)["']/gm;
const DYNAMIC = /^(?!\s*(?:\*|\/\/)).*?\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/gm;
const URL_REF = /^(?!\s*(?:\*|\/\/)).*?new URL\(\s*["'](\.{1,2}\/[^"']+\.ts)["']/gm;

/** Every relative reference between the files of `files`. */
function edgesOf(files: Map<string, string>): Edge[] {
  const edges: Edge[] = [];
  for (const [from, text] of files) {
    for (
      const [regex, kind] of [[STATIC, "import"], [DYNAMIC, "dynamic"], [URL_REF, "url"]] as const
    ) {
      for (const match of text.matchAll(regex)) {
        edges.push({ from, to: resolve(from, match[1]), kind });
      }
    }
  }
  return edges;
}

function folderOf(path: string): string {
  return path === "cli.ts" ? "cli" : path.split("/")[0];
}

/** A published library file: in a library folder, not a test. */
function isLibrary(path: string): boolean {
  const name = path.split("/").at(-1)!;
  return LIBRARY.includes(folderOf(path)) && path.includes("/") && !name.endsWith("_test.ts") &&
    name !== "test_util.ts";
}

/**
 * The import cycles between files, each as its files (Tarjan's strongly
 * connected components). Static imports only: a dynamic `import()` runs after
 * both modules are evaluated, so it cannot make one see the other half-made
 * (mapreduce/app.ts loads its built-in apps so, and they import its helpers).
 */
function cyclesOf(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to, kind } of edges) {
    if (kind !== "import") continue;
    if (!next.has(from)) next.set(from, []);
    next.get(from)!.push(to);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  function visit(v: string): void {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = (next.get(v) ?? []).includes(v);
      if (component.length > 1 || selfLoop) cycles.push(component.sort());
    }
  }
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** What breaks the layout's rules in `files`, one line each; empty when nothing does. */
function layoutProblems(files: Map<string, string>): string[] {
  const problems: string[] = [];
  const edges = edgesOf(files);
  for (const { from, to } of edges) {
    if (!isLibrary(from)) continue;
    const source = folderOf(from);
    const target = folderOf(to);
    if (target === "cli") problems.push(`${from} imports ${to}: library code never uses the CLI`);
    if (SERVICES.includes(source) && SERVICES.includes(target) && source !== target) {
      problems.push(`${from} imports ${to}: a service never imports another service`);
    }
    if (target === "checker" && source !== "checker" && !(from in CHECKER_USERS)) {
      problems.push(`${from} imports ${to}: the checker is for tests and the CLI`);
    }
    // Broken rules above have their own message; this one covers the other arrows.
    const known = target === "cli" || target === "checker" ||
      (SERVICES.includes(source) && SERVICES.includes(target));
    if (
      !known && target !== source && LIBRARY.includes(target) && !BELOW[source].includes(target)
    ) {
      problems.push(`${from} imports ${to}: ${source}/ is below ${target}/, not above it`);
    }
    if (source === "raft" && target === "net" && !RAFT_NET_FILES.includes(to)) {
      problems.push(`${from} imports ${to}: raft/ uses only ${RAFT_NET_FILES.join(", ")}`);
    }
  }
  for (const cycle of cyclesOf(edges)) problems.push(`import cycle: ${cycle.join(" → ")}`);
  for (const [path, text] of files) {
    if (!isLibrary(path) || path in LONG_FILES) continue;
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > MAX_LINES) {
      problems.push(`${path} has ${lines} lines (over ${MAX_LINES}): split it by concern`);
    }
  }
  return problems;
}

Deno.test("layout: the source tree keeps the dependency rules", async () => {
  const files = await readTree(fileURLToPath(new URL("../", import.meta.url)));
  assert.ok(files.has("raft/core.ts") && files.has("cli.ts"), "read the repository's tree");
  assert.ok(edgesOf(files).length > 500, "found the imports");
  assert.deepEqual(layoutProblems(files), []);
  for (const path of [...Object.keys(CHECKER_USERS), ...Object.keys(LONG_FILES)]) {
    assert.ok(files.has(path), `${path} is allow-listed but no longer exists: take it off`);
  }
  for (const path of RAFT_NET_FILES) {
    assert.ok(files.has(path), `${path} is allow-listed for raft/ but no longer exists`);
  }
  // The lists only shrink: an entry no longer needed is taken off.
  for (const path of Object.keys(LONG_FILES)) {
    const lines = files.get(path)!.split("\n").length - 1;
    assert.ok(lines > MAX_LINES, `${path} has ${lines} lines now: take it off LONG_FILES`);
  }
  const rafts = edgesOf(files).filter(({ from, to }) =>
    isLibrary(from) && folderOf(from) === "raft" && folderOf(to) === "net"
  );
  for (const path of RAFT_NET_FILES) {
    assert.ok(
      rafts.some(({ to }) => to === path),
      `raft/ no longer imports ${path}: take it off RAFT_NET_FILES`,
    );
  }
});

Deno.test("layout: each rule fails on a tree that breaks it", () => {
  const tree = (entries: Record<string, string>) => new Map(Object.entries(entries));
  const cases: [string, Record<string, string>, RegExp][] = [
    ["cli", { "kv/a.ts": 'import { x } from "../cli/util.ts";\n' }, /never uses the CLI/],
    ["cli.ts", { "net/a.ts": 'export * from "../cli.ts";\n' }, /never uses the CLI/],
    ["service", { "pb/a.ts": 'import type {\n  KvClerk,\n} from "../kv/clerk.ts";\n' }, /service/],
    ["checker", { "shard/a.ts": 'import { kvModel } from "../checker/models.ts";\n' }, /checker/],
    ["raft", { "raft/a.ts": 'import { TcpClient } from "../net/tcp.ts";\n' }, /raft\/ uses only/],
    [
      "cycle",
      { "rsm/a.ts": 'import "./b.ts";\n', "rsm/b.ts": 'export { a } from "./a.ts";\n' },
      /import cycle: rsm\/a\.ts → rsm\/b\.ts/,
    ],
    [
      "dynamic",
      { "mapreduce/a.ts": 'const app = () => import("../kv/mod.ts");\n' },
      /service never imports/,
    ],
    [
      "spawn",
      { "kv/a.ts": 'const cli = new URL("../cli.ts", import.meta.url);\n' },
      /never uses the CLI/,
    ],
    ["direction", { "raft/a.ts": 'import { Replica } from "../rsm/replica.ts";\n' }, /below rsm/],
    ["direction", { "net/a.ts": 'import type { Entry } from "../raft/types.ts";\n' }, /below raft/],
    ["direction", { "kvstate/a.ts": 'import "../kv/mod.ts";\n' }, /kvstate\/ is below kv\//],
    ["length", { "kvstate/a.ts": "x;\n".repeat(MAX_LINES + 1) }, /801 lines/],
  ];
  for (const [rule, files, expected] of cases) {
    const problems = layoutProblems(tree(files));
    assert.equal(problems.length, 1, `${rule}: ${problems.join("; ")}`);
    assert.match(problems[0], expected, rule);
  }
  // What the rules allow: tests reach anywhere, examples in JSDoc are not imports,
  // a file at the limit, kvstate shared by two services.
  assert.deepEqual(
    layoutProblems(tree({
      "kv/a_test.ts": 'import { kvModel } from "../checker/models.ts";\nimport "../cli.ts";\n',
      "raft/test_util.ts": 'import { TcpClient } from "../net/tcp.ts";\n',
      "kv/b.ts": ' * import { ShardClerk } from "../shard/clerk.ts";\n' +
        "x;\n".repeat(MAX_LINES - 1),
      "shard/c.ts": 'import { KvStateMachine } from "../kvstate/state.ts";\n',
      "kv/c.ts": 'import { KvStateMachine } from "../kvstate/state.ts";\n',
      "tests/t.ts": 'import "../cli.ts";\nimport "../kv/c.ts";\n',
    })),
    [],
  );
});
