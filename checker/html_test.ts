import assert from "node:assert/strict";
import { checkOperations } from "./check.ts";
import { renderHtml } from "./html.ts";
import { type CasInput, casRegisterModel, type KvInput, kvModel } from "./models.ts";
import type { PartitionData, ReportData } from "./report_data.ts";
import { reportHistory } from "./test_util.ts";
import { REPORT_SCRIPT } from "./report_script.ts";
import type { Model, NondeterministicModel, Operation } from "./types.ts";

type KvOp = Operation<KvInput, string | undefined>;

const badHistory: KvOp[] = [
  { client: 0, input: { op: "put", key: "x", value: "1" }, call: 0, output: "", return: 10 },
  { client: 1, input: { op: "append", key: "x", value: "2" }, call: 2, output: "", return: 4 },
  { client: 1, input: { op: "get", key: "x" }, call: 12, output: "21", return: 15 },
  { client: 2, input: { op: "get", key: "y" }, call: 1, output: "", return: 3 },
];

/** The data the page embeds. */
function pageData(html: string): ReportData {
  const m = html.match(/<script type="application\/json" id="data">([^<]*)<\/script>/);
  assert.ok(m, "the page embeds its data");
  return JSON.parse(m[1]);
}

/** The descriptions of a partition's operations, decoded as the page's script does. */
function descriptions(p: PartitionData): string[] {
  return p.d.map((d, i) => p.hs[p.h[i]] + (typeof d === "number" ? p.d[d] : d));
}

/** A sequence's states, decoded as the page's script does (undefined where left out). */
function states(p: PartitionData, k = 0): (string | undefined)[] {
  const s = p.s![k];
  const out: (string | undefined)[] = new Array(s.f).fill(undefined);
  let before: string | undefined;
  for (const st of s.st) out.push(before = st === 0 ? before : st);
  return out;
}

Deno.test("renderHtml shows every operation", () => {
  const result = checkOperations(kvModel, badHistory);
  const data = pageData(renderHtml(result, { model: kvModel }));
  const shown = data.p.flatMap(descriptions);
  for (const op of badHistory) {
    assert.ok(
      shown.includes(kvModel.describeOperation!(op.input, op.output)),
      `missing ${JSON.stringify(op.input)}`,
    );
  }
});

Deno.test("renderHtml marks the first error of a failing history", () => {
  const result = checkOperations(kvModel, badHistory);
  assert.equal(result.verdict, "not linearizable");
  const html = renderHtml(result, { model: kvModel });
  const failing = result.partitions.find((p) => p.verdict === "not linearizable")!;
  const data = pageData(html);
  // The failing partition comes first, named by its key, with the operation that cannot be placed.
  assert.equal(data.p[0].n, 'key "x"');
  assert.equal(data.p[0].v, "bad");
  assert.equal(data.p[0].x, failing.firstIllegal);
  assert.match(html, /<section id="first-error">/);
  assert.match(html, /<a class="jump" href="#first-error" data-go="0 \d+">/);
  // A linearizable history has no error to jump to.
  const ok = renderHtml(checkOperations(kvModel, badHistory.slice(0, 2)), { model: kvModel });
  assert.ok(!ok.includes(`id="first-error"`));
  assert.ok(!ok.includes('class="jump"'));
});

Deno.test("renderHtml escapes values from the history", () => {
  const evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";
  const history: KvOp[] = [
    {
      client: "<b>c</b>",
      input: { op: "put", key: evil, value: evil },
      call: 0,
      output: "",
      return: 1,
      annotation: evil,
    },
    { client: 1, input: { op: "get", key: evil }, call: 2, output: evil, return: 3 },
    { client: 1, input: { op: "get", key: evil }, call: 4, output: "other", return: 5 },
  ];
  for (const model of [kvModel, undefined]) {
    const html = renderHtml(checkOperations(kvModel, history), { model, title: evil });
    assert.ok(!html.includes("<script>alert"), "raw script in the page");
    assert.ok(!html.includes("<img"), "raw img in the page");
    assert.ok(!html.includes("<b>c</b>"));
    assert.ok(html.includes("&lt;/script&gt;&lt;script&gt;alert(1)"));
    // Exactly the page's own two script elements.
    assert.equal(html.match(/<script/g)?.length, 2);
    assert.equal(html.match(/<\/script>/g)?.length, 2);
  }
});

Deno.test("renderHtml is self-contained", () => {
  const html = renderHtml(checkOperations(kvModel, badHistory), {
    model: kvModel,
    title: "kv",
  });
  assert.ok(!/https?:\/\//.test(html), "the page refers to the network");
  assert.ok(!/<(link|img|iframe)\b/.test(html));
  assert.ok(!/\bsrc=/.test(html));
});

Deno.test("renderHtml shows open operations, annotations and states", () => {
  const history: Operation<CasInput, unknown>[] = [
    { client: 0, input: { op: "write", value: 1 }, call: 0, output: undefined, return: 2 },
    {
      client: 1,
      input: { op: "cas", from: 1, to: 2 },
      call: 1,
      output: undefined,
      return: Infinity,
      unknown: true,
      annotation: "leader killed here",
    },
    { client: 2, input: { op: "read" }, call: 3, output: 2, return: 4 },
  ];
  const result = checkOperations(casRegisterModel, history);
  assert.equal(result.verdict, "linearizable");
  const html = renderHtml(result, { model: casRegisterModel });
  const [p] = pageData(html).p;
  assert.deepEqual(p.r.map((r) => r < 0), [false, true, false], "the cas is open");
  assert.deepEqual(p.a, [[1, "leader killed here"]]);
  // The annotation is listed, and its entry jumps to the operation.
  assert.match(html, /<a href="#p0" data-go="0 1">⚑ leader killed here<\/a>/);
  // The states after each step, from the model: null, 1, 2, 2.
  assert.deepEqual(states(p), ["null", "1", "2", "2"]);
});

Deno.test("renderHtml replays nondeterministic models and copes without one", () => {
  const flaky: Model<number, number | null, number | null> = {
    init: () => 0,
    step: (s, write, read) => write !== null ? write : read === s ? s : undefined,
  };
  const history: Operation<number | null, number | null>[] = [
    { client: 0, input: 5, call: 0, output: null, return: 1 },
    { client: 0, input: null, call: 2, output: 5, return: 3 },
  ];
  const result = checkOperations(flaky, history);
  const plain = pageData(renderHtml(result));
  assert.ok(descriptions(plain.p[0]).includes("5 → null"));
  assert.deepEqual(plain.p[0].s![0].st, [], "no model: no states");
  const ndModel: NondeterministicModel<number, number | null, number | null> = {
    nondeterministic: true,
    init: () => [0],
    step: (s, w, r) => w !== null ? [s, w] : r === s ? [s] : [],
  };
  const nd = pageData(renderHtml(result, { model: ndModel }));
  assert.ok(states(nd.p[0]).includes("{0 | 5}"));
});

Deno.test("renderHtml stays bounded for long histories of long values", () => {
  // Operations on one key whose value grows to 20 KB: the page shows cut
  // descriptions and states (uncut, a long history made a page over V8's
  // string limit: "Invalid string length").
  const history: KvOp[] = [];
  let value = "";
  for (let i = 0; i < 2_000; i++) {
    const piece = `${"v".repeat(9)}${i % 10}`;
    history.push({
      client: 0,
      input: { op: "append", key: "k", value: piece },
      call: 4 * i,
      output: undefined,
      return: 4 * i + 1,
    });
    value += piece;
    history.push({
      client: 0,
      input: { op: "get", key: "k" },
      call: 4 * i + 2,
      output: value,
      return: 4 * i + 3,
    });
  }
  const result = checkOperations(kvModel, history);
  assert.equal(result.verdict, "linearizable");
  const html = renderHtml(result, { model: kvModel });
  const perOperation = html.length / history.length;
  assert.ok(perOperation < 2_000, `${perOperation} characters per operation`);
  assert.ok(html.includes("…"));
});

Deno.test("renderHtml: the report of a 100,000-operation history is under 5 MB, with its overview, annotations and keys", () => {
  for (const bad of [false, true]) {
    const history = reportHistory({ bad });
    const result = checkOperations(kvModel, history);
    assert.equal(result.verdict, bad ? "not linearizable" : "linearizable");
    const html = renderHtml(result, { model: kvModel, title: "100k" });
    const bytes = new TextEncoder().encode(html).length;
    assert.ok(bytes < 5_000_000, `${bytes} bytes`);
    // The compact encoding: no padding for what is absent.
    const json = html.slice(html.indexOf('id="data">'), html.indexOf("</script>"));
    assert.ok(json.length > 1_000_000 && !json.includes("null"), "null padding in the data");
    assert.match(html, /<canvas id="ov"/, "the overview");
    assert.match(html, /<section id="notes"><h2>Annotations <small>2;/);
    assert.ok(html.includes("⚑ leader killed with SIGKILL</a>"));
    assert.ok(html.includes("⚑ node 2 restarted</a>"));
    const data = pageData(html);
    assert.deepEqual(
      data.p.map((p) => p.n).sort(),
      Array.from({ length: 12 }, (_, k) => `key "${k}"`).sort(),
    );
    for (let k = 0; k < 12; k++) assert.ok(html.includes(`key &quot;${k}&quot;: `));
    // Every operation is in the data, with its times.
    assert.equal(data.p.reduce((n, p) => n + p.c.length, 0), history.length);
    if (bad) {
      assert.equal(data.p[0].v, "bad", "the failing partition first");
      assert.match(html, /<section id="first-error">/);
    }
  }
});

Deno.test("renderHtml: the report of 100,000 operations on 5,000 keys is under 5 MB too", () => {
  const history = reportHistory({ keys: 5_000 });
  const result = checkOperations(kvModel, history);
  assert.equal(result.partitions.length, 5_000);
  const html = renderHtml(result, { model: kvModel, title: "5,000 keys" });
  const bytes = new TextEncoder().encode(html).length;
  assert.ok(bytes < 5_000_000, `${bytes} bytes`);
  const data = pageData(html);
  assert.equal(data.p.reduce((n, p) => n + p.c.length, 0), history.length);
  // The page lists the first 300 partitions and finds any other by its key.
  assert.ok(html.includes("5000: 0 not linearizable, 0 unknown, 5000 linearizable; the first 300"));
  assert.match(html, /<input id="find"/);
});

Deno.test("renderHtml: one wording with the CLI: failing first, then unknown with its reason, then linearizable", () => {
  // Key "a" is linearizable, "b" is not, and "c" is never checked: the search stops at "b".
  const history: KvOp[] = [
    { client: 0, input: { op: "put", key: "a", value: "1" }, call: 0, output: "", return: 1 },
    { client: 0, input: { op: "put", key: "b", value: "1" }, call: 2, output: "", return: 3 },
    { client: 1, input: { op: "get", key: "b" }, call: 4, output: "2", return: 5 },
    { client: 1, input: { op: "get", key: "c" }, call: 6, output: "", return: 7 },
  ];
  const result = checkOperations(kvModel, history);
  assert.deepEqual(result.partitions.map((p) => p.verdict), [
    "linearizable",
    "not linearizable",
    "unknown",
  ]);
  const html = renderHtml(result, { model: kvModel });
  const data = pageData(html);
  assert.deepEqual(data.p.map((p) => [p.n, p.v]), [
    ['key "b"', "bad"],
    ['key "c"', "unk"],
    ['key "a"', "ok"],
  ]);
  assert.equal(
    data.uw,
    "not checked: the search stops at the first partition that is not linearizable",
  );
  const list = html.slice(html.indexOf('<section id="parts">'));
  const order = [
    "key &quot;b&quot;: not linearizable",
    "key &quot;c&quot;: unknown",
    "key &quot;a&quot;: linearizable",
  ]
    .map((text) => list.indexOf(text));
  assert.ok(order.every((at, k) => at > 0 && (k === 0 || at > order[k - 1])), `${order}`);
  assert.ok(list.includes("not checked: the search stops at the first partition"));
  assert.ok(!html.includes("not decided"));
  assert.ok(!/Partition \d/.test(html), "partitions with keys are named by key");
});

Deno.test("renderHtml: the page's script parses, and writes history text only as text", () => {
  // Compiling (not running) it catches a syntax error no type check sees.
  new Function(REPORT_SCRIPT);
  assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(REPORT_SCRIPT));
});
