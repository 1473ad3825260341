/**
 * Inference for key/value histories whose writes are unique (Elle's insight,
 * Kingsbury & Alvaro, VLDB 2020): when every put and append of a key writes
 * a distinct value and no value is a prefix of another, a read's value spells
 * out, uniquely, the writes since the last put (or since the start), in
 * order. So reads reveal which write came right after which, the writes fall
 * into epochs (a put and the appends after it, or the appends from the start)
 * that must each run as one unbroken stretch of the linearization, and the
 * order of those stretches is a scheduling problem solved in O(n log n).
 *
 * The result is a verdict without search:
 * - `linearizable` only with a linearization that has been replayed against
 *   the key/value model and checked against real time (an invariant: a
 *   linearization that fails the replay is a bug, and the caller falls back
 *   to the general search rather than answer);
 * - `not linearizable` only with a contradiction that is a proof on its own
 *   (a read no sequence of writes can produce, two reads that disagree on
 *   what follows a write, an operation forced before another that completed
 *   before it began, two epochs each forced before the other), explained in
 *   words;
 * - `inapplicable` when the writes are not unique (or a read has no output):
 *   then the general search decides.
 *
 * @module
 */
import type { KvInput } from "./models.ts";
import type { Operation } from "./types.ts";

/**
 * A contradiction inference found: the operations that prove it, and the
 * proof in words, naming each operation through `name` (its 1-based number in
 * the caller's history, say).
 *
 * @example
 * ```ts
 * import type { Contradiction } from "./infer.ts";
 *
 * function show(c: Contradiction): string {
 *   return c.explain((i) => `#${i + 1}`).join("\n");
 * }
 * ```
 */
export interface Contradiction {
  /** The operations (indexes into the partition) the proof names. */
  witnesses: number[];
  /** The proof, one sentence per line. */
  explain(name: (op: number) => string): string[];
}

/**
 * What inference decided about one key's history.
 *
 * @example
 * ```ts
 * import { inferKv } from "./infer.ts";
 *
 * const r = inferKv([
 *   { client: 0, input: { op: "append", key: "k", value: "a;" }, call: 0, output: "", return: 1 },
 *   { client: 1, input: { op: "get", key: "k" }, call: 2, output: "", return: 3 },
 * ]);
 * r.verdict; // "not linearizable": the get began after the append completed, and missed it
 * ```
 */
export type Inference =
  | { verdict: "linearizable"; linearization: number[] }
  | ({ verdict: "not linearizable" } & Contradiction)
  | { verdict: "inapplicable"; reason: string };

/** A value written more often than this leaves the partition to the search. */
const MAX_REPEATS = 8;
/** Rounds of narrowing a read's candidates (each read, and of retrying the reads left waiting). */
const MAX_ROUNDS = 16;

const READ = 0;
const PUT = 1;
const APPEND = 2;

/** A group of operations that runs as one stretch: its extreme times, and who has them. */
interface Unit {
  ops: number[];
  /** The earliest return (and its operation). */
  lo: number;
  loOp: number;
  /** The latest call (and its operation). */
  hi: number;
  hiOp: number;
  /** The put or the first append that starts it (-1: reads of the initial value). */
  head: number;
}

/** The invariant of a `linearizable` answer failed: a bug, answered by the general search. */
class InferenceBug extends Error {
  constructor(what: string) {
    super(`inference invariant failed: ${what}`);
  }
}

/** A value written several times, and more than one of its writes fits a read: let search decide. */
class Ambiguous extends Error {
  constructor() {
    super("a value written several times is shown where more than one of its writes fits");
  }
}

class Found extends Error {
  constructor(readonly contradiction: Contradiction) {
    super("contradiction");
  }
}

function quote(s: string, max = 40): string {
  const q = JSON.stringify(s);
  return q.length <= max ? q : `${q.slice(0, max - 2)}…"`;
}

/**
 * Decides one key's history of `get`/`put`/`append` operations by inference
 * (see the module documentation), or says why it cannot.
 *
 * @example
 * ```ts
 * import { inferKv } from "./infer.ts";
 *
 * const r = inferKv([
 *   { client: 0, input: { op: "append", key: "k", value: "a;" }, call: 0, output: "", return: 5 },
 *   { client: 1, input: { op: "get", key: "k" }, call: 1, output: "a;", return: 2 },
 * ]);
 * r.verdict; // "linearizable"
 * ```
 */
export function inferKv(ops: readonly Operation[]): Inference {
  const n = ops.length;
  if (n === 0) return { verdict: "linearizable", linearization: [] };
  const kind = new Uint8Array(n);
  const call = new Float64Array(n);
  const ret = new Float64Array(n);
  const values: string[] = new Array(n);
  /** Per value written: the write (-1: several wrote it), and all that wrote it. */
  const tokenOf = new Map<string, number>();
  const groups = new Map<string, number[]>();
  const key = (ops[0].input as KvInput | undefined)?.key;
  for (let i = 0; i < n; i++) {
    const op = ops[i];
    const input = op.input as KvInput | undefined;
    if (typeof input !== "object" || input === null || input.key !== key) {
      return { verdict: "inapplicable", reason: "not one key's get/put/append operations" };
    }
    call[i] = op.call;
    ret[i] = op.unknown ? Infinity : op.return;
    if (!(call[i] <= ret[i])) {
      return { verdict: "inapplicable", reason: "a return before its call" };
    }
    if (input.op === "get") {
      kind[i] = READ;
      const output = op.unknown ? undefined : op.output;
      if (output === undefined && !op.unknown) {
        return { verdict: "inapplicable", reason: "a completed get without an output" };
      }
      if (output !== undefined && typeof output !== "string") {
        return { verdict: "inapplicable", reason: "a get whose output is not a string" };
      }
      values[i] = output as string;
    } else if (input.op === "put" || input.op === "append") {
      kind[i] = input.op === "put" ? PUT : APPEND;
      const v = input.value ?? "";
      if (v === "") return { verdict: "inapplicable", reason: "an empty value written" };
      const group = groups.get(v);
      if (group === undefined) {
        groups.set(v, [i]);
        tokenOf.set(v, i);
      } else {
        group.push(i);
        tokenOf.set(v, -1);
      }
      values[i] = v;
    } else {
      return { verdict: "inapplicable", reason: `an operation "${input.op}"` };
    }
  }
  // Unique decoding needs a prefix-free set: a value that is a prefix of another sorts just before
  // one it is a prefix of.
  const written = [...tokenOf.keys()].sort();
  for (let k = 1; k < written.length; k++) {
    if (written[k].startsWith(written[k - 1])) {
      return { verdict: "inapplicable", reason: "a written value is a prefix of another" };
    }
  }
  for (const group of groups.values()) {
    // Telling many writes of one value apart costs more than it is likely to decide.
    if (group.length > MAX_REPEATS) {
      return {
        verdict: "inapplicable",
        reason: `a value written more than ${MAX_REPEATS} times`,
      };
    }
  }
  const lengths = [...new Set(written.map((v) => v.length))].sort((a, b) => b - a);
  try {
    return decide(ops, { n, kind, call, ret, values, tokenOf, groups, lengths });
  } catch (err) {
    if (err instanceof Found) return { verdict: "not linearizable", ...err.contradiction };
    if (err instanceof InferenceBug || err instanceof Ambiguous) {
      return { verdict: "inapplicable", reason: err.message };
    }
    throw err;
  }
}

interface Tables {
  n: number;
  kind: Uint8Array;
  call: Float64Array;
  ret: Float64Array;
  values: string[];
  tokenOf: Map<string, number>;
  groups: Map<string, number[]>;
  lengths: number[];
}

function decide(ops: readonly Operation[], t: Tables): Inference {
  const { n, kind, call, ret, values, tokenOf, groups, lengths } = t;
  const time = (x: number) => (Number.isFinite(x) ? String(x) : "∞");
  const span = (i: number) =>
    ops[i].unknown ? `called at t=${call[i]}, outcome unknown` : `t=${call[i]}–${ret[i]}`;
  const what = (i: number) =>
    kind[i] === READ
      ? `get → ${quote(values[i] ?? "?")}`
      : `${kind[i] === PUT ? "put" : "append"} ${quote(values[i])}`;
  /** "operation 17 (client 3, append "x", t=1–2)". */
  const said = (name: (op: number) => string, i: number) =>
    `${name(i)} (client ${ops[i].client}, ${what(i)}, ${span(i)})`;
  const listValues = (list: string[]) => {
    const show = (k: number) => quote(list[k], 24);
    if (list.length === 0) return "nothing (the initial empty value)";
    if (list.length <= 4) return list.map((_, k) => show(k)).join(" ");
    return `${show(0)} ${show(1)} … ${show(list.length - 2)} ${
      show(list.length - 1)
    } (${list.length} values)`;
  };
  const listTokens = (tokens: number[]) => listValues(tokens.map((w) => values[w]));
  const fail = (witnesses: number[], explain: Contradiction["explain"]): never => {
    throw new Found({ witnesses, explain });
  };

  /**
   * The writes a read's value spells, front to back, or why it spells none. Values are decoded
   * uniquely (no value is a prefix of another); a value written several times is resolved to the
   * one write that can be there: invoked before the read completed, of the kind the place needs
   * (a put only first), not completed before a write shown before it was invoked nor invoked
   * after one shown after it completed, not shown elsewhere in the read, and, once other reads
   * fixed what precedes a write, with that text before it. Several left: `Ambiguous`.
   */
  const parse = (r: number): number[] => {
    const v = values[r];
    const shown: string[] = [];
    const ends: number[] = [];
    let at = 0;
    while (at < v.length) {
      let value: string | undefined;
      for (const len of lengths) {
        if (at + len > v.length) continue;
        const piece = v.slice(at, at + len);
        if (tokenOf.has(piece)) {
          value = piece;
          break;
        }
      }
      if (value === undefined) {
        fail([r], (name) => [
          `${said(name, r)} read a value that no sequence of the writes produces: after ${
            listValues(shown)
          } comes ${quote(v.slice(at), 30)}, which starts with no written value.`,
        ]);
      }
      shown.push(value!);
      at += value!.length;
      ends.push(at);
    }
    const m = shown.length;
    const cands = shown.map((value, k) => {
      const id = tokenOf.get(value)!;
      if (id >= 0) return [id];
      return groups.get(value)!.filter((w) =>
        call[w] <= ret[r] && !(k > 0 && kind[w] === PUT) &&
        (pos[w] < 0 || (pos[w] === ends[k] && v.slice(0, ends[k]) === prefix[w]))
      );
    });
    for (let changed = true, round = 0; changed && round < MAX_ROUNDS; round++) {
      changed = false;
      const narrow = (k: number, keep: (w: number) => boolean) => {
        if (cands[k].length < 2) return;
        const kept = cands[k].filter(keep);
        if (kept.length < cands[k].length) {
          cands[k] = kept;
          changed = true;
        }
      };
      // Each write shown comes after those before it: it cannot have completed before one of
      // them (whichever it is) was invoked, nor been invoked after one after it completed.
      let after = -Infinity;
      for (let k = 0; k < m; k++) {
        const bound = after;
        narrow(k, (w) => ret[w] >= bound);
        let least = Infinity;
        for (const w of cands[k]) least = Math.min(least, call[w]);
        if (cands[k].length > 0) after = Math.max(after, least);
      }
      let before = Infinity;
      for (let k = m - 1; k >= 0; k--) {
        const bound = before;
        narrow(k, (w) => call[w] <= bound);
        let most = -Infinity;
        for (const w of cands[k]) most = Math.max(most, ret[w]);
        if (cands[k].length > 0) before = Math.min(before, most);
      }
      // A write shown in one place is not shown in another.
      const placed = new Set<number>();
      for (const c of cands) if (c.length === 1) placed.add(c[0]);
      for (let k = 0; k < m; k++) narrow(k, (w) => !placed.has(w));
    }
    for (let k = 0; k < m; k++) {
      if (cands[k].length > 0) continue;
      const writers = groups.get(shown[k])!;
      fail([r, ...writers], (name) => [
        `${said(name, r)} shows ${quote(shown[k])} after ${
          listValues(shown.slice(0, k))
        }, but none of the ${writers.length} writes of that value can be the one it shows: each was invoked after the read completed, is a put (which nothing can precede), has other values before it in other reads, or is out of order in time with the other writes the read shows. The writes: ${
          writers.map((w) => said(name, w)).join("; ")
        }.`,
      ]);
    }
    if (cands.some((c) => c.length > 1)) throw new Ambiguous();
    const out = cands.map((c) => c[0]);
    const seen = new Set<number>();
    out.forEach((w, k) => {
      if (seen.has(w)) {
        fail([r, w], (name) => [
          `${said(name, r)} shows the value of ${said(name, w)} twice; a write takes effect once.`,
        ]);
      }
      seen.add(w);
      if (kind[w] === PUT && k > 0) {
        fail([r, w], (name) => [
          `${said(name, r)} shows ${listValues(shown.slice(0, k))} before the value of ${
            said(name, w)
          }; a put replaces the value, so nothing can come before it.`,
        ]);
      }
    });
    return out;
  };

  /** The writes an established read shows: the chain of writes that ends at its version. */
  const shownTo = (r: number): number[] => {
    const out: number[] = [];
    for (let w = version[r]; w >= 0; w = pred[w]) out.push(w);
    return out.reverse();
  };

  // What the reads reveal, per write: where its value ends in the value since the last put (-1:
  // no read saw it), the validated text up to there, the write right before and after it, and
  // the read that showed it first.
  const pos = new Int32Array(n).fill(-1);
  const prefix: string[] = new Array(n);
  const pred = new Int32Array(n).fill(-1);
  const succ = new Int32Array(n).fill(-1);
  const shownBy = new Int32Array(n).fill(-1);
  const version = new Int32Array(n).fill(-1); // per read: the last write it shows (-1: none)
  const stamp = new Int32Array(n).fill(-1);
  let startHead = -1; // an append that reads show with no put before it

  /** Two reads that disagree on the writes before `w` (both show it). */
  const disagree = (a: number, ta: number[], b: number, w: number): never => {
    const tb = shownTo(b);
    let j = 0;
    while (j < ta.length && j < tb.length && ta[j] === tb[j]) j++;
    return fail([a, b, w], (name) => {
      const head = j === 0
        ? `they start differently (${quote(values[ta[0]], 24)} and ${
          quote(values[tb[0]], 24)
        }), though both show ${
          quote(values[w], 24)
        }: everything before a write's value is the value since the last put, the same for every read that shows it.`
        : `both show ${quote(values[ta[j - 1]], 24)}, but then ${
          j < ta.length ? quote(values[ta[j]], 24) : "nothing more"
        } and ${
          j < tb.length ? quote(values[tb[j]], 24) : "nothing more"
        }: only one write comes right after another.`;
      return [
        `${said(name, a)} saw ${listTokens(ta)};`,
        `${said(name, b)} saw ${listTokens(tb)};`,
        head,
      ];
    });
  };

  /** Records what read `r` shows, given its writes front to back. */
  const establish = (r: number, tokens: number[]) => {
    let end = 0;
    let before = -1;
    const v = values[r];
    for (const w of tokens) {
      end += values[w].length;
      if (pos[w] >= 0) {
        if (pos[w] !== end || v.slice(0, end) !== prefix[w]) disagree(r, tokens, shownBy[w], w);
      } else {
        if (before < 0 && kind[w] === APPEND) {
          if (startHead >= 0 && startHead !== w) {
            disagree(r, tokens, shownBy[startHead], startHead);
          }
          startHead = w;
        }
        if (before >= 0) {
          if (succ[before] >= 0 && succ[before] !== w) {
            disagree(r, tokens, shownBy[succ[before]], before);
          }
          succ[before] = w;
        }
        pred[w] = before;
        pos[w] = end;
        prefix[w] = v.slice(0, end);
        shownBy[w] = r;
      }
      before = w;
    }
    version[r] = before;
  };

  /**
   * The slow path: parse from the front, then record. A read whose value written several times
   * fits more than one write waits until other reads have fixed more.
   */
  const deferred: number[] = [];
  const slow = (r: number) => {
    let tokens: number[];
    try {
      tokens = parse(r);
    } catch (err) {
      if (!(err instanceof Ambiguous)) throw err;
      deferred.push(r);
      return;
    }
    establish(r, tokens);
  };

  const v0: number[] = [];
  const free: number[] = []; // reads and writes that can wait for the end
  const walked: number[] = [];
  for (let r = 0; r < n; r++) {
    if (kind[r] !== READ) continue;
    const v = values[r];
    if (v === undefined) {
      free.push(r);
      continue;
    }
    if (v === "") {
      v0.push(r);
      continue;
    }
    // Fast path: walk back from the end over writes no read showed yet, to one whose prefix we
    // know (then compare the text before it in one go) or to the start. Anything odd (a value
    // that is no write's, a repeat, a disagreement) takes the slow path, which parses from the
    // front and names the contradiction.
    walked.length = 0;
    let end = v.length;
    let ok = true;
    let base = -1;
    while (end > 0) {
      let w = -1;
      for (const len of lengths) {
        if (len > end) continue;
        const id = tokenOf.get(v.slice(end - len, end));
        if (id !== undefined) {
          w = id; // -1 (a value written several times) takes the slow path
          break;
        }
      }
      if (w < 0 || stamp[w] === r) {
        ok = false;
        break;
      }
      if (pos[w] >= 0) {
        ok = pos[w] === end && v.slice(0, end) === prefix[w];
        base = w;
        break;
      }
      stamp[w] = r;
      walked.push(w);
      end -= values[w].length;
    }
    if (ok) {
      // Checks before anything is recorded.
      let before = base;
      for (let k = walked.length - 1; k >= 0 && ok; k--) {
        const w = walked[k];
        if (kind[w] === PUT && before >= 0) ok = false;
        else if (before < 0 && kind[w] === APPEND && startHead >= 0 && startHead !== w) ok = false;
        else if (before >= 0 && succ[before] >= 0 && succ[before] !== w) ok = false;
        before = w;
      }
    }
    if (!ok) {
      slow(r);
      continue;
    }
    let before = base;
    let at = end;
    for (let k = walked.length - 1; k >= 0; k--) {
      const w = walked[k];
      at += values[w].length;
      if (before < 0 && kind[w] === APPEND) startHead = w;
      if (before >= 0) succ[before] = w;
      pred[w] = before;
      pos[w] = at;
      prefix[w] = v.slice(0, at);
      shownBy[w] = r;
      before = w;
    }
    version[r] = walked.length > 0 ? walked[0] : base;
  }

  for (let round = 0; deferred.length > 0; round++) {
    const waiting = deferred.splice(0);
    for (const r of waiting) slow(r);
    if (deferred.length === waiting.length || round === MAX_ROUNDS) throw new Ambiguous();
  }

  // Reads per version (the last write they show), each group by return: reads of one version
  // can go in any order, and by return never breaks real time among themselves.
  const byReturn = (a: number, b: number) => ret[a] - ret[b] || call[a] - call[b] || a - b;
  const readsOf = new Map<number, number[]>();
  for (let r = 0; r < n; r++) {
    if (kind[r] !== READ || version[r] < 0) continue;
    const list = readsOf.get(version[r]);
    if (list) list.push(r);
    else readsOf.set(version[r], [r]);
  }
  for (const list of readsOf.values()) list.sort(byReturn);
  v0.sort(byReturn);

  /** A unit over `ops` in this order; a pair in it that breaks real time is a contradiction. */
  const unit = (list: number[], head: number): Unit => {
    let hi = -Infinity;
    let hiOp = -1;
    let lo = Infinity;
    let loOp = -1;
    for (const x of list) {
      if (hi > ret[x]) explainOrder(hiOp, x);
      if (call[x] > hi) {
        hi = call[x];
        hiOp = x;
      }
      if (ret[x] < lo) {
        lo = ret[x];
        loOp = x;
      }
    }
    return { ops: list, lo, loOp, hi, hiOp, head };
  };

  /** `y` comes before `x` in an epoch, by what the reads show, yet `x` completed before `y` began. */
  const explainOrder = (y: number, x: number): never => {
    // The witnesses: the two operations, then the reads the order rests on and what they show
    // (on their own, these make a history that is not linearizable).
    const support = new Set([y, x]);
    for (const r of [y, x, shownBy[x]]) {
      if (r >= 0 && kind[r] === READ) {
        support.add(r);
        for (const w of shownTo(r)) support.add(w);
      }
    }
    return fail([...support], (name) => {
      const late = `${said(name, x)} completed before ${name(y)} began`;
      if (kind[y] !== READ && kind[x] === READ) {
        return [
          `${said(name, x)} saw the value of ${said(name, y)}, which was not yet invoked when ${
            name(x)
          } completed.`,
        ];
      }
      if (kind[y] === READ && kind[x] !== READ) {
        return [
          `${said(name, y)} saw ${listTokens(shownTo(y))} but not ${quote(values[x], 24)}, which ${
            shownBy[x] >= 0
              ? `${name(shownBy[x])} shows right after ${quote(values[pred[x]], 24)}`
              : ""
          }; yet ${late}.`,
        ];
      }
      if (kind[y] === READ) {
        return [
          `${said(name, y)} saw ${listTokens(shownTo(y))}, an older value than ${
            listTokens(shownTo(x))
          }, which ${said(name, x)} saw; yet ${name(x)} completed before ${
            name(y)
          } began: a later read saw an older value.`,
        ];
      }
      return [
        `${name(shownBy[x])} shows ${quote(values[y], 24)} before ${
          quote(values[x], 24)
        }, yet ${late}.`,
      ];
    });
  };

  // The epochs, with the reads of each version after its write.
  let start: Unit | undefined;
  const units: Unit[] = [];
  for (let w = 0; w < n; w++) {
    if (kind[w] === READ) continue;
    if (pos[w] < 0) {
      // No read saw it: it took effect at the end of an epoch, or (outcome unknown) never.
      if (ops[w].unknown) free.push(w);
      else units.push(unit([w], w));
      continue;
    }
    if (pred[w] >= 0) continue;
    const list: number[] = [];
    for (let x = w; x >= 0; x = succ[x]) {
      list.push(x);
      const reads = readsOf.get(x);
      if (reads) { for (const r of reads) list.push(r); }
    }
    const u = unit(list, w);
    if (w === startHead) start = u;
    else units.push(u);
  }

  // The reads of the initial value come first, then the epoch from the start; everything else
  // after both.
  const order: number[] = [];
  const first = [v0.length > 0 ? unit(v0, -1) : undefined, start];
  let rest = { lo: Infinity, loOp: -1 };
  for (const u of units) if (u.lo < rest.lo) rest = u;
  for (let k = 1; k >= 0; k--) {
    const u = first[k];
    if (u === undefined) continue;
    if (u.hi > rest.lo) explainFirst(u, rest.loOp);
    if (u.lo < rest.lo) rest = u;
  }
  for (const u of first) if (u) order.push(...u.ops);

  function explainFirst(u: Unit, z: number): never {
    const y = u.hiOp;
    return fail([y, z], (name) => [
      u.head < 0
        ? `${said(name, y)} saw the initial empty value, so it came before every write;`
        : `${said(name, y)} belongs to the first epoch: reads show ${
          quote(values[u.head], 24)
        } with nothing before it, so no put came before it and nothing that is not shown;`,
      `yet ${said(name, z)} ${
        kind[z] === READ
          ? `saw ${listTokens(shownTo(z))} and`
          : pos[z] < 0
          ? "(which no read shows)"
          : ""
      } completed before ${name(y)} began.`,
    ]);
  }

  // The other units in an order where no operation follows one that completed before it began:
  // a unit may go next when its latest call is no later than every other unit's earliest return.
  // The unit with the least latest call, or else the one with the least earliest return, is such
  // a unit if any is; when neither is, those two are each forced before the other.
  const m = units.length;
  const byHi = units.map((_, k) => k).sort((a, b) => units[a].hi - units[b].hi || a - b);
  const byLo = units.map((_, k) => k).sort((a, b) => units[a].lo - units[b].lo || a - b);
  const nextHi = new Int32Array(m + 1);
  const prevHi = new Int32Array(m + 1);
  const nextLo = new Int32Array(m + 1);
  const prevLo = new Int32Array(m + 1);
  const posHi = new Int32Array(m);
  const posLo = new Int32Array(m);
  // Doubly linked lists over the two sorted orders: slot k holds byHi[k] (byLo[k]), slot m is
  // the head, and removing a unit unlinks its slot in both.
  for (let k = 0; k <= m; k++) {
    nextHi[k] = nextLo[k] = k === m ? (m > 0 ? 0 : m) : k + 1;
    prevHi[k] = prevLo[k] = k === 0 ? m : k - 1;
  }
  for (let k = 0; k < m; k++) {
    posHi[byHi[k]] = k;
    posLo[byLo[k]] = k;
  }
  const remove = (u: number) => {
    const a = posHi[u];
    nextHi[prevHi[a]] = nextHi[a];
    prevHi[nextHi[a]] = prevHi[a];
    const b = posLo[u];
    nextLo[prevLo[b]] = nextLo[b];
    prevLo[nextLo[b]] = prevLo[b];
  };
  for (let left = m; left > 0; left--) {
    const h = byHi[nextHi[m]];
    const l1 = byLo[nextLo[m]];
    const l2slot = nextLo[nextLo[m]];
    const l2 = l2slot === m ? -1 : byLo[l2slot];
    const otherLo = (u: number) => {
      const o = u === l1 ? l2 : l1;
      return o < 0 ? Infinity : units[o].lo;
    };
    let pick = -1;
    if (units[h].hi <= otherLo(h)) pick = h;
    else if (units[l1].hi <= otherLo(l1)) pick = l1;
    if (pick < 0) explainCycle(units[l1], units[l2]);
    remove(pick);
    for (const x of units[pick].ops) order.push(x);
  }

  function describeUnit(name: (op: number) => string, u: Unit): string {
    if (u.ops.length === 1 && pos[u.head] < 0) {
      return `${said(name, u.head)}, which no read shows, so ${
        kind[u.head] === APPEND
          ? "it took effect after every read of its epoch"
          : "no read came between it and the next put"
      }`;
    }
    return `the epoch of ${
      said(name, u.head)
    } (${u.ops.length} operations: its writes as reads show them, and those reads), which runs unbroken until the next put`;
  }

  function explainCycle(x: Unit, y: Unit): never {
    return fail([y.loOp, x.hiOp, x.loOp, y.hiOp], (name) => [
      `Consider ${describeUnit(name, x)};`,
      `and ${describeUnit(name, y)}.`,
      `${said(name, y.loOp)} completed before ${
        said(name, x.hiOp)
      } began, so the second comes before the first;`,
      `but ${said(name, x.loOp)} completed before ${
        said(name, y.hiOp)
      } began, so the first comes before the second.`,
    ]);
  }

  free.sort((a, b) => call[a] - call[b] || a - b);
  for (const x of free) order.push(x);
  verify(ops, order, { kind, call, ret, values, time });
  return { verdict: "linearizable", linearization: order };
}

/**
 * The invariant behind a `linearizable` answer: `order` holds every operation
 * once, puts no operation after one that completed before it began, and
 * replays on the key/value model with every read's output. The replay builds
 * each epoch's final value once and compares each read with its prefix (a
 * slice and `===`, which V8 compares as memory; `startsWith` is ten times
 * slower on long strings), so it costs one comparison per character read.
 */
function verify(
  ops: readonly Operation[],
  order: number[],
  t: Pick<Tables, "kind" | "call" | "ret" | "values"> & { time(x: number): string },
): void {
  const { kind, call, ret, values } = t;
  if (order.length !== ops.length) {
    throw new InferenceBug(`the linearization has ${order.length} of ${ops.length} operations`);
  }
  const placed = new Uint8Array(ops.length);
  let latest = -Infinity;
  const epochs: string[] = [];
  let parts: string[] = [];
  for (const i of order) {
    if (placed[i]) throw new InferenceBug(`operation ${i} placed twice`);
    placed[i] = 1;
    if (latest > ret[i]) {
      throw new InferenceBug(`operation ${i} placed after one called at ${t.time(latest)}`);
    }
    if (call[i] > latest) latest = call[i];
    if (kind[i] === PUT) {
      epochs.push(parts.join(""));
      parts = [values[i]];
    } else if (kind[i] === APPEND) parts.push(values[i]);
  }
  epochs.push(parts.join(""));
  let epoch = 0;
  let length = 0;
  for (const i of order) {
    if (kind[i] === PUT) {
      epoch++;
      length = values[i].length;
    } else if (kind[i] === APPEND) length += values[i].length;
    else {
      const v = values[i];
      if (v !== undefined && (v.length !== length || epochs[epoch].slice(0, length) !== v)) {
        throw new InferenceBug(`read ${i} does not fit its place`);
      }
    }
  }
}
