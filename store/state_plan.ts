/**
 * Planning a `StateStore`'s commits for a run of staged entries:
 * the rows each entry writes (one mutation per row per commit), the parts
 * of large values written ahead, the copies open views need, the key count,
 * cuts at Deno KV's commit limits, and an entry too large for one commit
 * redone from a record. Nothing is written here.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import { crc32 } from "../net/bytes.ts";
import { MAX_LIST_BATCH, type Mutation, PART_BYTES } from "./kv_limits.ts";
import { StateInvariantError } from "./errors.ts";
import {
  type AppliedPoint,
  CommitPlan,
  costOf,
  type Current,
  STATE_FORMAT,
  type StateLayout,
  type Table,
} from "./state_layout.ts";
import { position, type ViewState } from "./state_view.ts";
import type { StagedEntry } from "./state_batch.ts";
import { encodeMutations } from "./state_redo.ts";

/**
 * Keys of garbage a batch deletes beyond one per key it writes: the store's
 * only collection while it serves (nothing else calls `collectGarbage`), so
 * it must outpace what batches make (a cut value's parts go with the row
 * that replaces them; this is for larger values, views' copies, redo
 * records and replaced generations).
 */
export const GARBAGE_PER_COMMIT = 256;

/**
 * Stored keys nothing reaches any more: the parts of a replaced value
 * (then its `g` row), or every key a selector lists (a view's copies, an
 * old or unfinished generation).
 */
export type Garbage =
  | { kind: "parts"; gen: number; id: number; count: number; next: number }
  | { kind: "range"; selector: Deno.KvListSelector };

/** The commits of one cut: parts written ahead, then the rows and `applied`. */
export interface Group {
  ahead: Mutation[];
  plan: CommitPlan;
  point: AppliedPoint;
  nextPart: number;
  rows: Map<string, { row: Uint8Array | null; value: StateValue | null }>;
  garbage: Garbage[];
  /** Rows copied for views (the view, table + key). */
  copies: [ViewState, string][];
  /** Where the plan's mutation of each row (table + key) is: a later write replaces it. */
  slots: Map<string, number>;
  /** Deletes of garbage the last commit had no room for: committed after it. */
  after?: Mutation[];
  /** The number of data rows once committed (when the store keeps it). */
  count?: number;
  /** Per log segment: the change in the rows that keep their value there (`state_logged.ts`). */
  logged: Map<number, number>;
  /**
   * One entry too large for a commit: its mutations, redone from a record
   * (`[gen, "r", id, n]`) that the commit setting `applied` points to.
   */
  redo?: { id: number; mutations: Mutation[] };
}

/** What {@linkcode planCommits} reads of the store. */
export interface PlanContext {
  layout: StateLayout;
  gen: number;
  /** The count the store keeps (`StateStore.keepCount`), if any. */
  count: { row: string; rows: number } | undefined;
  nextPart: number;
  applied: AppliedPoint;
  views: Set<ViewState>;
  /** The stored rows of table + keys, from the cache or the database. */
  rows(tks: string[]): Promise<Map<string, Uint8Array | null>>;
  encode(current: Current): Uint8Array;
  /** Up to `limit` deletes of garbage, oldest first, taken off the garbage. */
  takeDeletes(limit: number): Promise<Mutation[]>;
}

/**
 * The groups of commits for `entries` (see the module doc).
 *
 * @example
 * ```ts ignore
 * const groups = await planCommits(context, entries);
 * ```
 */
export async function planCommits(ctx: PlanContext, entries: StagedEntry[]): Promise<Group[]> {
  const layout = ctx.layout;
  const gen = ctx.gen;
  const counting = ctx.count;
  const countTk = counting && "s" + counting.row;
  let count = counting?.rows;
  const touched = [
    ...new Set([...entries.flatMap((e) => [...e.writes.keys()]), ...(countTk ? [countTk] : [])]),
  ];
  const before = await ctx.rows(touched);
  const now = new Map(before);
  const groups: Group[] = [];
  let nextPart = ctx.nextPart;
  const newGroup = (): Group => ({
    ahead: [],
    plan: new CommitPlan(),
    point: ctx.applied,
    nextPart,
    rows: new Map(),
    garbage: [],
    copies: [],
    slots: new Map(),
    logged: new Map(),
  });
  let group = newGroup();
  // Rows this batch copies for views: marked shadowed only once committed.
  const copied = new Map<ViewState, Set<string>>();
  const currentCost = costOf({
    type: "set",
    key: layout.key("current"),
    value: ctx.encode({ format: STATE_FORMAT, gen, applied: entries[0].point, nextPart }),
  });
  for (const entry of entries) {
    const mutations: Mutation[] = [];
    // Each row mutation's table + key: a later entry of the group writing it replaces it.
    const rowOf: (string | undefined)[] = [];
    // Copies go first: with a redo, a view must never see a changed row without its copy.
    const copyMutations: Mutation[] = [];
    const copies: [ViewState, string][] = [];
    const ahead: Mutation[] = [];
    const rows: Group["rows"] = new Map();
    const garbage: Garbage[] = [];
    const logged = new Map<number, number>();
    const moveLogged = (segment: number, by: number) =>
      logged.set(segment, (logged.get(segment) ?? 0) + by);
    let writes: Iterable<[string, StateValue | null]> = entry.writes;
    if (countTk !== undefined) {
      // The entry's data rows created less those deleted, from the rows as stored before it.
      let delta = 0;
      for (const [tk, value] of entry.writes) {
        if (tk === countTk) {
          throw new StateInvariantError(`an entry wrote the count row ${tk.slice(1)} itself`);
        }
        if (tk[0] === "d") {
          delta += Number(value !== null) - Number((now.get(tk) ?? null) !== null);
        }
      }
      if (delta !== 0) {
        count = count! + delta;
        if (!(count! >= 0)) throw new StateInvariantError(`the count of rows went to ${count}`);
        writes = [...entry.writes, [countTk, layout.codec.encode(count)]];
      }
    }
    for (const [tk, value] of writes) {
      const table = tk[0] as Table;
      const key = tk.slice(1);
      const stored = layout.key(gen, table, key);
      let row: Uint8Array | null = null;
      const what = `row ${JSON.stringify(key)}`;
      const inLog = table === "d" && entry.logged !== undefined && value === entry.logged.value
        ? entry.logged.at
        : undefined;
      if (value === null) {
        mutations.push({ type: "delete", key: stored });
      } else if (inLog) {
        row = layout.encodeLoggedRow(value, inLog);
        mutations.push({ type: "set", key: stored, value: row });
      } else {
        const encoded = layout.encodeValue(value, gen, nextPart, stored);
        if (encoded.parts.length > 0) nextPart++;
        if (encoded.ahead) ahead.push(...encoded.parts);
        else {
          // A cut value's parts share the row's commit.
          mutations.push(...encoded.parts);
          rowOf.push(...encoded.parts.map(() => undefined));
        }
        row = encoded.row;
        mutations.push({ type: "set", key: stored, value: row });
      }
      rowOf.push(tk);
      rows.set(tk, { row, value });
      const replaced = now.get(tk) ?? null;
      const refs = replaced ? layout.references(replaced, what) : {};
      // The `l` listing follows the row: out of the segment it pointed into, into the new one.
      const was = refs.logged?.at.segment;
      if (typeof was === "number" && was !== inLog?.segment) {
        mutations.push({ type: "delete", key: layout.key(gen, "l", was, key) });
        rowOf.push(`l${was}/${key}`);
        moveLogged(was, -1);
      }
      if (inLog && inLog.segment !== was) {
        mutations.push({
          type: "set",
          key: layout.key(gen, "l", inLog.segment, key),
          value: layout.listingRow(),
        });
        rowOf.push(`l${inLog.segment}/${key}`);
        moveLogged(inLog.segment, 1);
      }
      const parts = refs.parts;
      if (parts && layout.isCut(parts) && ctx.views.size === 0 && replaced === before.get(tk)) {
        // A cut value's parts, committed before this batch and read by no view: deleted with the
        // row that pointed to them (garbage kept for later would grow with every overwrite).
        for (let n = 0; n < parts.count; n++) {
          mutations.push({ type: "delete", key: layout.key(gen, "p", parts.id, n) });
          rowOf.push(undefined);
        }
      } else if (parts) {
        const count = new Uint8Array(4);
        new DataView(count.buffer).setUint32(0, parts.count);
        mutations.push({
          type: "set",
          key: layout.key(gen, "g", parts.id),
          value: layout.encodeValue(count, gen, 0, layout.key(gen, "g", parts.id)).row,
        });
        rowOf.push(undefined);
        garbage.push({ kind: "parts", gen, id: parts.id, count: parts.count, next: 0 });
      }
      now.set(tk, row);
      // Copy-on-write: the row as the view saw it, on its first change ahead of the stream.
      for (const view of ctx.views) {
        if (view.gen !== gen || view.shadowed.has(tk) || copied.get(view)?.has(tk)) continue;
        if (!(position(table, key) > view.cursor)) continue;
        copied.set(view, (copied.get(view) ?? new Set()).add(tk));
        copies.push([view, tk]);
        copyMutations.push({
          type: "set",
          key: layout.key(gen, "v", view.id, table, key),
          value: before.get(tk) ?? layout.absentRow(),
        });
      }
    }
    mutations.unshift(...copyMutations);
    rowOf.unshift(...copyMutations.map(() => undefined));
    const costs = mutations.map(costOf);
    // What the entry adds to `g`: a row the group writes already costs only the difference.
    const added = (g: Group) =>
      costs.reduce((a, c, i) => {
        const at = rowOf[i] === undefined ? undefined : g.slots.get(rowOf[i]!);
        const old = at === undefined ? undefined : g.plan.costAt(at);
        return old === undefined
          ? {
            mutations: a.mutations + 1,
            bytes: a.bytes + c.bytes,
            keyBytes: a.keyBytes + c.keyBytes,
          }
          : {
            mutations: a.mutations,
            bytes: a.bytes + Math.max(0, c.bytes - old.bytes),
            keyBytes: a.keyBytes + Math.max(0, c.keyBytes - old.keyBytes),
          };
      }, currentCost);
    if (!group.plan.fits(added(group)) && group.plan.mutations.length > 0) {
      groups.push(group);
      group = newGroup();
    }
    if (!group.plan.fits(added(group))) {
      // Alone over one commit: redone from a record, in a group of its own.
      group.redo = { id: nextPart++, mutations };
    } else {
      // One mutation per row per commit: the entry's write of a row replaces the group's.
      mutations.forEach((m, i) => {
        const tk = rowOf[i];
        const at = tk === undefined ? undefined : group.slots.get(tk);
        if (at !== undefined) group.plan.replace(at, m, costs[i]);
        else {
          const placed = group.plan.add(m, costs[i]);
          if (tk !== undefined) group.slots.set(tk, placed);
        }
      });
    }
    group.ahead.push(...ahead);
    group.point = entry.point;
    group.nextPart = nextPart;
    group.count = count;
    for (const [tk, cached] of rows) group.rows.set(tk, cached);
    group.garbage.push(...garbage);
    group.copies.push(...copies);
    for (const [segment, by] of logged) {
      group.logged.set(segment, (group.logged.get(segment) ?? 0) + by);
    }
    if (group.redo) {
      groups.push(group);
      group = newGroup();
    }
  }
  if (group.point !== ctx.applied || groups.length === 0) groups.push(group);
  for (const g of groups) {
    const current: Current = {
      format: STATE_FORMAT,
      gen,
      applied: g.point,
      nextPart: g.nextPart,
    };
    if (g.redo) {
      const bytes = layout.codec.encode(encodeMutations(g.redo.mutations));
      const chunks = Math.max(1, Math.ceil(bytes.length / PART_BYTES));
      for (let n = 0; n < chunks; n++) {
        g.ahead.push({
          type: "set",
          key: layout.key(gen, "r", g.redo.id, n),
          value: bytes.subarray(n * PART_BYTES, (n + 1) * PART_BYTES),
        });
      }
      current.redo = { id: g.redo.id, chunks, size: bytes.length, crc: crc32(bytes) };
    }
    g.plan.add({ type: "set", key: layout.key("current"), value: ctx.encode(current) });
  }
  // Garbage rides on the last commit as room allows, the rest in commits after it: as many
  // keys as the batch writes and GARBAGE_PER_COMMIT more, so garbage never outgrows the writes
  // that make it (views' copies, open most of the time, did: review31 F4).
  const last = groups[groups.length - 1];
  const written = groups.reduce((n, g) => n + g.plan.mutations.length + g.ahead.length, 0);
  const after: Mutation[] = [];
  for (const m of await ctx.takeDeletes(GARBAGE_PER_COMMIT + written)) {
    const cost = costOf(m);
    if (after.length === 0 && last.plan.fits(cost)) last.plan.add(m, cost);
    else after.push(m);
  }
  if (after.length > 0) last.after = after;
  return groups;
}

/**
 * Up to `options.limit` deletes of `garbage`, oldest first (parts, then
 * their `g` row; every key a range lists), each taken off the garbage.
 *
 * @example
 * ```ts ignore
 * const deletes = await takeDeletes(garbage, layout, { limit: 256 });
 * ```
 */
export async function takeDeletes(
  garbage: Garbage[],
  layout: StateLayout,
  options: { limit: number },
): Promise<Mutation[]> {
  const { limit } = options;
  const deletes: Mutation[] = [];
  while (deletes.length < limit && garbage.length > 0) {
    const g = garbage[0];
    if (g.kind === "parts") {
      const last = g.next === g.count;
      const key = last ? layout.key(g.gen, "g", g.id) : layout.key(g.gen, "p", g.id, g.next);
      deletes.push({ type: "delete", key });
      if (last) garbage.shift();
      else g.next++;
      continue;
    }
    const asked = limit - deletes.length;
    let listed = 0;
    const batchSize = Math.min(asked, MAX_LIST_BATCH);
    for await (const e of layout.kv.list(g.selector, { limit: asked, batchSize })) {
      listed++;
      deletes.push({ type: "delete", key: e.key });
    }
    // A range listed whole is gone with these deletes.
    if (listed < asked) garbage.shift();
  }
  return deletes;
}
