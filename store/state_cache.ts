/**
 * The bounded read cache of a state store: recently read or written rows,
 * least recently used evicted first, within a budget of bytes.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import { StateInvariantError } from "./errors.ts";

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

/** A cached row in the recency list (a sentinel links the least and the most recent). */
interface Node {
  key: string;
  entry: CachedRow;
  size: number;
  prev: Node;
  next: Node;
}

/**
 * A least-recently-used cache of rows within `maxBytes`. An entry larger
 * than an eighth of the budget is not kept.
 *
 * The recency order is a linked list beside the map, so that a hit moves
 * no map entry: a `Map` used as the order (delete and set again on each
 * hit) leaves a deleted slot per hit, which makes a hot row's lookups (a
 * session, the key count: read for every entry) cost tens of µs in a map
 * of many rows, and the eviction's scan from the map's start skip them all.
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
  #entries = new Map<string, Node>();
  /** `next` is the least recently used, `prev` the most. */
  readonly #list: Node;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
    const sentinel = { key: "", entry: { row: null }, size: 0 } as Node;
    sentinel.prev = sentinel.next = sentinel;
    this.#list = sentinel;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): CachedRow | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    this.#unlink(hit);
    this.#append(hit);
    return hit.entry;
  }

  set(key: string, entry: CachedRow): void {
    const size = sizeOf(key, entry);
    if (size > this.#max / 8) return this.delete(key);
    const hit = this.#entries.get(key);
    if (hit === undefined) {
      const node = { key, entry, size } as Node;
      this.#entries.set(key, node);
      this.#append(node);
    } else {
      this.#bytes -= hit.size;
      hit.entry = entry;
      hit.size = size;
      this.#unlink(hit);
      this.#append(hit);
    }
    this.#bytes += size;
    while (this.#bytes > this.#max) this.#remove(this.#list.next);
  }

  delete(key: string): void {
    const hit = this.#entries.get(key);
    if (hit !== undefined) this.#remove(hit);
  }

  clear(): void {
    this.#entries.clear();
    this.#list.prev = this.#list.next = this.#list;
    this.#bytes = 0;
  }

  #remove(node: Node): void {
    invariantNode(node !== this.#list, "the read cache's recency list is empty but over budget");
    this.#entries.delete(node.key);
    this.#unlink(node);
    this.#bytes -= node.size;
  }

  #unlink(node: Node): void {
    node.prev.next = node.next;
    node.next.prev = node.prev;
  }

  #append(node: Node): void {
    const last = this.#list.prev;
    node.prev = last;
    node.next = this.#list;
    last.next = node;
    this.#list.prev = node;
  }
}

function invariantNode(ok: boolean, message: string): asserts ok {
  if (!ok) throw new StateInvariantError(message);
}
