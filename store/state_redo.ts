/**
 * Redo records of a {@linkcode StateStore}: an entry too large for one
 * commit is written ahead as a record of its mutations (`[gen, "r", id, n]`),
 * which `current.redo` points to until all of them are in; `open` finishes
 * what a crash interrupted.
 *
 * @module
 */
import { concatBytes, crc32 } from "../net/bytes.ts";
import type { Mutation } from "./kv_limits.ts";
import { StorageCorruptionError } from "./storage_errors.ts";
import { StateInvariantError } from "./errors.ts";
import { CommitPlan, type Current, type StateLayout } from "./state_layout.ts";

/**
 * Mutations as plain data for a redo record: [0, key, value] for a write, [1, key] for a delete.
 *
 * @example
 * ```ts
 * import { encodeMutations } from "./state_redo.ts";
 *
 * encodeMutations([{ type: "delete", key: ["a"] }]); // [[1, ["a"]]]
 * ```
 */
export function encodeMutations(mutations: Mutation[]): unknown[] {
  return mutations.map((m) => m.type === "set" ? [0, m.key, m.value] : [1, m.key]);
}

function decodeMutations(data: unknown): Mutation[] {
  if (!Array.isArray(data)) throw new StateInvariantError("a redo record is not a list");
  return data.map((m): Mutation => {
    if (Array.isArray(m) && m[0] === 0 && Array.isArray(m[1]) && m[2] instanceof Uint8Array) {
      return { type: "set", key: m[1], value: m[2] };
    }
    if (Array.isArray(m) && m[0] === 1 && Array.isArray(m[1])) return { type: "delete", key: m[1] };
    throw new StateInvariantError("a redo record holds a malformed mutation");
  });
}

/**
 * Finishes the redo a crash interrupted (idempotent: nothing was committed
 * after it), then clears `current.redo`.
 *
 * @example
 * ```ts ignore
 * if (current.redo) await finishRedo(layout, current);
 * ```
 *
 * @throws {StorageCorruptionError} when the record is incomplete or fails its checksum.
 */
export async function finishRedo(layout: StateLayout, current: Current): Promise<void> {
  const redo = current.redo!;
  const chunks: Uint8Array[] = [];
  for await (
    const e of layout.kv.list<Uint8Array>({ prefix: layout.key(current.gen, "r", redo.id) })
  ) {
    chunks.push(e.value);
  }
  const bytes = concatBytes(chunks, chunks.reduce((n, c) => n + c.length, 0));
  if (chunks.length !== redo.chunks || bytes.length !== redo.size || crc32(bytes) !== redo.crc) {
    throw new StorageCorruptionError(
      layout.where,
      `the redo record of entry ${current.applied.index} is incomplete or fails its checksum`,
    );
  }
  const mutations = decodeMutations(layout.codec.decode(bytes));
  await layout.commitAll(mutations);
  const plan = new CommitPlan();
  const done: Current = { ...current };
  delete done.redo;
  plan.add({ type: "set", key: layout.key("current"), value: layout.encodeCurrent(done) });
  await layout.commit(plan);
}
