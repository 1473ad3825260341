/**
 * A {@linkcode StateStore}'s work on the rows that keep their value in the
 * Raft log (`state_logged.ts`): counting them per segment at open, checking
 * at start that the log still holds what they point at, and copying a
 * segment's values forward into ordinary rows so the log can let it go.
 *
 * @module
 */
import type { Mutation } from "./kv_limits.ts";
import { StateInvariantError } from "./errors.ts";
import {
  type AppliedPoint,
  CommitPlan,
  costOf,
  type Current,
  plans,
  STATE_FORMAT,
  type StateLayout,
} from "./state_layout.ts";
import type { StateValue } from "./state_value.ts";
import { StorageCorruptionError } from "./storage_errors.ts";

/**
 * How many rows of generation `gen` keep their value in each log segment.
 *
 * @example
 * ```ts ignore
 * const counts = await countLogged(layout, gen); // Map { 3 => 17, 4 => 250 }
 * ```
 */
export async function countLogged(layout: StateLayout, gen: number): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for await (const e of layout.kv.list({ prefix: layout.key(gen, "l") })) {
    const segment = e.key[layout.prefix.length + 2];
    if (typeof segment !== "number") {
      throw new StorageCorruptionError(layout.where, `a logged-row listing is malformed`);
    }
    counts.set(segment, (counts.get(segment) ?? 0) + 1);
  }
  return counts;
}

/**
 * Checks that the first row listed under each log segment the rows point
 * into reads back whole (the segment is there, its record and value pass
 * their checks): a node whose log was wiped or damaged under its state
 * refuses to start instead of failing reads later.
 *
 * @throws {StorageCorruptionError} saying which segment is missing or damaged.
 *
 * @example
 * ```ts ignore
 * await checkLogged(layout, gen, counts);
 * ```
 */
export async function checkLogged(
  layout: StateLayout,
  gen: number,
  counts: Map<number, number>,
): Promise<void> {
  for (const segment of [...counts.keys()].sort((a, b) => a - b)) {
    for await (const e of layout.kv.list({ prefix: layout.key(gen, "l", segment) }, { limit: 1 })) {
      const key = e.key[e.key.length - 1] as string;
      const row = (await layout.kv.get<Uint8Array>(layout.key(gen, "d", key))).value;
      if (row === null) {
        throw new StorageCorruptionError(layout.where, `the listed row ${key} is missing`);
      }
      await layout.decodeValue(row, gen, `row ${JSON.stringify(key)}`);
    }
  }
}

/** What {@linkcode copyForward} needs of the store, and what it changed. */
export interface CopyForward {
  layout: StateLayout;
  gen: number;
  applied: AppliedPoint;
  nextPart: number;
  /** The rows rewritten (table + key → row and value), for the cache. */
  rows: Map<string, { row: Uint8Array; value: StateValue }>;
}

/**
 * Rewrites up to `maxRows` rows listed under log segment `segment` as
 * ordinary rows (their values read from the log, written in parts ahead),
 * deleting their listings, in one commit that also stores the next part id;
 * resolves how many it rewrote (0: none is left there).
 *
 * @example
 * ```ts ignore
 * const done = await copyForward(context, 3, 100);
 * ```
 */
export async function copyForward(
  ctx: CopyForward,
  segment: number,
  maxRows: number,
): Promise<number> {
  const { layout, gen } = ctx;
  const plan = new CommitPlan();
  const ahead: Mutation[] = [];
  const current = (nextPart: number): Mutation => ({
    type: "set",
    key: layout.key("current"),
    value: layout.encodeCurrent(
      {
        format: STATE_FORMAT,
        gen,
        applied: ctx.applied,
        nextPart,
      } satisfies Current,
    ),
  });
  const room = costOf(current(ctx.nextPart));
  let nextPart = ctx.nextPart;
  const listings = layout.kv.list({ prefix: layout.key(gen, "l", segment) }, { limit: maxRows });
  for await (const e of listings) {
    const key = e.key[e.key.length - 1] as string;
    const what = `row ${JSON.stringify(key)}`;
    const row = (await layout.kv.get<Uint8Array>(layout.key(gen, "d", key))).value;
    const at = row === null ? undefined : layout.logged(row, what)?.at;
    if (at?.segment !== segment) {
      throw new StateInvariantError(
        `${what} is listed under log segment ${segment} but does not point into it`,
      );
    }
    const value = await layout.decodeValue(row!, gen, what);
    const stored = layout.key(gen, "d", key);
    const encoded = layout.encodeValue(value, gen, nextPart, stored);
    const set: Mutation = { type: "set", key: stored, value: encoded.row };
    const unlist: Mutation = { type: "delete", key: e.key };
    const cost = [set, unlist].map(costOf).reduce((a, c) => ({
      mutations: a.mutations + c.mutations,
      bytes: a.bytes + c.bytes,
      keyBytes: a.keyBytes + c.keyBytes,
    }), room);
    if (!plan.fits(cost)) break;
    if (encoded.parts.length > 0) nextPart++;
    ahead.push(...encoded.parts);
    plan.add(set);
    plan.add(unlist);
    ctx.rows.set("d" + key, { row: encoded.row, value });
  }
  if (ctx.rows.size === 0) return 0;
  plan.add(current(nextPart));
  for (const p of plans(ahead)) await layout.commit(p);
  await layout.commit(plan);
  ctx.nextPart = nextPart;
  return ctx.rows.size;
}
