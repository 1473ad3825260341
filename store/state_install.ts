/**
 * Writes a state stream into a fresh generation of a state store, checking
 * it as it goes, page by page: the caller switches to the generation only
 * once {@linkcode GenerationWriter.finish} says the whole stream is in
 * (counted and digested). Each `write` commits what it was given before it
 * resolves, so a receiver that acknowledges a chunk once it is written
 * holds no more than that chunk's pages.
 *
 * @module
 */
import { MAX_MUTATIONS, type Mutation } from "./kv_limits.ts";
import { StateInstallError, StateInvariantError, StateLimitError } from "./errors.ts";
import { type AppliedPoint, CommitPlan, costOf, type StateLayout } from "./state_layout.ts";
import { digestRow, EMPTY_DIGEST, type StatePage, type StateRow } from "./state_view.ts";

/**
 * Writes the pages of one stream under generation `gen` (which must hold
 * nothing), in commits within the limits.
 *
 * @example
 * ```ts ignore
 * const writer = new GenerationWriter(layout, { gen: 7 });
 * await writer.write(view.pages());
 * const { point, nextPart } = writer.finish();
 * ```
 */
export class GenerationWriter {
  readonly #layout: StateLayout;
  readonly gen: number;
  /** The point every page must be of (index and term), when known before the first page. */
  readonly #expected: AppliedPoint | undefined;
  #nextPart = 1;
  #seq = 0;
  #count = 0;
  #digest = EMPTY_DIGEST;
  #point: AppliedPoint | undefined;
  #last: { count: number; digest: number } | undefined;

  /**
   * Creates the writer.
   *
   * @param layout The store's layout.
   * @param options The fresh generation, and the point the stream must be of (if known).
   */
  constructor(layout: StateLayout, options: { gen: number; point?: AppliedPoint }) {
    this.#layout = layout;
    this.gen = options.gen;
    this.#expected = options.point;
  }

  /** Rows written so far. */
  get rows(): number {
    return this.#count;
  }

  /** Whether the last page is in. */
  get complete(): boolean {
    return this.#last !== undefined;
  }

  /**
   * Writes the next pages of the stream; resolves once they are committed.
   *
   * @throws {StateInstallError} when a page is out of order, of another
   * point, malformed, or follows the last page.
   */
  async write(pages: AsyncIterable<StatePage> | Iterable<StatePage>): Promise<void> {
    const layout = this.#layout;
    // A fresh generation's commits carry nothing else: as many mutations as Deno KV takes.
    const newPlan = () => new CommitPlan({ mutations: MAX_MUTATIONS });
    let plan = newPlan();
    // One commit in flight while the next is made: the rows' work overlaps the write. Their
    // order does not matter (nothing reads the generation before the switch); all are in
    // before `write` resolves.
    let committing: Promise<void> = Promise.resolve();
    const flush = async () => {
      const full = plan;
      plan = newPlan();
      await committing;
      committing = layout.commit(full);
      committing.catch(() => {}); // awaited by the next flush, or at the end
    };
    const add = async (m: Mutation) => {
      const cost = costOf(m);
      if (!plan.fits(cost)) await flush();
      plan.add(m, cost);
    };
    try {
      for await (const page of pages) {
        this.#check(page);
        for (const row of page.rows) {
          checkRow(row, page.seq, layout);
          const [table, key, value] = row;
          this.#count++;
          this.#digest = digestRow(this.#digest, row);
          const stored = layout.key(this.gen, table, key);
          const encoded = layout.encodeValue(value, this.gen, this.#nextPart, stored);
          if (encoded.parts.length > 0) this.#nextPart++;
          for (const m of encoded.parts) await add(m);
          await add({ type: "set", key: stored, value: encoded.row });
        }
        if (page.last !== undefined) this.#last = page.last;
      }
      await flush();
      await committing;
    } finally {
      // A failed write leaves nothing landing in the generation after it (it becomes garbage).
      await committing.catch(() => {});
    }
  }

  /**
   * The stream's point and the next free part id, once the whole stream is
   * in and its count and digest match.
   *
   * @throws {StateInstallError} when the stream is incomplete or does not match its last page.
   */
  finish(): { point: AppliedPoint; nextPart: number } {
    const point = this.#point;
    const last = this.#last;
    if (point === undefined || last === undefined) {
      throw new StateInstallError("the stream ended before its last page");
    }
    if (last.count !== this.#count || last.digest !== this.#digest) {
      throw new StateInstallError(
        `it holds ${this.#count} rows with digest ${this.#digest}, but its last page says ` +
          `${last.count} with digest ${last.digest}`,
      );
    }
    // The switch is only to a complete generation.
    if (!(last.count === this.#count && this.#seq > 0)) {
      throw new StateInvariantError("an install would switch to an incomplete generation");
    }
    return { point: structuredClone(point), nextPart: this.#nextPart };
  }

  #check(page: StatePage): void {
    if (this.#last !== undefined) {
      throw new StateInstallError(`page ${page?.seq} follows the last page`);
    }
    if (page?.seq !== this.#seq) {
      throw new StateInstallError(`page ${this.#seq} is missing (got ${page?.seq})`);
    }
    this.#seq++;
    if (!Number.isSafeInteger(page.point?.index) || !Number.isSafeInteger(page.point.term)) {
      throw new StateInstallError(`page ${page.seq} has no valid applied point`);
    }
    const point = this.#point ?? this.#expected ?? page.point;
    if (page.point.index !== point.index || page.point.term !== point.term) {
      throw new StateInstallError(
        `page ${page.seq} is of point ${page.point.index} (term ${page.point.term}), not of ` +
          `${point.index} (term ${point.term})`,
      );
    }
    this.#point ??= structuredClone(this.#expected ?? page.point);
    if (!Array.isArray(page.rows)) throw new StateInstallError(`page ${page.seq} has no rows`);
  }
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

/**
 * An install in progress (from `StateStore.beginInstall`): a state stream
 * written page by page into a fresh generation, then switched to with one
 * commit, or abandoned. Its steps run one at a time with the store's other
 * writes; the store's state is unchanged until the switch.
 *
 * @example
 * ```ts
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 *
 * const from = await StateStore.open(new SimKv());
 * const b = from.batch();
 * b.put("x", "1");
 * b.endEntry({ index: 4, term: 2 });
 * await b.commit();
 * const view = await from.view();
 * const to = await StateStore.open(new SimKv());
 * const install = await to.beginInstall({ point: { index: 4, term: 2 } });
 * for await (const page of view.pages()) await install.write([page]);
 * view.close();
 * await install.switch();
 * await to.get("x"); // "1"
 * ```
 */
export interface StateInstall {
  /** The generation written (a fresh one). */
  readonly generation: number;
  /** Rows written so far. */
  readonly rows: number;
  /** Whether the stream's last page is in (it may be switched to). */
  readonly complete: boolean;
  /**
   * Writes the next pages; resolves once they are committed. A page that
   * does not follow (missing, of another point, malformed) abandons the
   * install.
   *
   * @throws {StateInstallError} when a page is not the next of a valid stream.
   */
  write(pages: AsyncIterable<StatePage> | Iterable<StatePage>): Promise<void>;
  /**
   * Makes the generation the store's state, with one commit of its applied
   * point (the one given to `beginInstall`, membership included, else the
   * stream's). The old generation becomes garbage.
   *
   * @throws {StateInstallError} when the stream is incomplete or does not
   * match its last page, or is behind the store's applied point (the
   * install is abandoned; the store is unchanged).
   */
  switch(): Promise<void>;
  /** Drops the install: what it wrote is garbage, collected a slice at a time. */
  abandon(): Promise<void>;
}
