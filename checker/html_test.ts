import assert from "node:assert/strict";
import { checkOperations } from "./check.ts";
import { renderHtml } from "./html.ts";
import { type CasInput, casRegisterModel, type KvInput, kvModel } from "./models.ts";
import type { Model, NondeterministicModel, Operation } from "./types.ts";

type KvOp = Operation<KvInput, string | undefined>;

const badHistory: KvOp[] = [
  { client: 0, input: { op: "put", key: "x", value: "1" }, call: 0, output: "", return: 10 },
  { client: 1, input: { op: "append", key: "x", value: "2" }, call: 2, output: "", return: 4 },
  { client: 1, input: { op: "get", key: "x" }, call: 12, output: "21", return: 15 },
  { client: 2, input: { op: "get", key: "y" }, call: 1, output: "", return: 3 },
];

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  ).replace(/'/g, "&#39;");
}

Deno.test("renderHtml shows every operation", () => {
  const result = checkOperations(kvModel, badHistory);
  const html = renderHtml(result, { model: kvModel });
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  for (const op of badHistory) {
    assert.ok(
      html.includes(escapeHtml(kvModel.describeOperation!(op.input, op.output))),
      `missing ${JSON.stringify(op.input)}`,
    );
  }
});

Deno.test("renderHtml marks the first error of a failing history", () => {
  const result = checkOperations(kvModel, badHistory);
  assert.equal(result.verdict, "not linearizable");
  const html = renderHtml(result, { model: kvModel });
  const marked = html.match(/<div class="[^"]*\billegal\b[^"]*"[^>]*id="first-error"[^>]*>/g);
  assert.equal(marked?.length, 1);
  const failing = result.partitions.find((p) => p.verdict === "not linearizable")!;
  assert.ok(marked![0].includes(`data-i="${failing.firstIllegal}"`));
  assert.match(html, /<a class="jump" href="#first-error">/);
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
  assert.match(html, /class="op in open annotated"/);
  assert.ok(html.includes("leader killed here"));
  // The states after each step, from the model: null, 1, 2, 2.
  assert.match(html, /initial state <span class="st">⇒ null/);
  assert.ok(html.includes("⇒ 2</span>"));
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
  const plain = renderHtml(result);
  assert.ok(plain.includes("5 → null"));
  const ndModel: NondeterministicModel<number, number | null, number | null> = {
    nondeterministic: true,
    init: () => [0],
    step: (s, w, r) => w !== null ? [s, w] : r === s ? [s] : [],
  };
  const nd = renderHtml(result, { model: ndModel });
  assert.ok(nd.includes("{0 | 5}"));
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
