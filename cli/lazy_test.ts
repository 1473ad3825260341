import assert from "node:assert/strict";

const CLI = new URL("../cli.ts", import.meta.url).href;
const CHECK = new URL("./check_commands.ts", import.meta.url).href;

/**
 * What runs at start-up from `entry`: it and what it imports statically, for
 * code (type-only imports and `import()` are left out), as `deno info` lists it.
 */
async function loadedAtStart(entry: string): Promise<Set<string>> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const info = JSON.parse(new TextDecoder().decode(r.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const loaded = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (loaded.has(next)) continue;
    loaded.add(next);
    for (const dep of bySpecifier.get(next)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) stack.push(dep.code.specifier);
    }
  }
  assert.ok(loaded.size > 3, `the graph was read: ${[...loaded].join(", ")}`);
  return loaded;
}

Deno.test("distkit: a command loads only its own code (check starts without Raft, TCP or KV)", async () => {
  // None of the library's service or transport code: each command loads its own.
  const loaded = await loadedAtStart(CLI);
  for (const heavy of ["/raft/", "/net/tcp", "/rsm/replica.ts", "/kv/node.ts", "/checker/"]) {
    const found = [...loaded].find((s) => s.includes(heavy));
    assert.equal(found, undefined, `cli.ts loads ${found} at start-up`);
  }
});

Deno.test("distkit check: the HTML report's code loads only with --html", async () => {
  const loaded = await loadedAtStart(CHECK);
  assert.ok([...loaded].some((s) => s.endsWith("/checker/search.ts")), "the checker is loaded");
  for (const report of ["/checker/html.ts", "/checker/report_"]) {
    const found = [...loaded].find((s) => s.includes(report));
    assert.equal(found, undefined, `check_commands.ts loads ${found} at start-up`);
  }
});

Deno.test("distkit mr: the MapReduce commands load no Raft, KV, checker or Node module loader", async () => {
  const loaded = await loadedAtStart(new URL("./mr_commands.ts", import.meta.url).href);
  assert.ok([...loaded].some((s) => s.endsWith("/net/tcp_client.ts")), "TCP is loaded");
  const heavies = [
    "/raft/",
    "/rsm/",
    "/kv/",
    "/kvstate/",
    "/shard/",
    "/checker/",
    "/pb/",
    "node:url",
  ];
  for (const heavy of heavies) {
    const found = [...loaded].find((s) => s.includes(heavy));
    assert.equal(found, undefined, `mr_commands.ts loads ${found} at start-up`);
  }
  // An npm package's CommonJS build starts Node's module loader in the
  // process (~20 ms of CPU at every start); msgpack is imported as ESM.
  const npm = [...loaded].filter((s) => s.startsWith("npm:"));
  assert.ok(npm.length > 0, "msgpack is loaded");
  for (const s of npm) assert.match(s, /\.mjs$/, `${s} is not an ES module build`);
});
