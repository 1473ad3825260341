import assert from "node:assert/strict";

const SCRIPT = new URL("./raft_log_kinds.ts", import.meta.url).pathname;

Deno.test("raft_log_kinds: a bad option exits 2 with the usage, starting no cluster", async () => {
  for (
    const args of [["--clients", "0"], ["--seconds", "x"], ["--ports", "80-90"], ["--nope"]]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SCRIPT, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, `${args.join(" ")}: ${err}`);
    assert.match(err, /usage: deno run -A bench\/raft_log_kinds\.ts/);
    assert.doesNotMatch(new TextDecoder().decode(out.stdout), /\| round \|/);
  }
});
