/**
 * The state a primary keeps and copies to its backup: the data and the
 * deduplication table (per client session, the last write applied), in
 * pages of bounded size for a transfer.
 *
 * @module
 */
import { type DedupEntry, DedupTable, type DedupVerdict, digestBytes } from "../rsm/dedup.ts";
import { utf8Length } from "../net/bytes.ts";
import { ArgumentsError } from "../net/errors.ts";
import type { PbWriteRequest } from "./kv_protocol.ts";

/** What the deduplication table remembers of an applied write: only that it was. */
type Applied = true;

/** One page of a state transfer. */
export interface StorePage {
  /** Key/value pairs. */
  data: [string, string][];
  /** Deduplication entries (they come after all the data). */
  sessions: [string, DedupEntry<Applied>][];
}

/** Roughly what a session entry costs on the wire besides its id. */
const SESSION_BYTES = 32;

const encoder = new TextEncoder();

/** The digest of a write, to tell a retry from another write under the same number. */
function digestOf(w: PbWriteRequest): number {
  return digestBytes(encoder.encode(`${w.op}\u0000${w.key}\u0000${w.value}`));
}

/**
 * The data and the deduplication table. Writes are applied once: a write
 * whose session and number were applied before is recognised by
 * {@linkcode PbStore.check}.
 */
export class PbStore {
  readonly #data: Map<string, string>;
  readonly #dedup: DedupTable<Applied>;

  /** An empty store, or one made of these parts. */
  constructor(
    data = new Map<string, string>(),
    dedup = new DedupTable<Applied>(),
  ) {
    this.#data = data;
    this.#dedup = dedup;
  }

  /** The value of `key`, or null. */
  get(key: string): string | null {
    return this.#data.get(key) ?? null;
  }

  /** How many keys there are. */
  get size(): number {
    return this.#data.size;
  }

  /** A copy of the data. */
  copy(): Map<string, string> {
    return new Map(this.#data);
  }

  /** What the deduplication table says of `w`. */
  check(w: PbWriteRequest): DedupVerdict<Applied> {
    return this.#dedup.check(w.client, w.seq, digestOf(w));
  }

  /** The size in bytes `key`'s value would have after appending `value`. */
  sizeAfterAppend(key: string, value: string): number {
    return utf8Length(this.#data.get(key) ?? "") + utf8Length(value);
  }

  /** Applies a write the table said is `new`, and records it. */
  apply(w: PbWriteRequest): void {
    this.#data.set(w.key, w.op === "put" ? w.value : (this.#data.get(w.key) ?? "") + w.value);
    this.#dedup.record(w.client, w.seq, digestOf(w), true);
  }

  /**
   * The whole state in pages of about `maxBytes` (a page holds at least one
   * entry, so one larger than `maxBytes` goes alone); at least one page,
   * possibly empty. The store must not change while the pages are read.
   */
  *pages(maxBytes: number): Generator<StorePage> {
    let page: StorePage = { data: [], sessions: [] };
    let bytes = 0;
    const add = (size: number) => {
      const full = bytes > 0 && bytes + size > maxBytes;
      if (full) bytes = 0;
      bytes += size;
      return full;
    };
    for (const [key, value] of this.#data) {
      if (add(utf8Length(key) + utf8Length(value))) {
        yield page;
        page = { data: [], sessions: [] };
      }
      page.data.push([key, value]);
    }
    for (const entry of this.#dedup.toJSON()) {
      if (add(utf8Length(entry[0]) + SESSION_BYTES)) {
        yield page;
        page = { data: [], sessions: [] };
      }
      page.sessions.push(entry);
    }
    yield page;
  }
}

/** Builds a {@linkcode PbStore} from the pages of a transfer, checking each. */
export class PageAssembler {
  readonly #data = new Map<string, string>();
  readonly #sessions: [string, DedupEntry<Applied>][] = [];

  /**
   * Adds a page.
   *
   * @throws {ArgumentsError} when it is malformed.
   */
  add(data: unknown, sessions: unknown): void {
    if (!Array.isArray(data) || !Array.isArray(sessions)) {
      throw new ArgumentsError("a state page has data and sessions arrays");
    }
    for (const pair of data) {
      if (
        !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
        typeof pair[1] !== "string"
      ) {
        throw new ArgumentsError("a state page's data entry is not [key, value] strings");
      }
    }
    for (const [key, value] of data as [string, string][]) this.#data.set(key, value);
    // Checked as a whole when the table is built, in finish().
    for (const entry of sessions) this.#sessions.push(entry);
  }

  /**
   * The store the pages make.
   *
   * @throws {ArgumentsError} when a session entry is malformed.
   */
  finish(): PbStore {
    let dedup: DedupTable<Applied>;
    try {
      dedup = DedupTable.from(this.#sessions, (r): r is Applied => r === true);
    } catch (err) {
      throw new ArgumentsError(`a state page is malformed: ${(err as Error).message}`);
    }
    return new PbStore(this.#data, dedup);
  }
}
