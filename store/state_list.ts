/**
 * Listing the committed rows of a {@linkcode StateStore} under one key
 * prefix, a slice at a time (a shard's rows, say, with the shard as the
 * keys' first part), without reading the rest of the state.
 *
 * @module
 */
import { compareKvKeys } from "./kv_key.ts";
import type { StateLayout, Table } from "./state_layout.ts";
import type { StateValue } from "./state_value.ts";

/**
 * Options of {@linkcode StateStore.list}.
 *
 * @example
 * ```ts
 * import type { StateListOptions } from "@distkit/distkit/store";
 *
 * const options: StateListOptions = { after: "3/k17", limit: 100 };
 * ```
 */
export interface StateListOptions {
  /** List the rows after this key; from the prefix's first row when undefined. */
  after?: string;
  /** Rows at most, 1 to 1,000. Default 500. */
  limit?: number;
  /** Session rows (decoded) instead of data rows. */
  sessions?: boolean;
}

/**
 * The rows a list takes at most; throws `RangeError` at once (not in a
 * promise) for a limit outside 1 to 1,000.
 *
 * @example
 * ```ts ignore
 * listLimit({}); // 500
 * ```
 */
export function listLimit(options: StateListOptions): number {
  const limit = options.limit ?? 500;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
    throw new RangeError(`a list takes 1 to 1,000 rows at a time, not ${limit}`);
  }
  return limit;
}

/** Where and how {@linkcode listRows} reads. */
export interface ListSource {
  layout: StateLayout;
  gen: number;
  decodeSession(bytes: StateValue, client: string): unknown;
}

/**
 * Up to `options.limit` committed rows of generation `source.gen` whose keys
 * start with `prefix`, in the store's order (UTF-8 bytes). The caller runs it
 * exclusively of commits, so it reads at one point.
 *
 * @example
 * ```ts ignore
 * const rows = await listRows(source, "3/", { limit: 100 });
 * ```
 */
export async function listRows(
  source: ListSource,
  prefix: string,
  options: StateListOptions = {},
): Promise<[key: string, value: unknown][]> {
  const limit = listLimit(options);
  const { layout, gen } = source;
  const table: Table = options.sessions ? "s" : "d";
  const first = layout.key(gen, table, prefix);
  const next = options.after === undefined ? first : layout.key(gen, table, options.after + "\0");
  const from = compareKvKeys(next, first) > 0 ? next : first;
  const out: [string, unknown][] = [];
  // Keys with a prefix sit together in UTF-8 order: the first one without it ends the range.
  const rows = layout.kv.list<Uint8Array>(
    { start: from, end: layout.key(gen, table + "\0") },
    { limit: limit + 1, batchSize: limit + 1 },
  );
  for await (const { key, value } of rows) {
    const k = key[key.length - 1] as string;
    if (!k.startsWith(prefix) || out.length === limit) break;
    const what = `${table === "d" ? "row" : "session"} ${JSON.stringify(k)}`;
    const decoded = await layout.decodeValue(value, gen, what);
    out.push([k, table === "d" ? decoded : source.decodeSession(decoded, k)]);
  }
  return out;
}
