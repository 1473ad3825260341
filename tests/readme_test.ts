/**
 * The README's example commands that read the sample data in `samples/`
 * run as printed (in a fresh folder, with `cli.ts` and `samples/` as the
 * repository's), and exit with the code the README gives (`# exit N`, else 0).
 * The `mr coordinator` example runs with the README's `mr worker --app wc`
 * example pointed at it.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const README = await Deno.readTextFile(`${ROOT}README.md`);

/** Every command line of the README's `sh` blocks (continuations joined). */
function readmeCommands(): { line: string; block: string[] }[] {
  const out: { line: string; block: string[] }[] = [];
  for (const match of README.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = match[1].replace(/\\\n\s*/g, "").split("\n");
    for (const line of lines) {
      if (line.startsWith("deno run")) out.push({ line, block: lines });
    }
  }
  return out;
}

/** The line as a shell command run from a fresh folder: the repository's files by absolute path. */
function rooted(line: string): string {
  const command = line.replace(/\s+#.*$/, "");
  return command.replace(/^deno /, `"${Deno.execPath()}" `)
    .replace(/(^|\s)cli\.ts(\s)/, `$1${ROOT}cli.ts$2`)
    .replaceAll(/(^|\s)samples\//g, `$1${ROOT}samples/`);
}

function expectedCode(line: string): number {
  return Number(/#\s*exit (\d)/.exec(line)?.[1] ?? 0);
}

async function shell(command: string, cwd: string) {
  const out = await new Deno.Command("bash", {
    args: ["-c", command],
    cwd,
    env: { DISTKIT_SECRET: "" },
  })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

const uses = readmeCommands().filter(({ line }) => /(^|\s)samples\//.test(line));

Deno.test("README: the examples use the sample data", () => {
  assert.ok(uses.some(({ line }) => / mr sequential /.test(line)), "an mr sequential example");
  assert.ok(uses.some(({ line }) => / mr coordinator /.test(line)), "an mr coordinator example");
  assert.ok(uses.some(({ line }) => / check /.test(line)), "a check example");
  assert.doesNotMatch(
    README,
    /\.\.\/shared\/data\/[^`\s]*\s*(#.*)?\n/,
    "an example reads ../shared",
  );
});

const bash = await new Deno.Command("bash", { args: ["-c", "true"] }).output().then(
  (o) => o.success,
  () => false,
);
if (!bash) console.log("  README examples: skipped, no bash here to expand their globs");

for (const { line, block } of uses) {
  Deno.test({
    name: `README: ${line.replace(/\s+#.*$/, "").replace(/^deno run .*? cli\.ts /, "distkit ")}`,
    ignore: !bash,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "distkit-readme-" });
      try {
        if (!/ mr coordinator /.test(line)) {
          const r = await shell(rooted(line), dir);
          assert.equal(r.code, expectedCode(line), `${line}\n${r.stderr}`);
          if (/ mr sequential /.test(line)) {
            assert.match(r.stdout, /output: \.\/mr-out-0/);
            assert.ok((await Deno.stat(`${dir}/mr-out-0`)).size > 0);
          }
          if (/--html (\S+)/.test(line)) {
            const html = /--html (\S+)/.exec(line)![1];
            assert.ok((await Deno.stat(`${dir}/${html}`)).size > 0, "the HTML report");
          }
          return;
        }
        // The coordinator, then the README's wc worker pointed at the address it prints.
        const worker = block.find((l) => / mr worker --coordinator \S+ --app wc/.test(l));
        assert.ok(worker, "an mr worker --app wc example beside the coordinator's");
        const child = new Deno.Command("bash", {
          args: ["-c", `exec ${rooted(line.replace(/--listen \S+/, "--listen 127.0.0.1:0"))}`],
          cwd: dir,
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(child.stderr).text();
        const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let out = "";
        while (!/listening on (\S+)/.test(out)) {
          const { value, done } = await lines.read();
          if (done) break;
          out += value;
        }
        const address = /listening on (\S+)/.exec(out)?.[1];
        assert.ok(address, `the coordinator printed no address: ${out}`);
        const w = await shell(
          rooted(worker.replace(/--coordinator \S+/, `--coordinator ${address}`)),
          dir,
        );
        assert.equal(w.code, 0, w.stderr);
        while (true) {
          const { value, done } = await lines.read();
          if (done) break;
          out += value;
        }
        const status = await child.status;
        assert.equal(status.code, 0, await stderr);
        assert.match(
          out,
          /3 map tasks, then 10 reduce tasks; output: \.\/mr-out-0 \.\. \.\/mr-out-9/,
        );
        assert.match(out, /job done in .* s; output: /);
        assert.doesNotMatch(await stderr, /done \d+\/\d+ done/);
        const outputs = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("mr-out-"));
        assert.equal(outputs.length, 10);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
