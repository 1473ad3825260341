/**
 * The follower's half of streaming a stored state (see `storeSource` in
 * `stored_machine.ts`): a {@linkcode SnapshotSink} that decodes each chunk
 * into pages and writes them into a fresh generation of the store before
 * the chunk is acknowledged, carrying over only a page a chunk cuts; the
 * last chunk switches the store, once the items handed out before are
 * stored. So a follower holds a chunk and at most one page, never the state.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { deadline } from "../net/async.ts";
import { concatBytes } from "../net/bytes.ts";
import type { Membership, SnapshotMeta, SnapshotSink } from "../raft/mod.ts";
import { invariant } from "../raft/invariant.ts";
import { StateInstallError } from "../store/errors.ts";
import type { StateInstall } from "../store/state_install.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import type { StateStore } from "../store/state_store.ts";
import type { StatePage } from "../store/state_view.ts";

/** Bytes of a page's length prefix in a stream of pages. */
export const FRAME_PREFIX = 4;

/**
 * How a {@linkcode StoreSink} takes a snapshot that is not a stream of pages
 * (a replica of the same service that keeps its state in memory sent it).
 *
 * @example
 * ```ts
 * import type { StoreSinkOptions } from "./stored_sink.ts";
 *
 * const options: StoreSinkOptions = { isForeign: (head) => head[0] === 0x80, convert: () => [] };
 * ```
 */
export interface StoreSinkOptions {
  /** Whether a snapshot, by its first chunk, is in another form. */
  isForeign?(head: Uint8Array): boolean;
  /** The pages of a whole snapshot in another form, as of `point`. */
  convert?(data: Uint8Array, point: AppliedPoint): Iterable<StatePage>;
}

/**
 * Writes a stored state streamed by a leader into `store` (see the module
 * doc); `codec` is the pages' (the leader's `storeSource`'s).
 *
 * @example
 * ```ts
 * import { StoreSink } from "./stored_sink.ts";
 * import { SimKv, StateStore } from "../store/mod.ts";
 *
 * const sink = new StoreSink(await StateStore.open(new SimKv()));
 * sink.installed(); // undefined: the store holds no installed snapshot
 * ```
 */
export class StoreSink implements SnapshotSink {
  readonly #store: StateStore;
  readonly #codec: Codec;
  readonly #foreign: StoreSinkOptions;
  #install: StateInstall | undefined;
  #point: AppliedPoint | undefined;
  /** Whether the stream's first chunk is still to come (its bytes tell its form). */
  #first = false;
  /** A snapshot in another form (see `StoreSinkOptions`), gathered to be converted at its end. */
  #gathered: Uint8Array[] | undefined;
  /** A page's length prefix a chunk cut, so far. */
  readonly #header = new Uint8Array(FRAME_PREFIX);
  #headerBytes = 0;
  /** A page a chunk cut: its bytes so far. */
  #page: Uint8Array | undefined;
  #pageBytes = 0;
  #peak = 0;

  /**
   * Creates the sink.
   *
   * @param store Where the state goes.
   * @param codec The pages' codec. Default: the shared codec.
   * @param options How to take a snapshot in another form (a replica keeping its state in memory).
   */
  constructor(store: StateStore, codec: Codec = defaultCodec, options: StoreSinkOptions = {}) {
    this.#store = store;
    this.#codec = codec;
    this.#foreign = options;
  }

  /** The most bytes held at once: a chunk being written plus a page carried over. */
  get peakBytes(): number {
    return this.#peak;
  }

  /** A stream of the state as of `meta` begins: the one being received is abandoned. */
  async begin(meta: SnapshotMeta): Promise<void> {
    await this.abandon();
    const point: AppliedPoint = {
      index: meta.index,
      term: meta.term,
      membership: meta.membership,
      ...(meta.membershipIndex === undefined ? {} : { membershipIndex: meta.membershipIndex }),
    };
    this.#install = await this.#store.beginInstall({ point });
    this.#point = point;
    this.#first = true;
  }

  /**
   * Decodes the chunk's pages (with the page the last chunk cut) and
   * writes them; resolves once they are committed.
   *
   * @throws {StateInstallError} when the bytes are not a stream of pages.
   */
  async write(chunk: Uint8Array): Promise<void> {
    const install = this.#install;
    invariant(install !== undefined, "a snapshot chunk was written before its stream began");
    const first = this.#first;
    this.#first = false;
    if (first && this.#foreign.isForeign?.(chunk) && this.#foreign.convert) this.#gathered = [];
    if (this.#gathered !== undefined) {
      // Another form is whole only at its end: it is gathered (its sender held it whole too).
      this.#gathered.push(chunk.slice());
      return;
    }
    const pages = this.#pages(chunk);
    this.#peak = Math.max(this.#peak, chunk.length + (this.#page?.length ?? 0));
    await install.write(pages);
  }

  /**
   * Switches the store to the stream, once the store holds every item
   * handed out before (through `after`).
   *
   * @throws {StateInstallError} when the stream ends inside a page or is incomplete.
   */
  async finish(options: { after: number; signal: AbortSignal }): Promise<void> {
    const install = this.#install;
    invariant(install !== undefined, "a snapshot stream was finished before it began");
    const gathered = this.#gathered;
    if (gathered !== undefined) {
      this.#gathered = undefined;
      const data = concatBytes(gathered, gathered.reduce((n, c) => n + c.length, 0));
      await install.write(this.#foreign.convert!(data, this.#point!));
    }
    if (this.#page !== undefined || this.#headerBytes > 0) {
      throw new StateInstallError(
        "it ends inside a page: it is not a stream of a stored machine's store; every replica " +
          "of a service must store its state alike",
      );
    }
    const { signal } = options;
    await deadline(this.#store.whenApplied(options.after), { timeoutMs: Infinity, signal });
    signal.throwIfAborted();
    await install.switch();
    this.#install = undefined;
  }

  /** Abandons the stream being received, if any. */
  async abandon(): Promise<void> {
    const install = this.#install;
    this.#install = undefined;
    this.#gathered = undefined;
    this.#page = undefined;
    this.#pageBytes = this.#headerBytes = 0;
    await install?.abandon();
  }

  /** The snapshot the store was switched to, while it reflects nothing applied since. */
  installed(): SnapshotMeta | undefined {
    const point = this.#store.applied;
    const membership = point.membership as Membership | undefined;
    if (!Array.isArray(membership?.voters) || !Array.isArray(membership.learners)) return undefined;
    return {
      index: point.index,
      term: point.term,
      membership,
      ...(point.membershipIndex === undefined ? {} : { membershipIndex: point.membershipIndex }),
    };
  }

  /** The pages `chunk` completes; a page it cuts is carried over (allocated once, at its size). */
  #pages(chunk: Uint8Array): StatePage[] {
    const pages: StatePage[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#page === undefined) {
        const n = Math.min(FRAME_PREFIX - this.#headerBytes, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerBytes);
        this.#headerBytes += n;
        at += n;
        if (this.#headerBytes < FRAME_PREFIX) break;
        this.#headerBytes = 0;
        const length = new DataView(this.#header.buffer).getUint32(0);
        if (length > this.#codec.maxMessageBytes) {
          throw new StateInstallError(
            `a page of ${length} bytes is over the codec's ${this.#codec.maxMessageBytes}`,
          );
        }
        if (at + length <= chunk.length) {
          // Whole in this chunk: decoded where it is, not copied.
          pages.push(this.#decode(chunk.subarray(at, at + length)));
          at += length;
          continue;
        }
        this.#page = new Uint8Array(length);
        this.#pageBytes = 0;
      }
      const n = Math.min(this.#page.length - this.#pageBytes, chunk.length - at);
      this.#page.set(chunk.subarray(at, at + n), this.#pageBytes);
      this.#pageBytes += n;
      at += n;
      if (this.#pageBytes === this.#page.length) {
        pages.push(this.#decode(this.#page));
        this.#page = undefined;
      }
    }
    return pages;
  }

  #decode(bytes: Uint8Array): StatePage {
    try {
      return this.#codec.decode(bytes) as StatePage;
    } catch (err) {
      throw new StateInstallError(`a page cannot be decoded (${(err as Error).message})`);
    }
  }
}
