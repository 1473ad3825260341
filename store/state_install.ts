/**
 * Writes a state stream into a fresh generation of a state store, checking
 * it as it goes: the caller switches to the generation only when this
 * resolves (the whole stream is in, counted and digested).
 *
 * @module
 */
import type { Mutation } from "./kv_limits.ts";
import { StateInstallError, StateInvariantError, StateLimitError } from "./errors.ts";
import { type AppliedPoint, CommitPlan, costOf, type StateLayout } from "./state_layout.ts";
import { digestRow, EMPTY_DIGEST, type StatePage, type StateRow } from "./state_view.ts";

/**
 * Writes `pages` under generation `gen` (which must hold nothing), in
 * commits within the limits; resolves the stream's point and the next free
 * part id once every page is in and the count and digest match.
 *
 * @example
 * ```ts ignore
 * const { point } = await writeGeneration(layout, { gen: 7, pages: view.pages() });
 * ```
 *
 * @throws {StateInstallError} when the stream is not a complete, valid state.
 */
export async function writeGeneration(
  layout: StateLayout,
  options: { gen: number; pages: AsyncIterable<StatePage> | Iterable<StatePage> },
): Promise<{ point: AppliedPoint; nextPart: number }> {
  const { gen, pages } = options;
  let plan = new CommitPlan();
  let nextPart = 1;
  let seq = 0;
  let count = 0;
  let digest = EMPTY_DIGEST;
  let point: AppliedPoint | undefined;
  let last: { count: number; digest: number } | undefined;
  const add = async (m: Mutation) => {
    const cost = costOf(m);
    if (!plan.fits(cost)) {
      await layout.commit(plan);
      plan = new CommitPlan();
    }
    plan.add(m);
  };
  for await (const page of pages) {
    if (last !== undefined) throw new StateInstallError(`page ${page?.seq} follows the last page`);
    if (page?.seq !== seq) throw new StateInstallError(`page ${seq} is missing (got ${page?.seq})`);
    seq++;
    if (!Number.isSafeInteger(page.point?.index) || !Number.isSafeInteger(page.point.term)) {
      throw new StateInstallError(`page ${page.seq} has no valid applied point`);
    }
    if (point === undefined) point = structuredClone(page.point);
    else if (page.point.index !== point.index || page.point.term !== point.term) {
      throw new StateInstallError(`page ${page.seq} is of another point than page 0`);
    }
    if (!Array.isArray(page.rows)) throw new StateInstallError(`page ${page.seq} has no rows`);
    for (const row of page.rows) {
      checkRow(row, page.seq, layout);
      const [table, key, value] = row;
      count++;
      digest = digestRow(digest, row);
      const encoded = layout.encodeValue(value, gen, nextPart);
      if (encoded.parts.length > 0) nextPart++;
      for (const m of encoded.parts) await add(m);
      await add({ type: "set", key: layout.key(gen, table, key), value: encoded.row });
    }
    if (page.last !== undefined) last = page.last;
  }
  if (point === undefined || last === undefined) {
    throw new StateInstallError("the stream ended before its last page");
  }
  if (last.count !== count || last.digest !== digest) {
    throw new StateInstallError(
      `it holds ${count} rows with digest ${digest}, but its last page says ${last.count} ` +
        `with digest ${last.digest}`,
    );
  }
  await layout.commit(plan);
  // The switch is only to a complete generation.
  if (!(last.count === count && point !== undefined)) {
    throw new StateInvariantError("an install would switch to an incomplete generation");
  }
  return { point, nextPart };
}

/** Refuses a row that is not [table, key, value] with a key the store can hold. */
function checkRow(row: StateRow, seq: number, layout: StateLayout): void {
  const [table, key, value] = Array.isArray(row) ? row : [];
  const valueOk = table === "s"
    ? value instanceof Uint8Array
    : typeof value === "string" || value instanceof Uint8Array;
  if ((table !== "d" && table !== "s") || typeof key !== "string" || !valueOk) {
    throw new StateInstallError(`page ${seq} has a malformed row`);
  }
  try {
    layout.checkKey(table, key);
  } catch (err) {
    if (err instanceof StateLimitError) throw new StateInstallError(err.message);
    throw err;
  }
}
