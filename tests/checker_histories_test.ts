/**
 * The checker on real histories (../shared/data/histories/): the 6.824-style
 * key/value histories of kv/ and Jepsen's etcd logs of jepsen/, each with the
 * verdict porcupine's test suite asserts. Skipped, with a message, when that
 * folder is absent.
 */
import assert from "node:assert/strict";
import {
  checkOperations,
  type Model,
  modelsByName,
  type Operation,
  parseHistory,
} from "../checker/mod.ts";

const ROOT = new URL("../../shared/data/histories/", import.meta.url);
/** Per history; running out is a failure, not a pass. */
const TIMEOUT_MS = 60_000;
/** The Jepsen etcd logs that are linearizable; all the others are not. */
const JEPSEN_LINEARIZABLE = new Set([
  "002",
  "005",
  "007",
  "018",
  "025",
  "031",
  "038",
  "045",
  "048",
  "049",
  "051",
  "053",
  "056",
  "067",
]);

function listDir(url: URL): string[] | undefined {
  try {
    return [...Deno.readDirSync(url)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function expectedVerdict(folder: string, name: string): "linearizable" | "not linearizable" {
  if (folder === "kv") {
    const m = /^c\d+-(ok|bad)\.txt$/.exec(name);
    if (m === null) throw new Error(`kv/${name}: not a cNN-ok.txt or cNN-bad.txt history`);
    return m[1] === "ok" ? "linearizable" : "not linearizable";
  }
  const m = /^etcd_(\d{3})\.log$/.exec(name);
  if (m === null) throw new Error(`jepsen/${name}: not an etcd_NNN.log history`);
  return JEPSEN_LINEARIZABLE.has(m[1]) ? "linearizable" : "not linearizable";
}

/**
 * Asserts that `order` linearizes `ops`: each operation once, never before
 * one that returned before it was called, and every step legal in the model.
 */
function assertWitness(
  model: Model<unknown, unknown, unknown>,
  ops: Operation[],
  order: number[],
): void {
  assert.deepEqual([...order].sort((a, b) => a - b), ops.map((_, i) => i));
  let latestCall = -Infinity;
  let state = model.init();
  for (const i of order) {
    const op = ops[i];
    // An operation placed after one called later must not have returned before that call.
    if (!op.unknown) assert.ok(op.return >= latestCall, `operation ${i} placed too late`);
    latestCall = Math.max(latestCall, op.call);
    const next = model.step(state, op.input, op.unknown ? undefined : op.output);
    assert.ok(next !== undefined, `operation ${i} is illegal where the linearization puts it`);
    state = next;
  }
}

const folders = { kv: listDir(new URL("kv/", ROOT)), jepsen: listDir(new URL("jepsen/", ROOT)) };

if (folders.kv === undefined && folders.jepsen === undefined) {
  const reason = "../shared/data/histories not found";
  console.log(`checker histories: skipped (${reason} next to the project)`);
  Deno.test({ name: `checker histories (skipped: ${reason})`, ignore: true, fn() {} });
} else {
  Deno.test("checker histories: every history the README lists is there", () => {
    // A missing folder or file would otherwise quietly shrink the test.
    assert.deepEqual(folders.kv, [
      "c01-bad.txt",
      "c01-ok.txt",
      "c10-bad.txt",
      "c10-ok.txt",
      "c50-bad.txt",
      "c50-ok.txt",
    ]);
    assert.deepEqual(
      folders.jepsen,
      Array.from({ length: 70 }, (_, i) => `etcd_${String(i).padStart(3, "0")}.log`),
    );
  });

  for (const [folder, names] of Object.entries(folders)) {
    for (const name of names ?? []) {
      const expected = expectedVerdict(folder, name);
      Deno.test(`checker history ${folder}/${name}: ${expected}`, () => {
        const parsed = parseHistory(Deno.readTextFileSync(new URL(`${folder}/${name}`, ROOT)));
        assert.equal(parsed.format, folder === "kv" ? "edn" : "jepsen");
        assert.equal(parsed.model, folder === "kv" ? "kv" : "cas-register");
        assert.ok(parsed.operations.length > 0);
        const result = checkOperations(modelsByName[parsed.model!], parsed.operations, {
          timeoutMs: TIMEOUT_MS,
          details: false,
        });
        if (result.verdict === "unknown") {
          assert.fail(
            `${folder}/${name}: no verdict within ${TIMEOUT_MS} ms (expected ${expected})`,
          );
        }
        assert.equal(result.verdict, expected, `${folder}/${name}`);
        if (expected === "not linearizable") {
          const failed = result.partitions.find((p) => p.verdict === "not linearizable");
          assert.ok(failed !== undefined && (failed.firstIllegal ?? -1) >= 0);
        } else {
          // Each partition's linearization is a witness: replay it.
          const model = modelsByName[parsed.model!] as Model<unknown, unknown, unknown>;
          for (const p of result.partitions) assertWitness(model, p.operations, p.linearization!);
          const placed = result.partitions.reduce((n, p) => n + p.linearization!.length, 0);
          assert.equal(placed, parsed.operations.length);
        }
      });
    }
  }
}
