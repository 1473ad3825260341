import assert from "node:assert/strict";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const SAMPLES = new URL("../samples/histories/", import.meta.url).pathname;

async function check(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", CLI, "check", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, out: text(r.stdout), err: text(r.stderr) };
}

Deno.test("distkit check FILE...: one line per file, exit code of the worst", async () => {
  const ok = `${SAMPLES}kv-ok.jsonl`;
  const bad = `${SAMPLES}kv-bad.jsonl`;
  const reg = `${SAMPLES}register-ok.jsonl`;
  const all = await check([ok, bad, reg]);
  const lines = all.out.trim().split("\n");
  assert.equal(lines.length, 3, all.out);
  assert.match(lines[0], /kv-ok\.jsonl: linearizable \(kv, \d+ operations, /);
  assert.match(lines[1], /kv-bad\.jsonl: not linearizable \(kv, \d+ operations, /);
  assert.match(lines[2], /register-ok\.jsonl: linearizable \(/);
  assert.equal(all.code, 1);

  const good = await check([ok, reg]);
  assert.equal(good.code, 0, good.out + good.err);

  // A missing file is a usage error (2), above a failed check's 1.
  const missing = await check([bad, `${SAMPLES}no-such.jsonl`]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /cannot read .*no-such\.jsonl/);
  assert.match(missing.out, /kv-bad\.jsonl: not linearizable/);

  const html = await check(["--html", "r.html", ok, reg]);
  assert.equal(html.code, 2);
  assert.match(html.err, /--html writes the report of one history/);
});
