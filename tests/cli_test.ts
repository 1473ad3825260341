/**
 * The command line's conventions, run in this process through `main`: one
 * exit code per outcome for every module, unknown options named with the
 * nearest known one, `--version`, per-action help, and clients that fail at
 * once (and say why) when nothing listens, or when they were pointed at an
 * HTTP port.
 */
import assert from "node:assert/strict";
import { main } from "../cli.ts";
import { RpcServer, serveTcp } from "../net/mod.ts";
import { freePorts, HOST } from "./node_process.ts";

/** Runs `distkit <args>` in this process; its exit code and what it printed. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => void err.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** An address where nothing listens (a port just freed). */
const nobody = () => `${HOST}:${freePorts(1)[0]}`;

/**
 * A long --timeout: a client that waited for it instead of failing at once
 * would print "no answer within ..." rather than "cannot connect".
 */
const PATIENT = ["--timeout", "30s"];

Deno.test("cli: an unknown option is named, with the nearest known one, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["kv", "get", "--clustr", "x", "k"], /unknown option --clustr \(did you mean --endpoints\?\)/],
    [
      ["shard", "get", "--ctrler", "x", "k"],
      /unknown option --ctrler \(did you mean --endpoints\?\)/,
    ],
    [
      ["pb", "kv", "get", "k", "--veiw", "x"],
      /unknown option --veiw \(did you mean --endpoints\?\)/,
    ],
    [["mr", "sequential", "--ap", "wc", "f"], /unknown option --ap \(did you mean --app\?\)/],
    [["raft", "serve", "--peers", "a=x"], /unknown option --peers \(did you mean --peer\?\)/],
    [
      ["net", "call", "--timout", "5", "a:1", "A.B"],
      /unknown option --timout \(did you mean --timeout\?\)/,
    ],
    [["kv", "get", "--zzzzzzzz", "k"], /unknown option --zzzzzzzz\n/],
    [["kv", "get", "k", "--cluster"], /option --cluster needs a value/],
  ];
  for (const [args, expected] of cases) {
    const r = await cli(...args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, expected, args.join(" "));
    assert.doesNotMatch(r.err, /place it at the end of the command/);
  }
});

Deno.test("cli: --version prints deno.json's version", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { version: string };
  const r = await cli("--version");
  assert.equal(r.code, 0);
  assert.equal(r.out, `distkit ${config.version}`);
});

Deno.test("cli: a client fails at once when nothing listens at any address, exit 3", async () => {
  const one = nobody();
  const two = [nobody(), nobody()].join(",");
  const cases: [string[], RegExp][] = [
    [
      ["kv", "get", "--endpoints", one, ...PATIENT, "k"],
      new RegExp(`cannot connect to ${one} \\(connection refused\\); is a node running there\\?`),
    ],
    [
      ["kv", "put", "--endpoints", two, ...PATIENT, "k", "v"],
      /cannot connect to any of .*, .* \(connection refused\); are the nodes running there\?/,
    ],
    [
      ["shard", "get", "--endpoints", one, ...PATIENT, "k"],
      /cannot connect to .* is a node running/,
    ],
    [
      ["pb", "kv", "get", "k", "--endpoints", one, ...PATIENT],
      /cannot connect to .* is a node running/,
    ],
    [["net", "call", one, "Health.Ping"], /cannot connect to .* is a node running there\?/],
  ];
  for (const [args, expected] of cases) {
    const r = await cli(...args);
    assert.equal(r.code, 3, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, expected, args.join(" "));
    assert.doesNotMatch(r.err, /no answer within/);
  }
});

Deno.test("cli: a timeout says what was tried and how each node fared, exit 3", async () => {
  // Accepts connections and never answers (not even the handshake).
  const silent = Deno.listen({ hostname: HOST, port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  const address = `${HOST}:${(silent.addr as Deno.NetAddr).port}`;
  const down = nobody();
  try {
    const r = await cli(
      "kv",
      "get",
      "--endpoints",
      `${address},${down}`,
      "--timeout",
      "300ms",
      "k",
    );
    assert.equal(r.code, 3, r.err);
    // What the client itself last heard from each node.
    assert.match(r.err, /no answer within 300ms \(--timeout\); tried:/);
    assert.match(r.err, new RegExp(`${address}: no answer before the call was cut off`));
    assert.match(r.err, new RegExp(`${down}: (not tried; a probe now: )?connection refused`));
  } finally {
    silent.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("cli: a client pointed at an HTTP port is told so, exit 4", async () => {
  const http = Deno.serve(
    { hostname: HOST, port: 0, onListen: () => {} },
    () => new Response("not distkit"),
  );
  const address = `${HOST}:${http.addr.port}`;
  try {
    for (
      const args of [["kv", "get", "--endpoints", address, "k"], ["net", "call", address, "A.B"]]
    ) {
      const r = await cli(...args);
      assert.equal(r.code, 4, `${args.join(" ")}: ${r.err}`);
      assert.match(
        r.err,
        /this looks like an HTTP server; distkit clients use the node's TCP port/,
      );
      assert.doesNotMatch(r.err, /1213486160/);
    }
  } finally {
    await http.shutdown();
  }
});

Deno.test("cli: a server of another cluster refuses the client, exit 4", async () => {
  const server = serveTcp(new RpcServer(), { hostname: HOST, port: 0, cluster: "blue" });
  try {
    const r = await cli("kv", "get", "--endpoints", server.address, "--cluster-id", "green", "k");
    assert.equal(r.code, 4, r.err);
    assert.match(r.err, /refused/);
  } finally {
    await server.close();
  }
});

Deno.test("cli: a usage error is 2 in every module", async () => {
  const cases: string[][] = [
    ["kv", "get", "k"], // no --endpoints
    ["kv", "cas", "--endpoints", "127.0.0.1:1", "k"], // too few operands
    ["shard", "join", "--endpoints", nobody()], // no --gid
    ["pb", "kv", "get", "--endpoints", "127.0.0.1:1"], // no KEY
    ["pb", "lock", "nonsense"],
    ["raft", "serve", "--id", "a"],
    ["mr", "sequential", "--app", "no-such-app", "f.txt"],
    ["mr", "worker", "--app", "wc"],
    ["net", "call", "127.0.0.1:1"],
    ["kv", "nonsense"],
    ["nonsense"],
  ];
  for (const args of cases) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: distkit|unknown/, args.join(" "));
  }
});

Deno.test("cli: help texts are complete and aligned", async () => {
  const cas = await cli("kv", "cas", "--help");
  assert.match(cas.out, /--absent +set the key only if it is absent/);
  assert.match(cas.out, /exit status: 0 done, 1 no/);
  for (
    const [name, options] of [["join", ["--gid", "--servers"]], ["leave", ["--gid"]], [
      "move",
      ["--shard", "--gid"],
    ]] as const
  ) {
    const help = await cli("shard", name, "--help");
    for (const option of options) {
      assert.match(help.out, new RegExp(`^  ${option} <`, "m"), `shard ${name}: ${option}`);
    }
  }
  const worker = await cli("mr", "worker", "--help");
  assert.match(worker.out, /options:\n {2}--coordinator <host:port>/);
  // Each pb action has its own help.
  const pbGet = await cli("pb", "kv", "get", "--help");
  assert.match(pbGet.out, /^usage: distkit pb kv get KEY --endpoints/);
  assert.doesNotMatch(pbGet.out, /pb kv serve/);
  const pbServe = await cli("pb", "lock", "serve", "--help");
  assert.match(pbServe.out, /^usage: distkit pb lock serve/);
  assert.doesNotMatch(pbServe.out, /pb lock unlock/);
  // A module's commands in one column, whatever the length of their names.
  const mr = await cli("mr", "--help");
  const summaries = mr.out.split("\n").filter((l) => /^ {2}[a-z]/.test(l)).map((l) =>
    /^ {2}\S+ {2,}/.exec(l)?.[0].length
  );
  assert.equal(summaries.length, 3, mr.out);
  assert.equal(new Set(summaries).size, 1, mr.out);
});
