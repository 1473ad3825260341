import assert from "node:assert/strict";
import { checkOperations } from "./check.ts";
import { parseHistory } from "./formats.ts";
import { type Inference, inferKv } from "./infer.ts";
import { kvModel } from "./models.ts";
import { main } from "../cli.ts";
import type { KvOperation } from "./test_util.ts";

const op = (
  kind: "get" | "put" | "append",
  client: number,
  value: string,
  call: number,
  ret: number,
): KvOperation => ({
  client,
  input: kind === "get" ? { op: "get", key: "k" } : { op: kind, key: "k", value },
  call,
  output: kind === "get" ? value : "",
  return: ret,
});
const a = (client: number, value: string, call: number, ret: number) =>
  op("append", client, value, call, ret);
const p = (client: number, value: string, call: number, ret: number) =>
  op("put", client, value, call, ret);
const g = (client: number, output: string, call: number, ret: number) =>
  op("get", client, output, call, ret);
const open = (o: KvOperation): KvOperation => ({
  ...o,
  output: undefined,
  return: Infinity,
  unknown: true,
});

/** The proof's sentences, operations named "#<index>". */
function proof(r: Inference): string {
  assert.equal(r.verdict, "not linearizable", JSON.stringify(r));
  if (r.verdict !== "not linearizable") throw new Error("unreachable");
  return r.explain((i) => `#${i}`).join("\n");
}

/** The same verdict as the general search, and a linearization that replays. */
function agreesWithSearch(history: KvOperation[]): Inference {
  const r = inferKv(history);
  const searched = checkOperations(kvModel, history, { inference: false });
  assert.equal(r.verdict, searched.verdict);
  return r;
}

Deno.test("inference: appends read back in order are linearizable, with the order as linearization", () => {
  const history = [
    a(0, "x;", 0, 10),
    a(1, "y;", 1, 11),
    g(2, "y;", 2, 3), // y went first
    g(2, "y;x;", 12, 13),
  ];
  const r = agreesWithSearch(history);
  assert.equal(r.verdict, "linearizable");
  if (r.verdict === "linearizable") assert.deepEqual(r.linearization, [1, 2, 0, 3]);
});

Deno.test("inference: a read that missed an append completed before it began", () => {
  const r = agreesWithSearch([a(0, "x;", 0, 1), a(0, "y;", 2, 3), g(1, "y;", 4, 5)]);
  assert.match(proof(r), /#2 .*saw "y;" with nothing before it|first epoch/);
  const stale = agreesWithSearch([
    a(0, "x;", 0, 1),
    a(0, "y;", 2, 3),
    g(1, "x;", 4, 5),
    g(2, "x;y;", 6, 7),
  ]);
  assert.match(
    proof(stale),
    /#2 \(client 1, get → "x;", t=4–5\) saw "x;" but not "y;", which #3 shows right after "x;"; yet #1 \(client 0, append "y;", t=2–3\) completed before #2 began/,
  );
});

Deno.test("inference: a read that shows an append not yet invoked", () => {
  const r = agreesWithSearch([g(1, "x;", 0, 1), a(0, "x;", 2, 3)]);
  assert.match(proof(r), /#0 .* saw the value of #1 .*which was not yet invoked when #0 completed/);
});

Deno.test("inference: two reads that are not prefixes of each other", () => {
  const r = agreesWithSearch([
    a(0, "x;", 0, 10),
    a(1, "y;", 0, 10),
    a(2, "z;", 0, 10),
    g(3, "x;y;", 0, 10),
    g(4, "x;z;", 0, 10),
  ]);
  assert.match(
    proof(r),
    /both show "x;", but then ("y;" and "z;"|"z;" and "y;"): only one write comes right after another/,
  );
});

Deno.test("inference: a later read that saw an older value", () => {
  const r = agreesWithSearch([
    a(0, "x;", 0, 10),
    a(1, "y;", 0, 10),
    g(2, "x;y;", 1, 2),
    g(3, "x;", 3, 4),
  ]);
  assert.match(proof(r), /#3 .* saw "x;", an older value than "x;" "y;", which #2 .* saw/);
});

Deno.test("inference: values no write produces, repeated, or a put after other values", () => {
  assert.match(
    proof(agreesWithSearch([a(0, "x;", 0, 1), g(1, "x;q;", 2, 3)])),
    /#1 .* no sequence of the writes produces: after "x;" comes "q;"/,
  );
  assert.match(
    proof(agreesWithSearch([a(0, "x;", 0, 1), g(1, "x;x;", 2, 3)])),
    /shows the value of #0 .* twice/,
  );
  assert.match(
    proof(agreesWithSearch([a(0, "x;", 0, 1), p(1, "P;", 0, 1), g(1, "x;P;", 2, 3)])),
    /a put replaces the value, so nothing can come before it/,
  );
});

Deno.test("inference: puts start epochs; two epochs each forced before the other", () => {
  // Epoch of P: P, then Q's epoch: Q — fine in this order.
  const ok = agreesWithSearch([
    p(0, "P;", 0, 1),
    g(1, "P;", 2, 3),
    p(0, "Q;", 4, 5),
    a(2, "x;", 4, 9),
    g(1, "Q;x;", 10, 11),
  ]);
  assert.equal(ok.verdict, "linearizable");
  // P's epoch has a read after Q's read began and ended... each must come first.
  const bad = agreesWithSearch([
    p(0, "P;", 0, 1),
    p(1, "Q;", 0, 1),
    g(2, "P;", 2, 3),
    g(3, "Q;", 2, 3),
    g(2, "P;", 4, 5),
    g(3, "Q;", 4, 5),
  ]);
  assert.match(proof(bad), /the epoch of #\d .*so the second comes before the first/s);
});

Deno.test("inference: the initial empty value is read before every write", () => {
  assert.equal(
    agreesWithSearch([g(0, "", 0, 5), a(1, "x;", 1, 2), g(0, "x;", 6, 7)]).verdict,
    "linearizable",
  );
  assert.match(
    proof(agreesWithSearch([a(1, "x;", 0, 1), g(0, "", 2, 3)])),
    /saw the initial empty value, so it came before every write;\nyet #0 .*completed before #1 began/,
  );
});

Deno.test("inference: writes no read shows go at the end of an epoch, or never (outcome unknown)", () => {
  // An unseen append must come after the reads of its epoch: here it cannot.
  assert.equal(
    agreesWithSearch([a(0, "x;", 0, 1), a(1, "y;", 2, 3), g(2, "x;", 4, 5)]).verdict,
    "not linearizable",
  );
  // After a put it can.
  assert.equal(
    agreesWithSearch([
      a(0, "x;", 0, 1),
      a(1, "y;", 2, 3),
      p(3, "P;", 2, 6),
      g(2, "P;", 7, 8),
    ]).verdict,
    "linearizable",
  );
  // An open write may never have happened; an open read says nothing.
  assert.equal(
    agreesWithSearch([open(a(0, "x;", 0, 1)), g(1, "", 5, 6), open(g(2, "", 7, 8))]).verdict,
    "linearizable",
  );
  // A shown open write did happen.
  assert.equal(
    agreesWithSearch([open(a(0, "x;", 0, 1)), g(1, "x;", 5, 6), g(2, "", 7, 8)]).verdict,
    "not linearizable",
  );
});

Deno.test("inference: a value written twice is told apart by time, or left to the search", () => {
  // The second "x;" was invoked after the put, the first completed before it: the read shows the second.
  const told = agreesWithSearch([
    a(0, "x;", 0, 1),
    p(1, "P;", 2, 3),
    a(0, "x;", 4, 5),
    g(2, "P;x;", 6, 7),
  ]);
  assert.equal(told.verdict, "linearizable");
  const ambiguous = inferKv([a(0, "x;", 0, 10), a(1, "x;", 0, 10), g(2, "x;", 11, 12)]);
  assert.equal(ambiguous.verdict, "inapplicable");
  // A value that is a prefix of another could be read two ways: left to the search.
  assert.equal(inferKv([a(0, "x", 0, 1), a(0, "xy", 2, 3)]).verdict, "inapplicable");
  assert.equal(inferKv([a(0, "", 0, 1)]).verdict, "inapplicable");
});

Deno.test("checkOperations: an inferred violation carries its explanation, witnesses and method", () => {
  const history = [a(0, "x;", 0, 1), a(0, "y;", 2, 3), g(1, "x;", 4, 5), g(2, "x;y;", 6, 7)];
  const r = checkOperations(kvModel, history);
  assert.equal(r.verdict, "not linearizable");
  const part = r.partitions[0];
  assert.equal(part.method, "inference");
  // The read, the append it missed, and the read that shows the order (with what it shows).
  assert.deepEqual(part.witnesses, [2, 1, 0, 3]);
  assert.equal(part.firstIllegal, 2);
  assert.match(part.explanation!.join(" "), /^operation 3 \(client 1, get → "x;", t=4–5\) saw/);
  const searched = checkOperations(kvModel, history, { inference: false });
  assert.equal(searched.partitions[0].method, "search");
  assert.equal(searched.partitions[0].explanation, undefined);
});

/** `DISTKIT_HISTORIES` names the folder when the project is not next to ../shared. */
const HISTORIES = Deno.env.get("DISTKIT_HISTORIES")
  ? new URL(`file://${Deno.env.get("DISTKIT_HISTORIES")!.replace(/\/?$/, "/")}`)
  : new URL("../../shared/data/histories/", import.meta.url);

function sharedKvFiles(): string[] | string {
  try {
    return [...Deno.readDirSync(new URL("kv/", HISTORIES))].map((e) => e.name)
      .filter((n) => n.endsWith(".txt")).sort();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return `${HISTORIES.pathname} is absent`;
    throw err;
  }
}

const files = sharedKvFiles();
if (typeof files === "string") {
  console.log(`inference on the shared histories: skipped, ${files}`);
  Deno.test({
    name: `inference on the shared kv histories (skipped: ${files})`,
    ignore: true,
    fn() {},
  });
} else {
  Deno.test("inference agrees with the search on every partition of the shared kv histories", () => {
    // The Jepsen logs are cas-register histories: inference is for key/value ones.
    const counts = { agreed: 0, inapplicable: 0, undecidedBySearch: 0 };
    for (const name of files) {
      const history = parseHistory(Deno.readTextFileSync(new URL(`kv/${name}`, HISTORIES)));
      for (const part of kvModel.partition!(history.operations as KvOperation[])) {
        const r = inferKv(part);
        if (r.verdict === "inapplicable") {
          assert.doesNotMatch(r.reason, /invariant/);
          counts.inapplicable++;
          continue;
        }
        // Hard partitions (porcupine never finishes key "0" of c50-bad): a small budget, and
        // an undecided search counts as no disagreement.
        const s = checkOperations(kvModel, part, {
          inference: false,
          timeoutMs: 2_000,
          maxStates: 1 << 20,
        });
        if (s.verdict === "unknown") counts.undecidedBySearch++;
        else {
          assert.equal(r.verdict, s.verdict, `kv/${name}, key ${part[0].input.key}`);
          counts.agreed++;
        }
      }
    }
    console.log(`  ${JSON.stringify(counts)}`);
    assert.ok(counts.agreed >= 40, JSON.stringify(counts));
  });

  Deno.test('c50-bad key "0" (porcupine never finishes it): not linearizable, and why', () => {
    const history = parseHistory(
      Deno.readTextFileSync(new URL("kv/c50-bad.txt", HISTORIES)),
    );
    const key0 = history.operations.filter((o) => (o.input as { key: string }).key === "0");
    const r = checkOperations(kvModel, key0);
    assert.equal(r.verdict, "not linearizable");
    assert.equal(r.partitions[0].method, "inference");
    // The proof names three operations, each checkable in the file by hand: the read at lines
    // 1432–1441 shows only the put of "x 15 8 y" (put once, at 410–431), while another read shows
    // "x 32 0 y" right after it, an append that completed at line 551.
    const why = r.partitions[0].explanation!.join(" ");
    assert.match(why, /get → "x 15 8 y", t=1432–1441\) saw "x 15 8 y" but not "x 32 0 y"/);
    assert.match(why, /append "x 32 0 y", t=36–551\) completed before/);
    // The general search cannot decide key "0" (nor an 89-operation prefix of it) within 8
    // million states; the operations of the proof alone, it decides at once, and agrees.
    const witnesses = r.partitions[0].witnesses!.map((i) => key0[i]);
    assert.ok(witnesses.length < 10, `${witnesses.length} witnesses`);
    const alone = checkOperations(kvModel, witnesses, { inference: false });
    assert.equal(alone.verdict, "not linearizable");
    assert.equal(alone.partitions[0].method, "search");
  });

  Deno.test('distkit check on c50-bad key "0": exit 1 with the proof; the search alone, exit 3 at its memory budget (it crashed with exit 1 before)', async () => {
    const lines = Deno.readTextFileSync(new URL("kv/c50-bad.txt", HISTORIES)).split("\n")
      .filter((line) => line.includes(':key "0"'));
    const dir = await Deno.makeTempDir({ prefix: "distkit-infer-" });
    const file = `${dir}/key0.txt`;
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    const out: string[] = [];
    const { log, error } = console;
    console.log = console.error = (...a: unknown[]) => out.push(a.join(" "));
    let inferred: number, searched: number, searchedOut: string;
    try {
      inferred = await main(["check", "--model", "kv", file]);
      out.length = 0;
      searched = await main([
        "check",
        "--model",
        "kv",
        "--search-only",
        "--max-states",
        "100000",
        file,
      ]);
      searchedOut = out.join("\n");
    } finally {
      console.log = log;
      console.error = error;
      await Deno.remove(dir, { recursive: true });
    }
    assert.equal(inferred, 1);
    assert.equal(searched, 3, searchedOut);
    assert.match(searchedOut, /key0\.txt: unknown/);
    assert.match(searchedOut, /its memory budget \(--max-states 100000\)/);
  });
}
