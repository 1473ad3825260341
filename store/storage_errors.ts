/**
 * Errors a Raft storage reports when what it holds cannot be trusted.
 *
 * @module
 */

/**
 * What Deno KV holds is not what was written: a checksum mismatch, a missing
 * entry, an entry at the wrong index, or an undecodable value.
 *
 * @example
 * ```ts
 * import { StorageCorruptionError } from "@distkit/distkit/raft";
 *
 * const err = new StorageCorruptionError("node.kv", "entry 7 fails its checksum");
 * err.message.includes("node.kv"); // true
 * ```
 */
export class StorageCorruptionError extends Error {
  /**
   * Creates the error.
   *
   * @param where The store (its path).
   * @param problem What is wrong.
   */
  constructor(where: string, problem: string) {
    super(
      `Raft storage ${where} is corrupt: ${problem}. Do not start this node from it: ` +
        `move the file aside and re-add the node to the cluster as a new member, so it copies its state from the others`,
    );
    this.name = "StorageCorruptionError";
  }
}

/**
 * The store holds less than it had made durable and acknowledged: it ends
 * below its high-water mark (SQLite dropped WAL frames that failed their
 * checksum, or the database file was deleted or replaced). A node must not
 * vote or acknowledge from such a store.
 *
 * @example
 * ```ts
 * import { StorageLossError, StorageCorruptionError } from "@distkit/distkit/raft";
 *
 * const err = new StorageLossError("data/raft.kv", "its log ends at 40, below entry 57 (term 2)");
 * err instanceof StorageCorruptionError; // true
 * ```
 */
export class StorageLossError extends StorageCorruptionError {
  /**
   * Creates the error.
   *
   * @param where The store (its path).
   * @param problem What is missing.
   */
  constructor(where: string, problem: string) {
    super(where, problem);
    this.name = "StorageLossError";
    this.message = `Raft storage ${where} lost state it had made durable: ${problem}. ` +
      `Acknowledged writes may be missing from it, so this node must not vote or serve from it: ` +
      `remove the node from the cluster, then add it back as a new member with an empty data ` +
      `folder, so it copies its state from the others (README: "What survives what")`;
  }
}
