/**
 * The bounded read cache of a state store: recently read or written rows,
 * least recently used evicted first, within a budget of bytes.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";

/** A cached row: its stored bytes (null: absent) and, once decoded, its value. */
export interface CachedRow {
  row: Uint8Array | null;
  value?: StateValue | null;
}

/** Bytes a cached row is counted as (its key, row, value and the map's overhead). */
function sizeOf(key: string, entry: CachedRow): number {
  const value = entry.value;
  const valueBytes = value == null
    ? 0
    : typeof value === "string"
    ? 2 * value.length
    : value.length;
  return 2 * key.length + (entry.row?.length ?? 0) + valueBytes + 96;
}

/**
 * A least-recently-used cache of rows within `maxBytes`. An entry larger
 * than an eighth of the budget is not kept.
 *
 * @example
 * ```ts
 * import { ReadCache } from "./state_cache.ts";
 *
 * const cache = new ReadCache(1024);
 * cache.set("dk", { row: null, value: null });
 * cache.get("dk"); // { row: null, value: null }
 * ```
 */
export class ReadCache {
  readonly #max: number;
  #bytes = 0;
  #entries = new Map<string, { entry: CachedRow; size: number }>();

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): CachedRow | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    return hit.entry;
  }

  set(key: string, entry: CachedRow): void {
    this.delete(key);
    const size = sizeOf(key, entry);
    if (size > this.#max / 8) return;
    this.#entries.set(key, { entry, size });
    this.#bytes += size;
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.#max) break;
      this.#entries.delete(k);
      this.#bytes -= e.size;
    }
  }

  delete(key: string): void {
    const hit = this.#entries.get(key);
    if (hit === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= hit.size;
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}
