/**
 * A self-contained HTML report of a check: an overview of the whole run
 * (operations completed over time, latency, operations of unknown outcome,
 * failover gaps, annotations), zoom and pan into any time range, a list of
 * annotations that jumps to each, and per partition (named by its key) its
 * operations on a time line, the linearization found or, for a failing
 * partition, its longest partial linearizations and the operation that cannot
 * be placed, with the model's state at each step on hover. The page embeds
 * its data compactly (report_data.ts) and draws on canvases only what is in
 * view, so a history of 100,000 operations makes a page of a few megabytes
 * that opens at once.
 *
 * @module
 */
import type { CheckResult, Model, NondeterministicModel } from "./types.ts";
import { reportData } from "./report_data.ts";
import { REPORT_CSS } from "./report_style.ts";
import { REPORT_SCRIPT } from "./report_script.ts";
import { partitionName, partitionOrder, unknownReason } from "./wording.ts";

/**
 * Options for {@linkcode renderHtml}.
 *
 * @example
 * ```ts
 * import { kvModel, type RenderHtmlOptions } from "@distkit/distkit/checker";
 *
 * const options: RenderHtmlOptions<string, { op: "get" | "put" | "append"; key: string }, string | undefined> = {
 *   model: kvModel,
 *   title: "kv: 3 clients, 1 partition",
 * };
 * ```
 */
export interface RenderHtmlOptions<S = unknown, I = unknown, O = unknown> {
  /**
   * The model the history was checked against: used to describe operations
   * and to replay the linearizations, so the page can show the state after
   * each step. Without it, operations are shown as JSON and states are not
   * shown.
   */
  model?: Model<S, I, O> | NondeterministicModel<S, I, O>;
  /** The page's title. Default "Linearizability report". */
  title?: string;
}

/** Annotations listed in the page at most (the overview marks them all). */
const MAX_NOTES = 500;
/** Partitions listed in the page's summary at most. */
const MAX_LISTED = 300;

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const WORDS = { ok: "linearizable", bad: "not linearizable", unk: "unknown" } as const;

/**
 * Renders a check's result as one self-contained HTML page (inline CSS and
 * script, no network access). At the top, an overview of the whole run:
 * operations completed per time bucket, their latency, operations whose
 * outcome is unknown, spans where nothing completed (failover gaps) and
 * every annotation as a marker; drag on it (or use the buttons, the wheel)
 * to zoom the time lines into a range. Below, the failing partition's
 * explanation with a jump to the operation that cannot be placed, the list
 * of annotations (each jumps to its operation), and the partitions named by
 * key, failing first, then unknown, then linearizable: per partition, each
 * client's operations as bars from call to return (open operations, whose
 * outcome is unknown, striped), numbered in the order of the linearization
 * found or of the longest partial linearizations (a selector switches
 * between them); hovering shows an operation, its times, annotation and the
 * model's state before and after it. Every text taken from the history is
 * escaped, or written by the script as text.
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel, renderHtml } from "@distkit/distkit/checker";
 *
 * const history = [
 *   { client: 0, input: { op: "put" as const, key: "x", value: "1" }, call: 0, output: "", return: 10 },
 *   { client: 1, input: { op: "get" as const, key: "x" }, call: 12, output: "2", return: 15, annotation: "stale read?" },
 * ];
 * const html = renderHtml(checkOperations(kvModel, history), { model: kvModel, title: "x" });
 * html.includes('id="first-error"'); // true: the get cannot be placed
 * ```
 */
export function renderHtml<S, I, O>(
  result: CheckResult<I, O>,
  options: RenderHtmlOptions<S, I, O> = {},
): string {
  const title = options.title ?? "Linearizability report";
  const data = reportData(result, { model: options.model });
  const plain = result as CheckResult;
  const order = partitionOrder(plain);
  const total = result.partitions.reduce((n, p) => n + p.operations.length, 0);
  const count = (v: string) => result.partitions.filter((p) => p.verdict === v).length;
  const verdictClass = result.verdict === "linearizable"
    ? "ok"
    : result.verdict === "not linearizable"
    ? "bad"
    : "unk";

  // The failing partition: what cannot be placed, or the proof.
  const failing = data.p[0]?.v === "bad" ? data.p[0] : undefined;
  let failure = "";
  let jump = "";
  if (failing) {
    const p = result.partitions[order[0]];
    const target = failing.x ?? failing.w?.[0];
    const go = target === undefined ? "0" : `0 ${target}`;
    jump = `<a class="jump" href="#first-error" data-go="${go}">Jump to the first error</a>`;
    const what = target === undefined
      ? ""
      : ` <a data-go="${go}" href="#p0">${esc(opText(data.p[0], target))}</a> (client ${
        esc(data.cl[failing.pc[failing.c[target]]])
      }) ${p.explanation ? "is the first operation the proof names" : "cannot be placed"}.`;
    failure = `<section id="first-error"><h2>${
      esc(failing.n)
    } <span class="bad">not linearizable</span></h2><p>${
      p.explanation
        ? "Decided by inference from the values read:"
        : `The search found no order in which every operation of ${esc(failing.n)} is legal.`
    }${what}</p>${
      p.explanation
        ? `<ul class="why">${p.explanation.map((l) => `<li>${esc(l)}</li>`).join("")}</ul>`
        : ""
    }</section>`;
  }

  const notes = data.p.flatMap((p, pi) =>
    (p.a ?? []).map(([i, text]) => ({ pi, i, text, at: calls(p)[i] }))
  )
    .sort((a, b) => a.at - b.at);
  const noteList = `<section id="notes"><h2>Annotations <small>${notes.length}${
    notes.length > MAX_NOTES ? `, the first ${MAX_NOTES} listed` : ""
  }; click one to zoom to it</small></h2>${
    notes.length === 0
      ? "<p><small>None in this history.</small></p>"
      : `<ol>${
        notes.slice(0, MAX_NOTES).map((n) =>
          `<li><a href="#p${n.pi}" data-go="${n.pi} ${n.i}">⚑ ${esc(n.text)}</a> <small>${
            esc(data.p[n.pi].n)
          }, at ${formatTime(n.at / data.u + data.t0)}</small></li>`
        ).join("")
      }</ol>`
  }</section>`;

  const listed = order.slice(0, MAX_LISTED).map((k, rank) => {
    const p = result.partitions[k];
    const cls = data.p[rank].v;
    const why = unknownReason(plain, k);
    return `<li><a href="#p${rank}" data-go="${rank}"><span class="${cls}">${
      esc(partitionName(plain, k))
    }: ${WORDS[cls]}</span></a> <small>${p.operations.length} operations${
      why ? `; ${esc(why)}` : ""
    }</small></li>`;
  }).join("");
  const parts = `<section id="parts"><h2>Partitions <small>${result.partitions.length}: ${
    count("not linearizable")
  } not linearizable, ${count("unknown")} unknown, ${count("linearizable")} linearizable${
    order.length > MAX_LISTED ? `; the first ${MAX_LISTED} listed` : ""
  }</small> <input id="find" placeholder="find a key or partition" aria-label="find a partition by its key or number"></h2><ol>${listed}</ol></section>`;

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${esc(title)}</title>
<style>${REPORT_CSS}</style></head><body>
<header><h1>${esc(title)}</h1><span class="${verdictClass} verdict">${
    esc(result.verdict)
  }</span><span>${total} operations, ${result.partitions.length} partition(s), checked in ${
    result.elapsedMs.toFixed(1)
  } ms</span>${jump}</header>
<div id="overview"><div class="tools"><b>Overview</b><button id="whole">whole run</button><button id="zin">zoom in</button><button id="zout">zoom out</button><button id="left">←</button><button id="right">→</button><span class="span" id="span"></span><span class="span" id="ovstats"></span><span class="hint">drag on the overview to zoom to a range; wheel there to zoom; drag a time line to pan, Ctrl+wheel to zoom it; keys + − ← → 0</span></div>
<canvas id="ov" aria-label="overview of the whole run"></canvas></div>
<p class="legend"><span><span class="sw"></span>linearized (number: its place)</span><span><span class="sw out"></span>not in the sequence shown</span><span><span class="sw open"></span>open: outcome unknown</span><span><span class="sw illegal"></span>cannot be placed</span><span><span class="sw witness"></span>named by the proof</span><span><span class="sw note"></span>annotation</span><span><span class="sw gap"></span>overview: nothing completed (failover gap)</span><span style="color:#1a5fb4">— overview: max latency</span></p>
${failure ? `<div class="cols">${failure}${noteList}</div>` : `<div class="cols">${noteList}</div>`}
${parts}
<div id="timelines"></div>
<div id="tip" hidden></div>
<script type="application/json" id="data">${scriptJson(data)}</script>
<script>${REPORT_SCRIPT}</script>
</body></html>
`;
}

/** A partition's encoded call times, decoded once (annotations look them up). */
const decodedCalls = new WeakMap<object, number[]>();
function calls(p: { t: number[] }): number[] {
  let out = decodedCalls.get(p);
  if (out === undefined) {
    let t = 0;
    out = p.t.map((d) => t += d);
    decodedCalls.set(p, out);
  }
  return out;
}

function opText(p: { h: number[]; hs: string[]; d: (string | number)[] }, i: number): string {
  const d = p.d[i];
  return p.hs[p.h[i]] + (typeof d === "number" ? p.d[d] : d);
}

function formatTime(t: number): string {
  return String(Math.round(t * 1000) / 1000);
}
