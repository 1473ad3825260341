/**
 * {@linkcode StateStore}: a replicated service's state (data rows, session
 * rows for deduplication, and the applied point they reflect) kept in Deno
 * KV, with a bounded read cache, so memory does not grow with the data.
 *
 * - A batch of applied entries is committed in as few commits as Deno KV's
 *   limits allow, each cut at an entry boundary and setting `applied` to
 *   its last entry: a crash leaves exactly some applied prefix. A value too
 *   big for one Deno KV value is written ahead in parts under a fresh id,
 *   which the row switches to in the commit that sets `applied`. An entry
 *   too big for one commit (a shard's page of thousands of keys) is written
 *   ahead as a redo record; the commit that sets `applied` points at it,
 *   and its rows follow (written again by `open` after a crash).
 * - A view streams the state at one point while writes go on
 *   (copy-on-write, see `state_view.ts`); `install` writes a stream into a
 *   fresh generation and switches to it with one commit of `current`.
 * - Garbage (parts no row points to, views' copies, redo records, old
 *   generations) is deleted a slice at a time after each batch, as many
 *   keys as it writes and `GARBAGE_PER_COMMIT` more (on its last commit as
 *   room allows): a serving store needs nothing else. {@linkcode StateStore.collectGarbage} deletes more at
 *   once. A crash forgets none of it: `open` finds it again.
 *
 * The layout is in `state_layout.ts`.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import { defaultCodec } from "../net/codec.ts";
import type { Mutation } from "./kv_limits.ts";
import { StorageCorruptionError } from "./storage_errors.ts";
import { listLimit, listRows, type StateListOptions } from "./state_list.ts";
import type { KvLike } from "./kv_like.ts";
import type { StateStoreOptions } from "./state_store_options.ts";
import { StateInstallError, StateInvariantError, StateStoreFailedError } from "./errors.ts";
import { ReadCache } from "./state_cache.ts";
import {
  type AppliedPoint,
  CommitPlan,
  copyPoint,
  type Current,
  plans,
  STATE_FORMAT,
  StateLayout,
  type Table,
} from "./state_layout.ts";
import { type StatePage, type StateView, View, type ViewState } from "./state_view.ts";
import { GenerationWriter, type StateInstall } from "./state_install.ts";
import { Batch, type StagedEntry, type StateBatch } from "./state_batch.ts";
import { finishRedo } from "./state_redo.ts";
import { IndexWaiters } from "./index_waiters.ts";
import { type Garbage, type Group, planCommits, takeDeletes } from "./state_plan.ts";
import type { LoggedValues } from "./state_logged.ts";
import { checkLogged, copyForward, countLogged } from "./state_logged_ops.ts";

/**
 * A replicated service's state in a {@linkcode KvLike} (see the module
 * doc). One writer at a time: batches, views and installs are serialized;
 * reads go beside them. The database is the caller's: `close` leaves it
 * open.
 *
 * @example
 * ```ts
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 * import assert from "node:assert/strict";
 *
 * const kv = new SimKv();
 * const store = await StateStore.open(kv);
 * const batch = store.batch();
 * batch.put("x", "hello");
 * batch.setSession("client-1", { seq: 1, result: true });
 * batch.endEntry({ index: 1, term: 1 });
 * await batch.commit();
 * assert.equal(await store.get("x"), "hello");
 * await store.close();
 * kv.close();
 *
 * const again = await StateStore.open(kv.reopen());
 * assert.equal(again.applied.index, 1);
 * assert.deepEqual(await again.session("client-1"), { seq: 1, result: true });
 * ```
 */
export class StateStore {
  readonly #layout: StateLayout;
  readonly #cache: ReadCache;
  /** Where rows are read: a connection of its own when given (`readKv`). */
  readonly #reads: KvLike;
  #gen = 1;
  #applied: AppliedPoint = { index: 0, term: 0 };
  #nextPart = 1;
  #nextGen = 2;
  #nextView = 1;
  /** Commits resolved (and installs): a read that began before one does not fill the cache. */
  #writes = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #failed: Error | undefined;
  #closed = false;
  #views = new Set<ViewState>();
  #garbage: Garbage[] = [];
  /** While an entry is redone: its rows, which reads see first. */
  #overlay: Map<string, { row: Uint8Array | null; value: StateValue | null }> | undefined;
  /** Garbage made while views were open: they may still read it. */
  #held: Garbage[] = [];
  /** Who waits for the applied index to reach theirs (`whenApplied`). */
  readonly #appliedWaiters = new IndexWaiters();
  /** The install being written, if any (one at a time: a new one supersedes it). */
  #installing: { writer: GenerationWriter; open: boolean } | undefined;
  /**
   * The session row holding the number of data rows, once the service asked
   * for it (`keepCount`), and that number as stored: each entry that changes
   * it writes the row, computed from the rows a commit reads anyway.
   */
  #count: { row: string; rows: number } | undefined;
  /** Per Raft log segment: the data rows that keep their value there (`state_logged.ts`). */
  #logged = new Map<number, number>();
  /** Per open view: the lowest segment a row pointed into when it opened (kept while it streams). */
  #viewPins = new Map<ViewState, number | undefined>();

  private constructor(kv: KvLike, options: StateStoreOptions) {
    this.#layout = new StateLayout(kv, {
      where: options.where ?? "state",
      prefix: options.prefix ?? ["state"],
      codec: options.codec ?? defaultCodec,
    });
    this.#cache = new ReadCache(options.cacheBytes ?? 16 * 1024 * 1024);
    this.#reads = options.readKv ?? kv;
  }

  /**
   * Opens the state in `kv` (empty if none), deleting what a crash left
   * half-written and finding the garbage to delete.
   *
   * @throws {StorageCorruptionError} when the stored state is damaged.
   */
  static async open(kv: KvLike, options: StateStoreOptions = {}): Promise<StateStore> {
    const store = new StateStore(kv, options);
    await store.#open();
    return store;
  }

  /** The applied point the state reflects. */
  get applied(): AppliedPoint {
    return copyPoint(this.#applied);
  }

  /** The generation in use (a new one with each install). */
  get generation(): number {
    return this.#gen;
  }

  /** The number of data rows as stored, when the store keeps it (`keepCount`). */
  get count(): number | undefined {
    return this.#count?.rows;
  }

  /**
   * From now on, keeps the number of data rows in the session row `row`
   * (encoded with the codec), written with every entry that changes it, so
   * that a service need not read each key it writes to count them; resolves
   * the number stored now (0 when the row is absent). A batch must not
   * write `row` itself. Every replica of a service must ask alike.
   *
   * @throws {StateInvariantError} when the store keeps its count in another row.
   * @throws {StorageCorruptionError} when the row is not a count.
   */
  keepCount(row: string): Promise<number> {
    return this.#exclusive(async () => {
      if (this.#count !== undefined && this.#count.row !== row) {
        throw new StateInvariantError(
          `the store keeps its count in session row ${this.#count.row}, not ${row}`,
        );
      }
      this.#count = { row, rows: await this.#storedCount(row) };
      return this.#count.rows;
    });
  }

  /** Garbage items waiting (free now, and held by open views). */
  get pendingGarbage(): number {
    return this.#garbage.length + this.#held.length;
  }

  /**
   * Reads the values rows keep in the Raft log through `values` (see
   * `state_logged.ts`), after checking that the log holds every segment the
   * rows point into and that the first row of each reads back whole.
   *
   * @throws {StorageCorruptionError} when the log lost or damaged what the rows point at.
   */
  useLog(values: LoggedValues): Promise<void> {
    return this.#exclusive(async () => {
      this.#layout.logValues = values;
      await checkLogged(this.#layout, this.#gen, this.#logged);
    });
  }

  /**
   * The lowest Raft log segment a row (or an open view's) keeps a value in;
   * undefined when none: the log must keep it and every segment after it.
   */
  lowestLoggedSegment(): number | undefined {
    let lowest = this.#lowestRowSegment();
    for (const pin of this.#viewPins.values()) {
      if (pin !== undefined && (lowest === undefined || pin < lowest)) lowest = pin;
    }
    return lowest;
  }

  /** The lowest segment a row of the state points into now (open views' pins aside). */
  #lowestRowSegment(): number | undefined {
    let lowest: number | undefined;
    for (const segment of this.#logged.keys()) {
      if (lowest === undefined || segment < lowest) lowest = segment;
    }
    return lowest;
  }

  /** How many data rows keep their value in each log segment. */
  get loggedRows(): ReadonlyMap<number, number> {
    return new Map(this.#logged);
  }

  /**
   * Rewrites up to `maxRows` rows that keep their value in log segment
   * `segment` as ordinary rows (one commit, the values read from the log),
   * so the log can let the segment go; resolves how many it rewrote (0:
   * none is left there). Open views are unaffected: a row rewritten holds
   * the same value (a view reading it reads the same), and what a view may
   * still read through a pointer (a row as of its point, or its copy) lies
   * at or above the segment it pinned when it opened, which the log keeps
   * until it closes (`lowestLoggedSegment`).
   */
  copyForward(segment: number, maxRows = 100): Promise<number> {
    return this.#exclusive(async () => {
      if (!this.#logged.has(segment)) return 0;
      const ctx = {
        layout: this.#layout,
        gen: this.#gen,
        applied: this.#applied,
        nextPart: this.#nextPart,
        rows: new Map(),
      };
      let done = 0;
      await this.#write(async () => {
        done = await copyForward(ctx, segment, maxRows);
      });
      this.#nextPart = ctx.nextPart;
      this.#writes++;
      for (const [tk, cached] of ctx.rows) this.#cache.set(tk, cached);
      this.#countLogged(new Map([[segment, -done]]));
      return done;
    });
  }

  /** The value of `key`, or null when absent. */
  get(key: string): Promise<StateValue | null> {
    return this.#read("d", key);
  }

  /** The session row of `client`, or undefined when none. */
  async session(client: string): Promise<unknown> {
    const bytes = await this.#read("s", client);
    if (bytes === null) return undefined;
    return this.#decodeSession(bytes, client);
  }

  /**
   * Resolves once the applied index is at least `index` (by batches or an
   * install); rejects if the store fails or is closed first.
   */
  whenApplied(index: number): Promise<void> {
    return this.#appliedWaiters.wait(index, this.#applied.index, () => this.#check());
  }

  /**
   * Up to `options.limit` committed rows whose keys start with `prefix`, in
   * UTF-8 order, read at one point (after the commits queued before it); a
   * batch's staged writes are not seen. See {@linkcode StateListOptions}.
   */
  list(prefix: string, options: StateListOptions = {}): Promise<[key: string, value: unknown][]> {
    listLimit(options);
    const decodeSession = (bytes: StateValue, client: string) => this.#decodeSession(bytes, client);
    const read = () =>
      listRows({ layout: this.#layout, gen: this.#gen, decodeSession }, prefix, options);
    return this.#exclusive(read);
  }

  /** A new batch: stage entries' writes, then commit them. */
  batch(): StateBatch {
    this.#check();
    return new Batch({
      layout: this.#layout,
      read: (table, key) => this.#read(table, key),
      decodeSession: (bytes, client) => this.#decodeSession(bytes, client),
      applied: () => this.#applied.index,
      countRow: () => this.#count?.row,
      commit: (entries) => this.#exclusive(() => this.#commit(entries)),
    });
  }

  /**
   * A view of the state as of now (after the batches in progress), to
   * stream while writes go on. Close it when done.
   */
  view(): Promise<StateView> {
    return this.#exclusive(() => {
      const state: ViewState = {
        id: this.#nextView++,
        gen: this.#gen,
        point: structuredClone(this.#applied),
        cursor: "",
        shadowed: new Set(),
        open: true,
      };
      this.#views.add(state);
      // Its rows as of now point at or above this: other views' pins are theirs (a pin taken
      // from them would never move up while views overlap, keeping every segment for ever).
      this.#viewPins.set(state, this.#lowestRowSegment());
      return Promise.resolve(
        new View(this.#layout, { state, onClose: (s) => this.#closeView(s) }),
      );
    });
  }

  /**
   * Replaces the state with a stream from {@linkcode StateView.pages}:
   * written into a fresh generation, switched to by one commit once the
   * whole stream is in and checked (the three steps of
   * {@linkcode StateStore.beginInstall} in a row).
   *
   * @throws {StateInstallError} when the stream is not a complete, valid
   * state, or is behind the store's applied point; the store is unchanged.
   */
  async install(pages: AsyncIterable<StatePage> | Iterable<StatePage>): Promise<void> {
    const install = await this.beginInstall();
    await install.write(pages);
    await install.switch();
  }

  /**
   * Begins replacing the state with a stream from
   * {@linkcode StateView.pages}, written page by page into a fresh
   * generation (see {@linkcode StateInstall}); an install begun before and
   * not switched is abandoned (a newer stream supersedes it). With `point`,
   * every page must be of its index and term, and the switch stores it
   * (a snapshot's membership with it).
   *
   * @throws {StateInstallError} when `point` is behind the store's applied point.
   */
  beginInstall(options: { point?: AppliedPoint } = {}): Promise<StateInstall> {
    return this.#exclusive(() => {
      const point = options.point === undefined ? undefined : structuredClone(options.point);
      if (point !== undefined && point.index < this.#applied.index) {
        throw new StateInstallError(
          `its point ${point.index} is behind the applied ${this.#applied.index}`,
        );
      }
      this.#dropInstall();
      const gen = this.#nextGen++;
      const writer = new GenerationWriter(this.#layout, { gen, point });
      const state = { writer, open: true };
      this.#installing = state;
      // A step of an install that was switched or abandoned is a caller's mistake.
      const step = <T>(fn: () => Promise<T>): Promise<T> =>
        this.#exclusive(async () => {
          if (!state.open) {
            throw new StateInstallError(
              `the install into generation ${gen} was switched, abandoned or superseded`,
            );
          }
          try {
            return await fn();
          } catch (err) {
            if (this.#installing === state) this.#dropInstall();
            throw err;
          }
        });
      return Promise.resolve(
        {
          generation: gen,
          get rows() {
            return writer.rows;
          },
          get complete() {
            return writer.complete;
          },
          // A failed write leaves the store as it was (the generation is not in use): it goes on.
          write: (pages) => step(() => writer.write(pages)),
          switch: () => step(() => this.#switch(writer, point)),
          abandon: () =>
            this.#exclusive(() => {
              if (this.#installing === state) this.#dropInstall();
              return Promise.resolve();
            }),
        } satisfies StateInstall,
      );
    });
  }

  /** Forgets the install in progress, if any: what it wrote is garbage. */
  #dropInstall(): void {
    const state = this.#installing;
    if (state === undefined) return;
    this.#installing = undefined;
    state.open = false;
    this.#garbage.push({ kind: "range", selector: { prefix: this.#layout.key(state.writer.gen) } });
  }

  /** Switches to a complete install's generation with one commit of `current`. */
  async #switch(writer: GenerationWriter, given: AppliedPoint | undefined): Promise<void> {
    const written = writer.finish();
    const point = given ?? written.point;
    if (point.index < this.#applied.index) {
      throw new StateInstallError(
        `its point ${point.index} is behind the applied ${this.#applied.index}`,
      );
    }
    const gen = writer.gen;
    const current: Current = {
      format: STATE_FORMAT,
      gen,
      applied: point,
      nextPart: written.nextPart,
    };
    const plan = new CommitPlan();
    plan.add({ type: "set", key: this.#layout.key("current"), value: this.#encode(current) });
    await this.#write(() => this.#layout.commit(plan));
    this.#installing!.open = false;
    this.#installing = undefined;
    const old = this.#gen;
    this.#gen = gen;
    this.#applied = point;
    this.#nextPart = written.nextPart;
    this.#writes++;
    this.#cache.clear();
    // An install holds every value in its rows: nothing of it points into this node's log.
    this.#logged.clear();
    if (this.#count) this.#count.rows = await this.#storedCount(this.#count.row);
    // The old generation's part garbage goes with it.
    this.#garbage = this.#garbage.filter((g) => g.kind !== "parts" || g.gen !== old);
    this.#held = this.#held.filter((g) => g.kind !== "parts" || g.gen !== old);
    this.#addGarbage({ kind: "range", selector: { prefix: this.#layout.key(old) } });
    this.#appliedWaiters.reached(this.#applied.index);
  }

  /**
   * Deletes up to `maxKeys` keys of garbage; resolves how many it deleted
   * (0: nothing left but what open views hold).
   */
  collectGarbage(maxKeys = 1000): Promise<number> {
    return this.#exclusive(async () => {
      let deleted = 0;
      while (deleted < maxKeys && this.#garbage.length > 0) {
        const deletes = await takeDeletes(this.#garbage, this.#layout, {
          limit: Math.min(maxKeys - deleted, 1000),
        });
        await this.#write(() => this.#layout.commitAll(deletes));
        deleted += deletes.length;
      }
      return deleted;
    });
  }

  /** Waits for the work in progress; the store is unusable after. The database stays open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#appliedWaiters.fail(
      new Error("the state store closed before reaching the index waited for"),
    );
    await this.#queue.catch(() => {});
    for (const view of this.#views) view.open = false;
    this.#views.clear();
  }

  // ---- internals ----

  async #open(): Promise<void> {
    const layout = this.#layout;
    const kv = layout.kv;
    const stored = (await kv.get<Uint8Array>(layout.key("current"))).value;
    if (stored !== null) {
      const current = layout.decodeCurrent(stored);
      if (current.redo) await finishRedo(layout, current);
      this.#gen = current.gen;
      this.#applied = current.applied;
      this.#nextPart = current.nextPart;
    }
    const gen = this.#gen;
    this.#logged = await countLogged(layout, gen);
    // Parts and redo records written ahead of a commit a crash prevented: their ids will be
    // used again, so they go now (as garbage, one could be deleted under its successor, or
    // read as part of it: review31 F1, F1b).
    const ahead: Mutation[] = [];
    for (const table of ["p", "r"]) {
      const selector = {
        prefix: layout.key(gen, table),
        start: layout.key(gen, table, this.#nextPart),
      };
      for await (const e of kv.list(selector)) ahead.push({ type: "delete", key: e.key });
    }
    await layout.commitAll(ahead);
    // Redo records (none is in use now) and garbage a crash made the store forget.
    const redone = { start: layout.key(gen, "r"), end: layout.key(gen, "r", this.#nextPart) };
    for await (const _ of kv.list(redone, { limit: 1 })) {
      this.#garbage.push({ kind: "range", selector: redone });
    }
    for await (const e of kv.list<Uint8Array>({ prefix: layout.key(gen, "g") })) {
      const id = e.key[e.key.length - 1] as number;
      const count = await layout.decodeValue(e.value, gen, `garbage row ${id}`);
      if (!(count instanceof Uint8Array) || count.length !== 4) {
        throw new StorageCorruptionError(layout.where, `garbage row ${id} is malformed`);
      }
      const parts = new DataView(count.buffer, count.byteOffset).getUint32(0);
      this.#garbage.push({ kind: "parts", gen, id, count: parts, next: 0 });
    }
    for await (const e of kv.list({ prefix: layout.key(gen, "v") }, { reverse: true, limit: 1 })) {
      this.#nextView = (e.key[layout.prefix.length + 2] as number) + 1;
      this.#garbage.push({
        kind: "range",
        selector: { prefix: layout.key(gen, "v"), end: layout.key(gen, "v", this.#nextView) },
      });
    }
    // Other generations: replaced, or installs a crash cut short.
    const gens = { prefix: layout.prefix, start: layout.key(0) };
    let low = gen;
    let high = gen;
    for await (const e of kv.list(gens, { limit: 1 })) low = e.key[layout.prefix.length] as number;
    for await (const e of kv.list(gens, { limit: 1, reverse: true })) {
      high = e.key[layout.prefix.length] as number;
    }
    if (low < gen) {
      this.#garbage.push({
        kind: "range",
        selector: { start: layout.key(low), end: layout.key(gen) },
      });
    }
    if (high > gen) {
      this.#garbage.push({
        kind: "range",
        selector: { start: layout.key(gen + 1), end: layout.key(high + 1) },
      });
    }
    this.#nextGen = Math.max(gen, high) + 1;
  }

  #check(): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new Error("the state store is closed; open it again to use it");
  }

  /** Runs `fn` after everything queued before it, alone. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.catch(() => {}).then(() => {
      this.#check();
      return fn();
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Runs a write; one that fails leaves memory and disk apart, so the store stops. */
  async #write(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.#failed = new StateStoreFailedError(err);
      this.#appliedWaiters.fail(this.#failed);
      throw this.#failed;
    }
  }

  async #read(table: Table, key: string): Promise<StateValue | null> {
    this.#check();
    const tk = table + key;
    for (;;) {
      const redone = this.#overlay?.get(tk);
      if (redone) return redone.value;
      const hit = this.#cache.get(tk);
      if (hit && hit.value !== undefined) return hit.value;
      const writes = this.#writes;
      const gen = this.#gen;
      const row = hit ? hit.row : (await this.#reads.get<Uint8Array>(
        this.#layout.key(gen, table, key),
      )).value;
      try {
        const value = row === null
          ? null
          : await this.#layout.decodeValue(row, gen, `row ${JSON.stringify(key)}`, this.#reads);
        if (writes === this.#writes) this.#cache.set(tk, { row, value });
        return value;
      } catch (err) {
        // Its parts were deleted under it: the row changed meanwhile; read it again. (A commit
        // deletes a cut value's parts with the row, so the read may fail before `#writes` moves.)
        if (
          err instanceof StorageCorruptionError &&
          (writes !== this.#writes || !(await this.#stillStored(gen, tk, row)))
        ) continue;
        throw err;
      }
    }
  }

  /** Whether generation `gen` still stores `row` under `tk` (table + key). */
  async #stillStored(gen: number, tk: string, row: Uint8Array | null): Promise<boolean> {
    if (gen !== this.#gen) return false;
    const now = (await this.#reads.get<Uint8Array>(this.#layout.key(gen, tk[0], tk.slice(1))))
      .value;
    return now !== null && row !== null && now.length === row.length &&
      now.every((b, i) => b === row[i]);
  }

  /** The stored rows of `tks` (table + key), from the cache or the database. */
  async #rows(tks: string[]): Promise<Map<string, Uint8Array | null>> {
    const out = new Map<string, Uint8Array | null>();
    const missing: string[] = [];
    for (const tk of tks) {
      const hit = this.#cache.get(tk);
      if (hit) out.set(tk, hit.row);
      else missing.push(tk);
    }
    for (let at = 0; at < missing.length; at += 10) {
      const slice = missing.slice(at, at + 10);
      const entries = await this.#reads.getMany<Uint8Array[]>(
        slice.map((tk) => this.#layout.key(this.#gen, tk[0], tk.slice(1))),
      );
      slice.forEach((tk, i) => out.set(tk, entries[i].value));
    }
    return out;
  }

  /** The count held in session row `row` (0 when absent). */
  async #storedCount(row: string): Promise<number> {
    const bytes = await this.#read("s", row);
    const n = bytes === null ? 0 : this.#decodeSession(bytes, row);
    if (!Number.isSafeInteger(n) || (n as number) < 0) {
      throw new StorageCorruptionError(this.#layout.where, `the count row ${row} is not a count`);
    }
    return n as number;
  }

  #decodeSession(bytes: StateValue, client: string): unknown {
    if (!(bytes instanceof Uint8Array)) {
      throw new StorageCorruptionError(this.#layout.where, `session ${client} is not bytes`);
    }
    try {
      return this.#layout.codec.decode(bytes);
    } catch {
      throw new StorageCorruptionError(this.#layout.where, `session ${client} cannot be decoded`);
    }
  }

  #encode(current: Current): Uint8Array {
    return this.#layout.encodeCurrent(current);
  }

  /**
   * Commits staged entries: cut into groups that each fit one commit (their
   * parts written ahead), each group's commit setting `applied` to its last
   * entry.
   */
  async #commit(entries: StagedEntry[]): Promise<void> {
    if (entries.length === 0) return;
    let last = this.#applied.index;
    for (const e of entries) {
      if (!(e.point.index > last)) {
        throw new StateInvariantError(
          `applied would go from ${last} to ${e.point.index}: applied never decreases`,
        );
      }
      last = e.point.index;
    }
    const groups = await this.#plan(entries);
    for (const group of groups) {
      await this.#write(async () => {
        for (const plan of plans(group.ahead)) await this.#layout.commit(plan);
        await this.#layout.commit(group.plan);
        if (group.redo) await this.#redo(group);
        for (const plan of plans(group.after ?? [])) await this.#layout.commit(plan);
      });
      if (!(group.point.index > this.#applied.index)) {
        throw new StateInvariantError("applied never decreases");
      }
      this.#applied = group.point;
      this.#nextPart = group.nextPart;
      if (this.#count && group.count !== undefined) this.#count.rows = group.count;
      this.#countLogged(group.logged);
      this.#writes++;
      for (const [tk, cached] of group.rows) this.#cache.set(tk, cached);
      for (const g of group.garbage) this.#addGarbage(g);
      for (const [view, tk] of group.copies) view.shadowed.add(tk);
      this.#appliedWaiters.reached(this.#applied.index);
    }
  }

  /**
   * Applies a redo group's mutations after the commit that set `applied`
   * (and pointed `current` at the record), then clears the pointer. Reads
   * meanwhile see the entry whole, through the overlay.
   */
  async #redo(group: Group): Promise<void> {
    const redo = group.redo!;
    this.#overlay = group.rows;
    this.#writes++;
    try {
      await this.#layout.commitAll(redo.mutations);
      const current: Current = {
        format: STATE_FORMAT,
        gen: this.#gen,
        applied: group.point,
        nextPart: group.nextPart,
      };
      const plan = new CommitPlan();
      plan.add({ type: "set", key: this.#layout.key("current"), value: this.#encode(current) });
      await this.#layout.commit(plan);
    } finally {
      this.#overlay = undefined;
    }
    this.#addGarbage({
      kind: "range",
      selector: { prefix: this.#layout.key(this.#gen, "r", redo.id) },
    });
  }

  /** The groups of commits for `entries`; nothing is written. */
  #plan(entries: StagedEntry[]): Promise<Group[]> {
    return planCommits({
      layout: this.#layout,
      gen: this.#gen,
      count: this.#count,
      nextPart: this.#nextPart,
      applied: this.#applied,
      views: this.#views,
      rows: (tks) => this.#rows(tks),
      encode: (current) => this.#encode(current),
      takeDeletes: (limit) => takeDeletes(this.#garbage, this.#layout, { limit }),
    }, entries);
  }

  /** Moves the counts of rows kept in each log segment by `deltas`; none goes below 0. */
  #countLogged(deltas: Map<number, number>): void {
    for (const [segment, by] of deltas) {
      const rows = (this.#logged.get(segment) ?? 0) + by;
      if (!(rows >= 0)) {
        throw new StateInvariantError(`the rows kept in log segment ${segment} went to ${rows}`);
      }
      if (rows === 0) this.#logged.delete(segment);
      else this.#logged.set(segment, rows);
    }
  }

  #addGarbage(g: Garbage): void {
    if (this.#views.size > 0) this.#held.push(g);
    else this.#garbage.push(g);
  }

  #closeView(view: ViewState): void {
    this.#views.delete(view);
    this.#viewPins.delete(view);
    // Its copies are garbage once the work in progress is done: a batch planned while it was
    // open may still write some, after listing the range empty (review31 F2).
    this.#queue = this.#queue.then(() => {
      this.#garbage.push({
        kind: "range",
        selector: { prefix: this.#layout.key(view.gen, "v", view.id) },
      });
      if (this.#views.size === 0) {
        this.#garbage.push(...this.#held);
        this.#held = [];
      }
    });
  }
}
