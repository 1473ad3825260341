/**
 * The command line's conventions, run in this process through `main`: one
 * exit code per outcome for every module, unknown options named with the
 * nearest known one, `--version`, per-action help, and clients that fail at
 * once (and say why) when nothing listens, or when they were pointed at an
 * HTTP port.
 */
import assert from "node:assert/strict";
import { main } from "../cli.ts";
import { delay, DISTKIT_VERSION, RpcServer, serveTcp } from "../net/mod.ts";
import { distkitCommand, LocalCluster } from "../cli.ts";
import { connectShard, keyToShard, startShardNode } from "../shard/mod.ts";
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

/** The CLI module, to run in another process. */
const CLI = new URL("../cli.ts", import.meta.url).pathname;

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

/** An address that accepts connections and never answers (not even the handshake). */
function silentServer(): { address: string; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  return {
    address: `${HOST}:${(listener.addr as Deno.NetAddr).port}`,
    close: async () => {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of held) conn.close();
    },
  };
}

Deno.test("cli: a timeout says what was tried and how each node fared, exit 3", async () => {
  const silent = silentServer();
  const address = silent.address;
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
    // What the client itself last heard from each node: the silent one never
    // finished the handshake, so the request was never sent to it.
    assert.match(r.err, /no answer within 300ms \(--timeout\); tried:/);
    assert.match(r.err, new RegExp(`${address}: cut off before it was sent`));
    assert.match(r.err, new RegExp(`${down}: (not tried; a probe now: )?connection refused`));
  } finally {
    await silent.close();
  }
});

Deno.test("cli: a shard key's operation that times out names the group that did not answer, not the controllers, exit 3", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-cli-shard-" });
  const ctrler = nobody();
  // The group's servers: one down, one that accepts connections and never answers.
  const silent = silentServer();
  const quiet = silent.address;
  const down = nobody();
  const node = await startShardNode({
    role: "ctrler",
    address: ctrler,
    peers: [ctrler],
    dataDir: `${dir}/ctrler`,
    tickMs: 20,
  });
  const connection = connectShard([ctrler]);
  const admin = connection.admin;
  const shard = keyToShard("k");
  try {
    await admin.query(); // the controller leads
    // No group yet: the configuration gives the key's shard to none.
    let r = await cli("shard", "get", "--endpoints", ctrler, "--timeout", "500ms", "k");
    assert.equal(r.code, 3, r.err);
    assert.match(
      r.err,
      new RegExp(
        `no answer within 500ms \\(--timeout\\) from a group for shard ${shard}: configuration ` +
          `0 gives it to none \\(the controllers answered\\)\\.\nJoin a group: distkit shard join`,
      ),
    );
    await admin.join({ 100: [down, quiet] });
    for (const args of [["get", "k"], ["put", "k", "v"]]) {
      r = await cli("shard", args[0], "--endpoints", ctrler, "--timeout", "1s", ...args.slice(1));
      assert.equal(r.code, 3, r.err);
      assert.match(
        r.err,
        new RegExp(
          `^distkit shard ${args[0]}: no answer within 1s \\(--timeout\\) from group 100, which ` +
            `holds shard ${shard} in configuration 1 \\(the controllers answered\\); tried:\n` +
            `(  .+\n){2}Check that group 100's servers are up .* and that configuration 1 lists ` +
            `the group at its servers' right addresses`,
        ),
      );
      // What the clerk last heard from each, or what a probe finds now.
      assert.match(r.err, new RegExp(`\n  ${down}: .*connection refused`));
      assert.match(r.err, new RegExp(`\n  ${quiet}: .*(cut off|accepts connections)`));
      assert.doesNotMatch(r.err, /The nodes now/);
      // Neither server got the put: it certainly did not take effect.
      assert.doesNotMatch(r.err, /may or may not/);
    }
  } finally {
    await connection.close();
    await node.close();
    await silent.close();
    await Deno.remove(dir, { recursive: true });
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
    // A budget without the option it budgets.
    [
      "kv",
      "serve",
      "--id",
      "0",
      "--peers",
      "127.0.0.1:1",
      "--data",
      "/nonexistent/d",
      "--values-in-log-budget",
      "1000",
    ],
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

/** Polls `condition` every 50 ms until it holds (the test's own timeout bounds it). */
async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await delay(50);
}

/** The JSON a command printed. */
function json(out: string): unknown {
  return JSON.parse(out);
}

Deno.test({
  name: "cli: kv clients against a 3-process cluster given one follower's address",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "distkit-cli-test-" });
    const exits: [number, Deno.CommandStatus][] = [];
    const cluster = await LocalCluster.start({
      nodes: 3,
      dataDir,
      onExit: (node, status) => void exits.push([node, status]),
    });
    let restarted: Deno.ChildProcess | undefined;
    try {
      const all = cluster.peers.join(",");
      const leader = await cluster.leader();
      const follower = cluster.peers[(leader + 1) % 3];
      let r = await cli("kv", "put", "--endpoints", all, "greeting", "hello");
      assert.equal(r.code, 0, r.err);
      // One follower's address is enough: it names the leader and the members.
      r = await cli("kv", "get", "--endpoints", follower, "greeting");
      assert.deepEqual([r.code, r.out], [0, "hello"], r.err);
      // The old spelling still works, with a note.
      r = await cli("kv", "get", "--cluster", follower, "--timeout", "5000", "greeting");
      assert.deepEqual([r.code, r.out], [0, "hello"], r.err);
      assert.match(r.err, /note: --cluster is deprecated .*; use --endpoints/);
      assert.match(r.err, /note: --timeout 5000 has no unit; it is read as 5000ms/);
      // -o json says what was done.
      r = await cli("kv", "put", "--endpoints", follower, "-o", "json", "k", "v");
      assert.deepEqual(json(r.out), { op: "put", key: "k", ok: true, bytes: 1 });
      r = await cli("kv", "get", "--endpoints", follower, "--json", "k");
      assert.deepEqual(json(r.out), { key: "k", found: true, value: "v" });
      r = await cli("kv", "del", "--endpoints", follower, "-o", "json", "k");
      assert.deepEqual(json(r.out), { op: "del", key: "k", deleted: true });
      r = await cli("kv", "del", "--endpoints", follower, "k");
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /no key "k": nothing to delete/);
      r = await cli("kv", "get", "--endpoints", follower, "-o", "json", "k");
      assert.deepEqual([r.code, json(r.out)], [1, { key: "k", found: false }]);
      // Bytes in and out, never replaced by U+FFFD.
      r = await cli("kv", "put", "--endpoints", follower, "--hex", "bin", "7801ff79");
      assert.equal(r.code, 0, r.err);
      r = await cli("kv", "get", "--endpoints", follower, "--hex", "bin");
      assert.equal(r.out, "7801ff79");
      r = await cli("kv", "get", "--endpoints", follower, "-o", "json", "bin");
      assert.deepEqual(json(r.out), { key: "bin", found: true, base64: "eAH/eQ==" });
      r = await cli("kv", "put", "--endpoints", follower, "--base64", "b64", "eAH/eQ==");
      r = await cli("kv", "get", "--endpoints", follower, "--hex", "b64");
      assert.equal(r.out, "7801ff79");
      r = await cli("kv", "put", "--endpoints", follower, "bad", "x\uFFFDy");
      assert.equal(r.code, 2);
      assert.match(r.err, /holds U\+FFFD.*--hex, --base64, --file or on stdin/s);
      const file = `${dataDir}/value.bin`;
      await Deno.writeFile(file, new Uint8Array([0, 0xff, 10]));
      r = await cli("kv", "put", "--endpoints", follower, "--file", file, "f");
      assert.equal(r.code, 0, r.err);
      r = await cli("kv", "get", "--endpoints", follower, "--file", `${file}.out`, "f");
      assert.deepEqual(await Deno.readFile(`${file}.out`), new Uint8Array([0, 0xff, 10]));
      // A value from stdin (another process: this one's stdin is the test runner's).
      const put = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "kv", "put", "--endpoints", follower, "piped", "-"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = put.stdin.getWriter();
      await writer.write(new TextEncoder().encode("from stdin\n"));
      await writer.close();
      const done = await put.output();
      assert.equal(done.code, 0, new TextDecoder().decode(done.stderr));
      r = await cli("kv", "get", "--endpoints", follower, "piped");
      assert.equal(r.out, "from stdin\n");
      // Status and health of every member, from one address.
      r = await cli("kv", "status", "--endpoints", follower, "-o", "json");
      assert.equal(r.code, 0, r.err);
      const rows = json(r.out) as { address: string; role: string; version: string }[];
      assert.deepEqual(rows.map((s) => s.address).sort(), [...cluster.peers].sort());
      assert.equal(rows.filter((s) => s.role === "leader").length, 1);
      assert.ok(rows.every((s) => s.version === DISTKIT_VERSION));
      r = await cli("kv", "endpoint", "status", "--endpoints", follower);
      assert.match(r.out, /^ENDPOINT +ID +ROLE +TERM +LEADER +COMMIT +APPLIED +RAFT STATE/);
      r = await cli("kv", "health", "--endpoints", follower);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.split("\n").filter((l) => / is healthy: leader /.test(l)).length, 3);
      r = await cli("kv", "list", "--endpoints", follower, "--prefix", "a");
      assert.equal(r.code, 2);
      assert.match(r.err, /not supported yet/);
      // A node that dies is reported with how, and the printed restart command works.
      const victim = (leader + 2) % 3;
      Deno.kill(cluster.pid(victim)!, "SIGKILL");
      await until(() => exits.length > 0);
      assert.equal(exits[0][0], victim);
      assert.equal(exits[0][1].signal, "SIGKILL");
      r = await cli("kv", "health", "--endpoints", follower);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`${cluster.peers[victim]} is unhealthy: connection refused`));
      const hint = distkitCommand(cluster.serveArgs(victim));
      assert.match(hint, /^deno run -A \S+\/cli\.ts kv serve --id \d/);
      restarted = new Deno.Command("sh", {
        args: ["-c", `exec ${hint}`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await until(async () => (await cli("kv", "health", "--endpoints", follower)).code === 0);
      r = await cli("kv", "get", "--endpoints", cluster.peers[victim], "greeting");
      assert.deepEqual([r.code, r.out], [0, "hello"], r.err);
    } finally {
      if (restarted) {
        restarted.kill("SIGTERM");
        await restarted.status;
      }
      await cluster.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test("cli: durations take units; a bad one is a usage error", async () => {
  for (const bad of ["10x", "-1s", "0", "s"]) {
    const r = await cli("kv", "get", "--endpoints", nobody(), `--timeout=${bad}`, "k");
    assert.equal(r.code, 2, bad);
    assert.match(r.err, /--timeout takes a duration like 10s or 500ms/, bad);
  }
  const r = await cli("kv", "get", "--endpoints", "nohost", "k");
  assert.equal(r.code, 2);
  assert.match(r.err, /--endpoints: "nohost" is not host:port/);
  const both = await cli("kv", "get", "--endpoints", nobody(), "--cluster", nobody(), "k");
  assert.equal(both.code, 2);
  assert.match(both.err, /--cluster is the old spelling of --endpoints; give one of them/);
});

Deno.test("cli: kv serve's snapshot policy flags take numbers >= 0", async () => {
  const data = await Deno.makeTempDir({ prefix: "distkit-cli-ratio-" });
  try {
    for (const [flag, value] of [["--snapshot-log-ratio", "-1"], ["--max-raft-state", "lots"]]) {
      const r = await cli(
        "kv",
        "serve",
        "--id",
        "0",
        "--peers",
        "127.0.0.1:7",
        "--data",
        data,
        `${flag}=${value}`, // "=": a value that starts with "-" would be taken for an option
      );
      assert.equal(r.code, 2, `${flag} ${value}: ${r.err}`);
      assert.match(r.err, new RegExp(`${flag} must be a number >= 0, got ${value}`));
    }
    const help = await cli("kv", "serve", "--help");
    assert.match(
      help.out,
      /--snapshot-log-ratio <r> --state memory only: 0 snapshots at --max-raft-state/,
    );
    assert.match(help.out, /--state disk\|memory +where the KV state is kept/);
    const state = await cli(
      "kv",
      "serve",
      "--id",
      "0",
      "--peers",
      "127.0.0.1:7",
      "--data",
      data,
      "--state",
      "ssd",
    );
    assert.equal(state.code, 2, state.err);
    assert.match(state.err, /--state is disk or memory, not "ssd"/);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: kv serve refuses an --http-offset that puts a node's HTTP port on another's TCP port", async () => {
  const data = await Deno.makeTempDir({ prefix: "distkit-cli-offset-" });
  try {
    const peers = "127.0.0.1:26720,127.0.0.1:27720,127.0.0.1:26722";
    // Node 1 alone: before, it failed to listen ("is node 1 already running?") only once node 0
    // held 27720 for its HTTP API, and started if it came first, leaving node 0 without HTTP.
    const clash = await cli("kv", "serve", "--id", "1", "--peers", peers, "--data", `${data}/kv`);
    assert.equal(clash.code, 2, clash.err);
    assert.match(clash.err, /node 0's HTTP address would be 127\.0\.0\.1:26720 \+ 1000/);
    assert.match(clash.err, /= node 1's TCP address 127\.0\.0\.1:27720/);
    const past = await cli(
      "kv",
      "serve",
      "--id",
      "0",
      "--peers",
      "127.0.0.1:65000",
      "--data",
      `${data}/kv`,
    );
    assert.equal(past.code, 2, past.err);
    assert.match(past.err, /65000 \+ 1000 \(--http-offset\), not a port/);
    assert.deepEqual([...Deno.readDirSync(data)], [], "nothing was created");
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: --peers listing an address twice is a usage error, before anything is made", async () => {
  const data = await Deno.makeTempDir({ prefix: "distkit-cli-twice-" });
  try {
    const dup = "127.0.0.1:26780,127.0.0.1:26780,127.0.0.1:26782";
    const kv = await cli("kv", "serve", "--id", "0", "--peers", dup, "--data", `${data}/kv`);
    assert.equal(kv.code, 2, kv.err);
    assert.match(kv.err, /peers lists 127\.0\.0\.1:26780 twice \(nodes 0 and 1\)/);
    // A shard replica's id is its address: listed twice, its vote would count twice.
    const ctrler = await cli(
      "shard",
      "ctrler",
      "serve",
      "--listen",
      "127.0.0.1:26780",
      "--peers",
      dup,
      "--data",
      `${data}/c`,
    );
    assert.equal(ctrler.code, 2, ctrler.err);
    assert.match(ctrler.err, /peers lists "127\.0\.0\.1:26780" twice/);
    assert.deepEqual([...Deno.readDirSync(data)], [], "nothing was created");
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: a malformed address is a usage error, and port 0 is for listening only", async () => {
  const data = await Deno.makeTempDir({ prefix: "distkit-cli-address-" });
  try {
    const bad = [
      // "host:" was port 0 for the old lax parser; an address to reach needs a port.
      ["kv", "serve", "--id", "0", "--peers", "127.0.0.1:", "--data", `${data}/kv`],
      ["kv", "serve", "--id", "0", "--peers", "127.0.0.1:0", "--data", `${data}/kv`],
      [
        "shard",
        "ctrler",
        "serve",
        "--listen",
        "::1:7000",
        "--peers",
        "::1:7000",
        "--data",
        `${data}/c`,
      ],
      ["mr", "coordinator", "--listen", "127.0.0.1:", "README.md"],
      ["mr", "worker", "--coordinator", "127.0.0.1:0", "--app", "wc"],
      ["pb", "view", "serve", "--listen", "127.0.0.1:65536"],
    ];
    for (const args of bad) {
      const r = await cli(...args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, /bad address "[^"]*": .*expected "host:port"/, args.join(" "));
    }
    // Nothing was created for the refused nodes.
    assert.deepEqual([...Deno.readDirSync(data)], []);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
