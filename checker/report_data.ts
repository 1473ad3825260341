/**
 * The data an HTML report embeds, encoded compactly so a history of 100,000
 * operations makes a page of a few megabytes: columns of numbers rather than
 * an object per operation, times as integer deltas, descriptions split into
 * a per-partition table of heads (`get("k"`) and short tails, states only
 * within a character budget, and no padding for what is absent.
 *
 * @module
 */
import type { CheckResult, Model, NondeterministicModel, Operation } from "./types.ts";
import { partitionName, partitionOrder, unknownReason } from "./wording.ts";

/** At most this many partial linearizations are offered per failing partition. */
const MAX_SEQUENCES = 8;
/** States are cut to this many characters. */
const MAX_STATE = 500;
/** Descriptions are cut to this many characters (values can be long). */
const MAX_OPERATION = 300;
/** The shortest cut of a description or a state. */
const MIN_TEXT = 14;
/** Characters of description tails a page holds in all, before they are cut shorter. */
const DESCRIPTION_BUDGET = 1_600_000;
/** Characters of states a page holds in all. */
const STATE_BUDGET = 600_000;
/** Heads (the text before the first "," or ")") longer than this are not tabled. */
const MAX_HEAD = 48;
/** Time resolution: the run's span is encoded in about this many steps (at least). */
const TIME_STEPS = 1_000_000;

/**
 * One sequence of a partition: operation indexes in order (delta-encoded)
 * and the model's states from step `f` on (`0`: the same as the one before).
 */
export interface SequenceData {
  /** Operation indexes, each as the difference from the one before (the first from 0). */
  o: number[];
  /** The index in the state list (0: the initial state) of the first state given. */
  f: number;
  /** States from `f` on; `0` repeats the state before. Empty without a model or a budget. */
  st: (string | 0)[];
}

/** One partition of the report. */
export interface PartitionData {
  /** Its name (`key "x"` or `partition 3`). */
  n: string;
  /** Its verdict: `ok`, `bad` (not linearizable) or `unk` (unknown). */
  v: "ok" | "bad" | "unk";
  /** How the verdict was reached (`s`: search, `i`: inference), when known. */
  m?: "s" | "i";
  /** The partition's clients, as indexes into {@linkcode ReportData.cl}. */
  pc: number[];
  /** Each operation's client, as an index into `pc`. */
  c: number[];
  /** Call times, encoded, each as the difference from the one before. */
  t: number[];
  /** Durations (return minus call), encoded; -1 for an open operation (outcome unknown). */
  r: number[];
  /** Description heads, as indexes into `hs`. */
  h: number[];
  /** The heads. */
  hs: string[];
  /** Description tails; a number is the index of an earlier operation with the same tail. */
  d: (string | number)[];
  /** Annotations: [operation index, text] (absent: none). */
  a?: [number, string][];
  /** The linearization, or the longest partial ones, longest first (absent: none). */
  s?: SequenceData[];
  /** The operation that cannot be placed (failing partition only). */
  x?: number;
  /** The operations an inference proof names. */
  w?: number[];
  /** The proof, in words. */
  e?: string[];
}

/** Everything the page shows, as embedded in it. */
export interface ReportData {
  /** The overall verdict. */
  verdict: string;
  /** Which budget ran out, for an unknown verdict. */
  gaveUp?: string;
  /** Time unit: an encoded time divided by `u`, plus `t0`, is the history's time. */
  u: number;
  /** The origin of encoded times, in the history's units. */
  t0: number;
  /** The clients' names. */
  cl: string[];
  /** The partitions, failing first, then unknown, then linearizable. */
  p: PartitionData[];
  /** Whether states were left out of some sequences to keep the page small. */
  cut: boolean;
  /** Why the partitions whose verdict is `unk` are unknown (the same for all of them). */
  uw?: string;
}

/** Options of {@linkcode reportData}. */
export interface ReportDataOptions<S, I, O> {
  /** The model the history was checked against (descriptions and states). */
  model?: Model<S, I, O> | NondeterministicModel<S, I, O>;
}

/** A value as short JSON, whatever it is (bigints, maps, sets, cycles). */
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

/**
 * `text` cut to at most `max` characters (plus the "…"), keeping its start
 * and its end: a read of appended values shows the latest ones last.
 */
function cutMiddle(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.ceil(max * 0.4);
  return `${text.slice(0, head)}…${text.slice(text.length - (max - head))}`;
}

function outputOf<I, O>(op: Operation<I, O>): O {
  return (op.unknown ? undefined : op.output) as O;
}

/** The model's states along `order` (the initial one first); empty without a model. */
function replay<S, I, O>(
  model: Model<S, I, O> | NondeterministicModel<S, I, O> | undefined,
  ops: Operation<I, O>[],
  order: number[],
): string[] {
  if (model === undefined) return [];
  const describe = (s: S) => model.describeState ? model.describeState(s) : show(s);
  try {
    if ("nondeterministic" in model && model.nondeterministic) {
      let set = model.init();
      const text = (xs: S[]) => `{${xs.map(describe).join(" | ")}}`;
      const states = [text(set)];
      for (const i of order) {
        set = set.flatMap((s) => model.step(s, ops[i].input, outputOf(ops[i])));
        states.push(text(set));
      }
      return states;
    }
    const m = model as Model<S, I, O>;
    let state: S | undefined = m.init();
    const states = [describe(state)];
    for (const i of order) {
      state = state === undefined ? undefined : m.step(state, ops[i].input, outputOf(ops[i]));
      states.push(state === undefined ? "✗ (the model rejects this step)" : describe(state));
    }
    return states;
  } catch (e) {
    return [`(the model threw: ${e instanceof Error ? e.message : String(e)})`];
  }
}

/** The sequences to show: the linearization, or the longest distinct partial ones. */
function sequencesOf(p: CheckResult["partitions"][number]): number[][] {
  if (p.linearization) return [p.linearization];
  const out: number[][] = [];
  const seen = new Set<string>();
  for (const seq of [...(p.partial ?? [])].sort((a, b) => b.length - a.length)) {
    const key = seq.join(",");
    if (seq.length === 0 || seen.has(key)) continue;
    seen.add(key);
    out.push(seq);
    if (out.length === MAX_SEQUENCES) break;
  }
  return out;
}

/** Integer time scale: 1 for integer times, else a power of ten giving TIME_STEPS over the span. */
function timeUnit(times: number[]): number {
  if (times.every(Number.isInteger)) return 1;
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of times) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  const span = hi > lo ? hi - lo : 1;
  return 10 ** Math.max(0, Math.ceil(Math.log10(TIME_STEPS / span)));
}

/**
 * Encodes a check's result for the report page (see {@linkcode ReportData}).
 * Every text is kept as text: the page writes it with `textContent` or onto
 * a canvas, never as HTML.
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel } from "@distkit/distkit/checker";
 * import { reportData } from "./report_data.ts";
 *
 * const result = checkOperations(kvModel, [
 *   { client: 0, input: { op: "put", key: "x", value: "1" }, call: 0, output: "", return: 4 },
 * ]);
 * reportData(result, { model: kvModel }).p[0].n; // 'key "x"'
 * ```
 */
export function reportData<S, I, O>(
  result: CheckResult<I, O>,
  options: ReportDataOptions<S, I, O> = {},
): ReportData {
  const { model } = options;
  const describeOp = (op: Operation<I, O>) => {
    const output = outputOf(op);
    try {
      if (model?.describeOperation) return model.describeOperation(op.input, output);
    } catch { /* fall back to JSON */ }
    return `${show(op.input)} → ${show(output)}`;
  };
  const all = result.partitions.flatMap((p) => p.operations);
  const total = Math.max(1, all.length);
  const tailMax = Math.max(
    MIN_TEXT,
    Math.min(MAX_OPERATION, Math.floor(DESCRIPTION_BUDGET / total)),
  );
  const finite = all.flatMap((o) =>
    o.unknown || !Number.isFinite(o.return) ? [o.call] : [o.call, o.return]
  ).filter(Number.isFinite);
  const u = timeUnit(finite);
  const t0 = finite.length > 0 ? least(finite) : 0;
  const enc = (t: number) => Math.round((t - t0) * u);

  const clients = new Map<string, number>();
  const clientIndex = (c: number | string) => {
    const name = String(c);
    let k = clients.get(name);
    if (k === undefined) clients.set(name, k = clients.size);
    return k;
  };

  // States: all of them while they fit the budget, else the failing
  // partition's last steps only (where the error is).
  const order = partitionOrder(result as CheckResult);
  const sequences = order.map((k) => sequencesOf(result.partitions[k]));
  const stateCount = sequences.flat().reduce((n, s) => n + s.length + 1, 0);
  const stateMax = Math.max(
    MIN_TEXT,
    Math.min(MAX_STATE, Math.floor(STATE_BUDGET / Math.max(1, stateCount))),
  );
  const everyState = model !== undefined && STATE_BUDGET / Math.max(1, stateCount) >= 40;
  let cut = model !== undefined && !everyState;

  const parts = order.map((k, rank): PartitionData => {
    const p = result.partitions[k];
    const ops = p.operations;
    const heads = new Map<string, number>();
    const tails = new Map<string, number>();
    const data: PartitionData = {
      n: partitionName(result as CheckResult, k),
      v: p.verdict === "linearizable" ? "ok" : p.verdict === "not linearizable" ? "bad" : "unk",
      pc: [],
      c: [],
      t: [],
      r: [],
      h: [],
      hs: [],
      d: [],
    };
    const notes: [number, string][] = [];
    if (p.method) data.m = p.method === "search" ? "s" : "i";
    const local = new Map<number, number>();
    const named = new Set<number>([
      ...(p.witnesses ?? []),
      ...(p.firstIllegal === undefined ? [] : [p.firstIllegal]),
    ]);
    let last = 0;
    ops.forEach((o, i) => {
      const global = clientIndex(o.client);
      let c = local.get(global);
      if (c === undefined) {
        local.set(global, c = data.pc.length);
        data.pc.push(global);
      }
      data.c.push(c);
      const call = enc(o.call);
      data.t.push(call - last);
      last = call;
      data.r.push(o.unknown || !Number.isFinite(o.return) ? -1 : Math.max(0, enc(o.return) - call));
      const text = describeOp(o);
      let split = text.search(/[,)]/);
      if (split < 0 || split > MAX_HEAD) split = 0;
      const head = text.slice(0, split);
      let h = heads.get(head);
      if (h === undefined) {
        heads.set(head, h = data.hs.length);
        data.hs.push(head);
      }
      data.h.push(h);
      const tail = cutMiddle(text.slice(split), named.has(i) ? MAX_OPERATION : tailMax);
      const same = tails.get(tail);
      if (same !== undefined && String(same).length < tail.length + 2) data.d.push(same);
      else {
        tails.set(tail, i);
        data.d.push(tail);
      }
      if (o.annotation) notes.push([i, o.annotation]);
    });
    const illegal = p.verdict === "not linearizable" ? p.firstIllegal : undefined;
    if (illegal !== undefined) data.x = illegal;
    if (p.witnesses) data.w = p.witnesses;
    if (p.explanation) data.e = p.explanation;
    if (notes.length > 0) data.a = notes;
    const shown = sequences[rank].map((seq) => {
      let prev = 0;
      const o = seq.map((i) => {
        const d = i - prev;
        prev = i;
        return d;
      });
      const keep = everyState ? seq.length + 1 : p.verdict === "not linearizable"
        ? Math.min(
          seq.length + 1,
          Math.floor(STATE_BUDGET / MAX_STATE / Math.max(1, sequences[rank].length)),
        )
        : 0;
      if (keep === 0 || model === undefined) return { o, f: 0, st: [] };
      const states = replay(model, ops, seq);
      const f = Math.max(0, states.length - keep);
      let before: string | undefined;
      const st = states.slice(f).map((s): string | 0 => {
        const text = cutMiddle(s, everyState ? stateMax : MAX_STATE);
        if (text === before) return 0;
        before = text;
        return text;
      });
      if (f > 0) cut = true;
      return { o, f, st };
    });
    if (shown.length > 0) data.s = shown;
    checkPartition(data, ops.length);
    return data;
  });
  const out: ReportData = {
    verdict: result.verdict,
    u,
    t0,
    cl: [...clients.keys()],
    p: parts,
    cut,
  };
  if (result.gaveUp) out.gaveUp = result.gaveUp;
  const undecided = result.partitions.findIndex((p) => p.verdict === "unknown");
  if (undecided >= 0) out.uw = unknownReason(result as CheckResult, undecided);
  return out;
}

/** The least of many numbers (Math.min(...xs) overflows the stack past ~100,000 arguments). */
function least(xs: number[]): number {
  let lo = Infinity;
  for (const x of xs) if (x < lo) lo = x;
  return lo;
}

/**
 * The encoding's invariants, checked on every report (a violation is a bug
 * here, and would make the page show wrong operations): every column has one
 * entry per operation, a repeated tail refers to an earlier written-out one,
 * heads refer to their table, sequences name each operation at
 * most once, and states never outnumber the steps.
 */
function checkPartition(p: PartitionData, operations: number): void {
  const fail = (what: string) => {
    throw new Error(`report encoding of ${p.n}: ${what} (a distkit bug: please report it)`);
  };
  for (
    const [name, column] of [["c", p.c], ["t", p.t], ["r", p.r], ["h", p.h], ["d", p.d]] as const
  ) {
    if (column.length !== operations) {
      fail(`column ${name} has ${column.length} entries for ${operations} operations`);
    }
  }
  p.d.forEach((d, i) => {
    if (typeof d === "number" && !(d < i && typeof p.d[d] === "string")) {
      fail(`tail ${i} refers to ${d}`);
    }
  });
  if (p.h.some((h) => !(h >= 0 && h < p.hs.length))) fail("a head index is out of its table");
  if (p.c.some((c) => !(c >= 0 && c < p.pc.length))) fail("a client index is out of its table");
  if (p.r.some((r) => r < -1)) fail("a negative duration");
  for (const s of p.s ?? []) {
    let at = 0;
    const seen = new Set<number>();
    for (const step of s.o) {
      at += step;
      if (!(at >= 0 && at < operations) || seen.has(at)) {
        fail(`a sequence names operation ${at} wrongly`);
      }
      seen.add(at);
    }
    if (s.f + s.st.length > s.o.length + 1) fail("more states than steps");
  }
}
