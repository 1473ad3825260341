import assert from "node:assert/strict";

const SCRIPT = new URL("./storage_sync.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, out: text(out.stdout), err: text(out.stderr) };
}

Deno.test("storage_sync: one row per mode and process count, each with writes timed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "storage_sync_test_" });
  try {
    const r = await run([
      "--seconds",
      "0.2",
      "--warmup",
      "0",
      "--procs",
      "1,2",
      "--modes",
      "kv-storage,seg-storage,mark-record",
      "--segment-bytes",
      "1048576",
      "--dir",
      dir,
    ]);
    assert.equal(r.code, 0, r.err);
    const rows = r.out.split("\n").filter((l) =>
      /^\| (kv-storage|seg-storage|mark-record) \|/.test(l)
    );
    assert.deepEqual(
      rows.map((l) => l.split("|").slice(1, 3).map((c) => c.trim())),
      [
        ["kv-storage", "1"],
        ["kv-storage", "2"],
        ["seg-storage", "1"],
        ["seg-storage", "2"],
        ["mark-record", "1"],
        ["mark-record", "2"],
      ],
    );
    for (const row of rows) {
      const writes = Number(row.split("|")[5].trim().replaceAll(",", ""));
      assert.ok(writes > 0, `no write was timed: ${row}`);
    }
    // Each child wrote in its own folder under --dir, which is kept.
    const folders = [];
    for await (const e of Deno.readDir(dir)) folders.push(e.name);
    assert.equal(folders.length, 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("storage_sync: a bad option exits 2 with the usage, measuring nothing", async () => {
  for (const args of [["--modes", "floppy"], ["--procs", "0"], ["--seconds", "x"], ["--nope"]]) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: deno run -A bench\/storage_sync\.ts/);
  }
});
