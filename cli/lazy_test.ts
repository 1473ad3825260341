import assert from "node:assert/strict";

const CLI = new URL("../cli.ts", import.meta.url).href;

Deno.test("distkit: a command loads only its own code (check starts without Raft, TCP or KV)", async () => {
  // `deno info` lists what the entry point loads statically: none of the
  // library's service or transport code, which each command loads itself.
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", CLI],
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
  // What runs at start-up: cli.ts and what it imports statically, for code
  // (type-only imports and `import()` are left out).
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const loaded = new Set<string>();
  const stack = [CLI];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (loaded.has(next)) continue;
    loaded.add(next);
    for (const dep of bySpecifier.get(next)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) stack.push(dep.code.specifier);
    }
  }
  assert.ok(loaded.size > 3, `the graph was read: ${[...loaded].join(", ")}`);
  for (const heavy of ["/raft/", "/net/tcp", "/rsm/replica.ts", "/kv/node.ts", "/checker/"]) {
    const found = [...loaded].find((s) => s.includes(heavy));
    assert.equal(found, undefined, `cli.ts loads ${found} at start-up`);
  }
});
