/**
 * A self-contained HTML report of a check: each partition's operations on a
 * time line (one row per client), the linearization found or, for a failing
 * partition, its longest partial linearizations and the operation that cannot
 * be placed, with the model's state at each step on hover.
 *
 * @module
 */
import type { CheckResult, Model, NondeterministicModel, Operation } from "./types.ts";

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

/** At most this many partial linearizations are offered per failing partition. */
const MAX_SEQUENCES = 8;
/** State descriptions are cut to this many characters. */
const MAX_STATE = 500;
/** Roughly how many characters of descriptions and states a page holds before they are cut shorter. */
const PAGE_TEXT_BUDGET = 4_000_000;
/** Operation descriptions are cut to this many characters (values can be long). */
const MAX_OPERATION = 300;

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

function show(value: unknown): string {
  if (value === undefined) return "?";
  try {
    const seen = new Set<unknown>();
    const text = JSON.stringify(value, (_k, v) => {
      if (typeof v === "bigint") return `${v}n`;
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[circular]";
        seen.add(v);
      }
      return v;
    });
    return text ?? String(value);
  } catch {
    return String(value);
  }
}

function cutTo(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) + "…" : text;
}

interface Sequence {
  /** Operation indexes, in order. */
  order: number[];
  /** The state before the first step, then after each step (empty without a model). */
  states: string[];
}

/** Replays `order` through the model; returns the state descriptions. */
function replay<S, I, O>(
  model: Model<S, I, O> | NondeterministicModel<S, I, O> | undefined,
  ops: Operation<I, O>[],
  order: number[],
  extra: number | undefined,
  stateMax: number,
): { states: string[]; extraFits?: boolean } {
  if (model === undefined) return { states: [] };
  const describe = (s: S) => model.describeState ? model.describeState(s) : show(s);
  const cut = (text: string) => cutTo(text, stateMax);
  try {
    if ("nondeterministic" in model && model.nondeterministic) {
      let set = model.init();
      const text = (xs: S[]) => cut(`{${xs.map(describe).join(" | ")}}`);
      const states = [text(set)];
      const step = (i: number) => set.flatMap((s) => model.step(s, ops[i].input, outputOf(ops[i])));
      for (const i of order) {
        set = step(i);
        states.push(text(set));
      }
      return { states, extraFits: extra === undefined ? undefined : step(extra).length > 0 };
    }
    const m = model as Model<S, I, O>;
    let state: S | undefined = m.init();
    const states = [cut(describe(state))];
    for (const i of order) {
      state = state === undefined ? undefined : m.step(state, ops[i].input, outputOf(ops[i]));
      states.push(state === undefined ? "✗ (the model rejects this step)" : cut(describe(state)));
    }
    const extraFits = extra === undefined || state === undefined
      ? undefined
      : m.step(state, ops[extra].input, outputOf(ops[extra])) !== undefined;
    return { states, extraFits };
  } catch (e) {
    return { states: [`(the model threw: ${e instanceof Error ? e.message : String(e)})`] };
  }
}

function outputOf<I, O>(op: Operation<I, O>): O {
  return (op.unknown ? undefined : op.output) as O;
}

/**
 * Renders a check's result as one self-contained HTML page (inline CSS and
 * script, no network access): per partition, each client's operations as
 * bars from call to return (open operations, whose outcome is unknown, run
 * striped to the end), numbered in the order of the linearization found or,
 * for the failing partition, of its longest partial linearizations (a
 * selector switches between them), with the operation that cannot be placed
 * outlined in red. Hovering an operation shows its description, times,
 * annotation and the model's state before and after it. A link jumps to the
 * first error. Every text taken from the history is escaped.
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
  const { model } = options;
  const title = options.title ?? "Linearizability report";
  const describeOp = (op: Operation<I, O>) => {
    const output = outputOf(op);
    try {
      if (model?.describeOperation) return model.describeOperation(op.input, output);
    } catch { /* fall back to JSON */ }
    return `${show(op.input)} → ${show(output)}`;
  };
  // Long histories get shorter texts, so the page stays one a browser can open.
  const total = result.partitions.reduce((n, p) => n + p.operations.length, 0);
  const share = Math.floor(PAGE_TEXT_BUDGET / Math.max(1, total) / 2);
  const limits = {
    state: Math.max(60, Math.min(MAX_STATE, share)),
    operation: Math.max(60, Math.min(MAX_OPERATION, share)),
  };
  const failing = result.partitions.findIndex((p) => p.verdict === "not linearizable");
  const data: unknown[] = [];
  const sections: string[] = [];
  const nav: string[] = [];
  result.partitions.forEach((p, pi) => {
    const ops = p.operations;
    // The sequences to show: the linearization, or the longest partial ones.
    let sequences: number[][] = [];
    if (p.linearization) sequences = [p.linearization];
    else if (p.partial) {
      const seen = new Set<string>();
      for (const seq of [...p.partial].sort((a, b) => b.length - a.length)) {
        const key = seq.join(",");
        if (seq.length === 0 || seen.has(key)) continue;
        seen.add(key);
        sequences.push(seq);
        if (sequences.length === MAX_SEQUENCES) break;
      }
    }
    const illegal = p.verdict === "not linearizable" ? p.firstIllegal : undefined;
    let illegalFits: boolean | undefined;
    const seqData: Sequence[] = sequences.map((order, k) => {
      const r = replay(model, ops, order, k === 0 ? illegal : undefined, limits.state);
      if (k === 0) illegalFits = r.extraFits;
      return { order, states: r.states };
    });
    const descriptions = ops.map((o) => cutTo(describeOp(o), limits.operation));
    data.push({
      d: descriptions,
      c: ops.map((o) => String(o.client)),
      t: ops.map((o) => [o.call, o.unknown ? null : o.return]),
      a: ops.map((o) => o.annotation ?? null),
      s: seqData,
      x: illegal ?? null,
    });

    // Time axis: event order (distinct times), open operations run to the end.
    const times = [
      ...new Set(
        ops.flatMap((o) => o.unknown || !isFinite(o.return) ? [o.call] : [o.call, o.return]),
      ),
    ].sort((a, b) => a - b);
    const rank = new Map(times.map((t, k) => [t, k]));
    const slots = times.length + 1;
    const x = (t: number) => ((rank.get(t)! + 0.5) / slots) * 100;
    const open = (o: Operation<I, O>) => o.unknown === true || !isFinite(o.return);

    // Rows: one per client (in order of first call), split into lanes where its operations overlap.
    const byCall = ops.map((_, i) => i).sort((a, b) => ops[a].call - ops[b].call || a - b);
    const lanes = new Map<string, number[][]>();
    const laneEnd = new Map<number[], number>();
    for (const i of byCall) {
      const client = String(ops[i].client);
      let list = lanes.get(client);
      if (!list) lanes.set(client, list = []);
      let lane = list.find((l) => laneEnd.get(l)! < ops[i].call);
      if (!lane) list.push(lane = []);
      lane.push(i);
      laneEnd.set(lane, open(ops[i]) ? Infinity : ops[i].return);
    }
    const witnesses = new Set(p.witnesses ?? []);
    const position = new Map((sequences[0] ?? []).map((op, k) => [op, k + 1]));
    const rows: string[] = [];
    for (const [client, list] of lanes) {
      list.forEach((lane, li) => {
        const bars = lane.map((i) => {
          const o = ops[i];
          const left = x(o.call);
          const right = open(o) ? 100 : x(o.return);
          const k = position.get(i);
          const cls = ["op", k ? "in" : "out"];
          if (open(o)) cls.push("open");
          if (i === illegal) cls.push("illegal");
          else if (witnesses.has(i)) cls.push("witness");
          if (o.annotation) cls.push("annotated");
          return `<div class="${cls.join(" ")}" data-p="${pi}" data-i="${i}"${
            i === illegal ? ' id="first-error"' : ""
          } style="left:${left.toFixed(3)}%;width:${(right - left).toFixed(3)}%"><b>${k ?? ""}</b>${
            esc(descriptions[i])
          }${open(o) ? '<i class="q">→ ?</i>' : ""}</div>`;
        }).join("");
        rows.push(
          `<div class="row"><div class="who">${
            li === 0 ? esc(client) : ""
          }</div><div class="track">${bars}</div></div>`,
        );
      });
    }
    // Annotations: a dashed line at the call, labelled as far as the next one leaves room.
    const annotated = ops.map((_, i) => i).filter((i) => ops[i].annotation)
      .sort((a, b) => ops[a].call - ops[b].call);
    const notes = annotated.map((i, k) => {
      const room = k + 1 < annotated.length
        ? ((x(ops[annotated[k + 1]].call) - x(ops[i].call)) / 100) * slots * 36 - 4
        : 300;
      return `<div class="note" style="left:calc(60px + (100% - 60px) * ${
        (x(ops[i].call) / 100).toFixed(5)
      })" data-p="${pi}" data-i="${i}"><span style="max-width:${
        Math.max(14, Math.floor(room))
      }px">⚑ ${esc(ops[i].annotation!)}</span></div>`;
    }).join("");

    const verdictClass = p.verdict === "linearizable"
      ? "ok"
      : p.verdict === "not linearizable"
      ? "bad"
      : "unk";
    const verdictText = p.verdict === "unknown" && failing >= 0 ? "not decided" : p.verdict;
    let info = "";
    if (p.linearization) {
      info = `<p>Linearization found: the numbers on the bars give its order.</p>`;
    } else if (p.verdict === "not linearizable" && p.explanation) {
      info = `<p>Not linearizable, decided by inference from the values read${
        illegal !== undefined ? ` (<a href="#first-error">the first operation named</a>)` : ""
      }:</p><ul class="why">${p.explanation.map((line) => `<li>${esc(line)}</li>`).join("")}</ul>`;
    } else if (p.verdict === "not linearizable") {
      const longest = sequences[0]?.length ?? 0;
      info = `<p>Not linearizable. ${
        sequences.length > 0
          ? `Longest partial linearization: ${longest} of ${ops.length} operations${
            sequences.length > 1 ? ` (${sequences.length} shown; choose one below)` : ""
          }. `
          : ""
      }${
        illegal !== undefined
          ? `<a href="#first-error">${esc(descriptions[illegal])}</a> (client ${
            esc(String(ops[illegal].client))
          }) cannot be placed${
            illegalFits === false ? ": its output is impossible in the state reached" : ""
          }${
            seqData[0]?.states.length
              ? ` (<span class="st">${esc(seqData[0].states[seqData[0].states.length - 1])}</span>)`
              : ""
          }.`
          : ""
      }</p>`;
      if (sequences.length > 1) {
        info += `<p class="pick">${
          sequences.map((s, k) =>
            `<button data-p="${pi}" data-k="${k}"${k === 0 ? ' class="on"' : ""}>#${
              k + 1
            } (${s.length})</button>`
          ).join("")
        }</p>`;
      }
    } else if (failing >= 0) {
      info =
        `<p>Not decided: the search stopped at the first partition that is not linearizable.</p>`;
    } else {
      const budget = result.gaveUp === "states"
        ? "memory budget (maxStates)"
        : result.gaveUp === "steps"
        ? "step budget"
        : "time budget";
      const longest = sequences[0]?.length ?? 0;
      info = `<p>Unknown: the ${budget} ran out before this partition was decided${
        longest > 0
          ? `; the furthest the search got: ${longest} of ${ops.length} operations linearized (the numbers on the bars)`
          : ""
      }.</p>`;
    }
    const steps = seqData[0]
      ? `<details${
        pi === failing ? " open" : ""
      }><summary>Steps</summary><ol class="steps" start="0" id="steps-${pi}">${
        stepsHtml(seqData[0], descriptions)
      }</ol></details>`
      : "";
    nav.push(
      `<a class="${verdictClass}" href="#p${pi}">${pi}: ${esc(verdictText)} (${ops.length})</a>`,
    );
    sections.push(
      `<section id="p${pi}"${
        pi === failing && illegal === undefined ? ' class="err-target"' : ""
      }>` +
        `<h2>Partition ${pi} <span class="${verdictClass}">${
          esc(verdictText)
        }</span> <small>${ops.length} operations</small></h2>` +
        info +
        `<div class="scroll"><div class="timeline" style="min-width:${
          60 + slots * 36
        }px"><div class="axis">client</div>${notes}${rows.join("")}</div></div>${steps}</section>`,
    );
  });

  const errorLink = failing < 0
    ? ""
    : `<a class="jump" href="${
      result.partitions[failing].firstIllegal !== undefined ? "#first-error" : `#p${failing}`
    }">Jump to first error</a>`;
  const verdictClass = result.verdict === "linearizable"
    ? "ok"
    : result.verdict === "not linearizable"
    ? "bad"
    : "unk";
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>${CSS}</style></head><body>
<header><h1>${esc(title)}</h1><span class="${verdictClass} verdict">${
    esc(result.verdict)
  }</span><span>${result.partitions.length} partition(s), checked in ${
    result.elapsedMs.toFixed(1)
  } ms</span>${errorLink}</header>
<nav>${nav.join("")}</nav>
<p class="legend"><span class="op in"><b>3</b>linearized (3rd)</span><span class="op out">not in the sequence shown</span><span class="op open">open: outcome unknown<i class="q">→ ?</i></span><span class="op illegal">cannot be placed</span><span>⚑ annotation</span></p>
${sections.join("\n")}
<div id="tip" hidden></div>
<script type="application/json" id="data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}

function stepsHtml(seq: Sequence, descriptions: string[]): string {
  const state = (k: number) =>
    seq.states[k] === undefined ? "" : ` <span class="st">⇒ ${esc(seq.states[k])}</span>`;
  const init = seq.states.length > 0 ? `<li class="init">initial state${state(0)}</li>` : "";
  return init +
    seq.order.map((i, k) => `<li data-i="${i}">${esc(descriptions[i])}${state(k + 1)}</li>`).join(
      "",
    );
}

const CSS = `
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:16px;align-items:baseline;padding:10px 16px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;z-index:3}
h1{font-size:18px;margin:0}h2{font-size:15px;margin:0 0 4px}small{color:#777;font-weight:normal}
.verdict{font-weight:bold;padding:2px 8px;border-radius:4px}
.ok{color:#176b2c}.bad{color:#b00020}.unk{color:#8a6d00}
.verdict.ok{background:#e3f4e6}.verdict.bad{background:#fde2e4}.verdict.unk{background:#fff3c4}
.jump{margin-left:auto;background:#b00020;color:#fff;padding:4px 10px;border-radius:4px;text-decoration:none}
nav{padding:6px 16px;display:flex;flex-wrap:wrap;gap:10px}nav a{text-decoration:none}
.legend{padding:0 16px;display:flex;gap:12px;flex-wrap:wrap}.legend .op{position:static;display:inline-block;padding:0 6px}
section{background:#fff;margin:10px 16px;padding:10px;border:1px solid #ddd;border-radius:6px}
.scroll{overflow-x:auto}.timeline{position:relative;padding-top:18px}
.axis{position:sticky;left:0;width:60px;height:0;font-size:11px;color:#888;z-index:3;transform:translateY(-16px)}
.row{display:flex;min-height:22px;border-top:1px solid #f0f0f0}
.who{width:60px;flex:none;color:#555;padding-top:3px;overflow:hidden;text-overflow:ellipsis;position:sticky;left:0;background:#fff;z-index:3}
.track{position:relative;flex:1}
.op{position:absolute;top:2px;height:17px;box-sizing:border-box;border:1px solid #5a8f66;background:#cfe9d5;border-radius:3px;
 white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:11px;padding:0 3px;cursor:default;min-width:4px}
.op b{margin-right:4px;color:#0b4f1f}
.op.out{background:#eee;border-color:#bbb;color:#777}
.op.open{border-style:dashed;border-right:none;border-radius:3px 0 0 3px;background-image:repeating-linear-gradient(135deg,transparent 0 6px,rgba(0,0,0,.08) 6px 12px)}
.op .q{font-style:normal;font-weight:bold;margin-left:6px;color:#8a6d00}
.op.illegal{background:#fde2e4;border:2px solid #b00020;color:#b00020;z-index:1}
.op.annotated{box-shadow:inset 0 -3px 0 #e09b00}
.op.hl,.steps li.hl{outline:2px solid #1a5fb4}
.flash{animation:flash 1s 3}@keyframes flash{50%{outline:3px solid #b00020;outline-offset:2px}}
.note{position:absolute;top:0;bottom:0;border-left:1px dashed #e09b00;z-index:2;pointer-events:none}
.note span{position:absolute;top:0;left:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:11px;color:#8a5a00;background:#fff8e6;padding:0 2px;pointer-events:auto}
.op.witness{outline:2px dashed #c01c28}.why li{margin:2px 0}
.pick button{margin-right:4px}.pick button.on{font-weight:bold;background:#cfe9d5}
.steps{font-family:ui-monospace,monospace;font-size:12px;max-height:320px;overflow:auto}
.steps .st{color:#555;word-break:break-all}.steps .init{list-style:none;color:#555}
#tip{position:fixed;z-index:9;max-width:520px;background:#222;color:#fff;padding:6px 8px;border-radius:4px;font-size:12px;pointer-events:none;word-break:break-all;white-space:pre-wrap}
`;

// Plain ES5-ish script; reads the JSON data and only ever writes text (never HTML) from it.
const SCRIPT = `
(function(){
var data=JSON.parse(document.getElementById("data").textContent);
var chosen=data.map(function(){return 0;});
var tip=document.getElementById("tip");
function seqOf(p){return data[p].s[chosen[p]];}
function tipText(p,i){
  var d=data[p],t=d.t[i],lines=[d.d[i],"client "+d.c[i]+", call "+t[0]+", "+(t[1]===null?"open (outcome unknown)":"return "+t[1])];
  if(d.a[i]!==null)lines.push("\\u2691 "+d.a[i]);
  var s=seqOf(p);
  if(s){var k=s.order.indexOf(i);
    if(k>=0){lines.push("step "+(k+1)+" of "+s.order.length);
      if(s.states.length){lines.push("before: "+s.states[k]);lines.push("after:  "+s.states[k+1]);}}
    else{lines.push("not in this sequence");
      if(d.x===i&&s.states.length)lines.push("cannot be placed; state reached: "+s.states[s.states.length-1]);}}
  return lines.join("\\n");}
document.addEventListener("mouseover",function(e){
  var el=e.target.closest&&e.target.closest(".op[data-p],.steps li[data-i],.note[data-p]");
  if(!el){tip.hidden=true;return;}
  var p=+(el.dataset.p||el.closest("section").id.slice(1)),i=+el.dataset.i;
  tip.textContent=tipText(p,i);tip.hidden=false;
  document.querySelectorAll(".hl").forEach(function(n){n.classList.remove("hl");});
  var bar=document.querySelector('.op[data-p="'+p+'"][data-i="'+i+'"]');if(bar)bar.classList.add("hl");});
document.addEventListener("mousemove",function(e){
  var w=tip.offsetWidth,h=tip.offsetHeight;
  tip.style.left=Math.min(e.clientX+14,innerWidth-w-4)+"px";tip.style.top=(e.clientY+h+20>innerHeight?e.clientY-h-10:e.clientY+14)+"px";});
document.addEventListener("click",function(e){
  var b=e.target.closest&&e.target.closest(".pick button");
  if(b){var p=+b.dataset.p;chosen[p]=+b.dataset.k;show(p);
    b.parentNode.querySelectorAll("button").forEach(function(x){x.classList.toggle("on",x===b);});return;}
  var a=e.target.closest&&e.target.closest('a[href="#first-error"],a.jump');
  if(a){var t=document.querySelector(a.getAttribute("href"));
    if(t){e.preventDefault();t.scrollIntoView({block:"center"});t.classList.remove("flash");void t.offsetWidth;t.classList.add("flash");}}});
function show(p){
  var s=seqOf(p),pos={};s.order.forEach(function(i,k){pos[i]=k+1;});
  document.querySelectorAll('.op[data-p="'+p+'"]').forEach(function(el){
    var k=pos[el.dataset.i];el.firstChild.textContent=k?k:"";el.classList.toggle("in",!!k);el.classList.toggle("out",!k);});
  var ol=document.getElementById("steps-"+p);if(!ol)return;ol.textContent="";
  function li(text,state,i){var n=document.createElement("li");n.textContent=text;
    if(state!==undefined){var st=document.createElement("span");st.className="st";st.textContent=" \\u21d2 "+state;n.appendChild(st);}
    if(i===undefined)n.className="init";else n.dataset.i=i;ol.appendChild(n);}
  if(s.states.length)li("initial state",s.states[0]);
  s.order.forEach(function(i,k){li(data[p].d[i],s.states[k+1],i);});}
})();
`;
