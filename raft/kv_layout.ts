/**
 * How a {@linkcode DenoKvStorage} lays its state out in Deno KV: the keys,
 * the limits of one commit, checksummed values, entries split in parts and
 * snapshots in chunks (see the layout in `kv_storage.ts`).
 *
 * @module
 */
import type { Codec } from "../net/codec.ts";
import { crc32 } from "../net/bytes.ts";
import type { KvLike } from "../store/kv_like.ts";
import { COMMIT_BYTES, COMMIT_MUTATIONS, type Mutation, PART_BYTES } from "../store/kv_limits.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { Entry, SnapshotMeta } from "./types.ts";

export { COMMIT_BYTES, COMMIT_MUTATIONS, type Mutation, PART_BYTES } from "../store/kv_limits.ts";
/** Parts of one large entry that go in one commit (10 × 60 KiB, under COMMIT_BYTES). */
export const PARTS_PER_COMMIT = 10;
/** Entry part 0 header: CRC-32 of the whole encoded entry (4 bytes), then the part count (2 bytes). */
export const HEADER_BYTES = 6;
/**
 * Garbage keys a save deletes, besides one per key it writes (so garbage
 * cannot outgrow the writes that make it). Deleting the ≈20,000 entries a
 * snapshot compacts at once stalled every node for 130–220 ms.
 */
export const GARBAGE_PER_SAVE = 16;
/**
 * Encoding work per turn of the event loop in a save, in bytes, each entry
 * counted `ENCODE_ENTRY_COST` more than its size (small entries cost more
 * than their bytes): about 5 ms of work on a busy machine.
 */
export const ENCODE_SLICE_BYTES = 1024 * 1024;
export const ENCODE_ENTRY_COST = 512;
/** Snapshot chunks `prepareSnapshot` writes per commit: few, as the log's saves wait behind each. */
export const PREPARE_CHUNKS_PER_COMMIT = 4;

/** The log bounds and the current snapshot, as stored under `meta`. */
export interface Meta {
  /** Entries in [first, last] are valid. */
  first: number;
  last: number;
  snapshot: SnapshotPointer | null;
}

/** Where the current snapshot is stored and what it holds. */
export interface SnapshotPointer {
  id: number;
  meta: SnapshotMeta;
  size: number;
  crc: number;
  chunks: number;
}

/** How many parts an entry of `size` stored bytes (header included) takes. */
export function partCount(size: number): number {
  return Math.max(1, Math.ceil(size / PART_BYTES));
}

/** Splits mutations into commits within Deno KV's limits, at most `most` mutations each. */
export function pack(mutations: Mutation[], most = COMMIT_MUTATIONS): Mutation[][] {
  const commits: Mutation[][] = [];
  let current: Mutation[] = [];
  let bytes = 0;
  for (const m of mutations) {
    const size = (m.type === "set" ? m.value.length : 0) + 128;
    if (current.length > 0 && (current.length >= most || bytes + size > COMMIT_BYTES)) {
      commits.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) commits.push(current);
  return commits;
}

/**
 * The keys and stored forms of one store: where it is (for errors), its key
 * prefix and its codec.
 */
export class KvLayout {
  readonly #kv: KvLike;
  readonly #where: string;
  readonly #prefix: Deno.KvKeyPart[];
  readonly #codec: Codec;

  /**
   * Creates the layout of the store `where` in `kv`.
   *
   * @param kv The database.
   * @param options Where it is (for errors), its key prefix and codec.
   */
  constructor(
    kv: KvLike,
    options: { where: string; prefix: Deno.KvKeyPart[]; codec: Codec },
  ) {
    this.#kv = kv;
    this.#where = options.where;
    this.#prefix = options.prefix;
    this.#codec = options.codec;
  }

  key(...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, ...parts];
  }
  async commit(mutations: Mutation[]): Promise<void> {
    if (mutations.length === 0) return;
    const op = this.#kv.atomic();
    for (const m of mutations) {
      if (m.type === "set") op.set(m.key, m.value);
      else op.delete(m.key);
    }
    const result = await op.commit();
    if (!result.ok) {
      throw new Error(`Raft storage ${this.#where}: an atomic write failed; retry the operation`);
    }
  }
  encodeChecked(value: unknown): Uint8Array {
    const body = this.#codec.encode(value);
    const out = new Uint8Array(body.length + 4);
    new DataView(out.buffer).setUint32(0, crc32(body));
    out.set(body, 4);
    return out;
  }
  decodeChecked(bytes: Uint8Array, what: string): unknown {
    if (!(bytes instanceof Uint8Array) || bytes.length < 4) {
      throw new StorageCorruptionError(this.#where, `${what} is not a checksummed value`);
    }
    const body = bytes.subarray(4);
    if (new DataView(bytes.buffer, bytes.byteOffset).getUint32(0) !== crc32(body)) {
      throw new StorageCorruptionError(this.#where, `${what} fails its checksum`);
    }
    try {
      return this.#codec.decode(body);
    } catch (err) {
      throw new StorageCorruptionError(
        this.#where,
        `${what} cannot be decoded: ${(err as Error).message}`,
      );
    }
  }
  assembleEntry(index: number, parts: Uint8Array[]): { entry: Entry; size: number } {
    const head = parts[0];
    if (!(head instanceof Uint8Array) || head.length < HEADER_BYTES) {
      throw new StorageCorruptionError(this.#where, `entry ${index} has no valid header`);
    }
    const view = new DataView(head.buffer, head.byteOffset);
    const crc = view.getUint32(0);
    const count = view.getUint16(4);
    if (count !== parts.length) {
      throw new StorageCorruptionError(
        this.#where,
        `entry ${index} has ${parts.length} of ${count} parts`,
      );
    }
    const total = parts.reduce((n, p) => n + p.length, 0) - HEADER_BYTES;
    const body = new Uint8Array(total);
    body.set(head.subarray(HEADER_BYTES));
    let at = head.length - HEADER_BYTES;
    for (const p of parts.slice(1)) {
      body.set(p, at);
      at += p.length;
    }
    if (crc32(body) !== crc) {
      throw new StorageCorruptionError(this.#where, `entry ${index} fails its checksum`);
    }
    let entry: Entry;
    try {
      entry = this.#codec.decode(body) as Entry;
    } catch (err) {
      throw new StorageCorruptionError(
        this.#where,
        `entry ${index} cannot be decoded: ${(err as Error).message}`,
      );
    }
    if (entry?.index !== index) {
      throw new StorageCorruptionError(
        this.#where,
        `the entry stored at ${index} says it is ${entry?.index}`,
      );
    }
    return { entry, size: body.length + HEADER_BYTES };
  }
  snapshotMutations(pointer: Omit<SnapshotPointer, "meta">, data: Uint8Array): Mutation[] {
    return Array.from({ length: pointer.chunks }, (_, c) => ({
      type: "set" as const,
      key: this.key("snap", pointer.id, c),
      value: data.subarray(c * PART_BYTES, (c + 1) * PART_BYTES),
    }));
  }
  async readSnapshot(pointer: SnapshotPointer): Promise<Uint8Array> {
    const data = new Uint8Array(pointer.size);
    let at = 0;
    let expected = 0;
    for await (
      const { key, value } of this.#kv.list<Uint8Array>({ prefix: this.key("snap", pointer.id) })
    ) {
      if (key[key.length - 1] !== expected) {
        throw new StorageCorruptionError(this.#where, `snapshot chunk ${expected} is missing`);
      }
      if (!(value instanceof Uint8Array) || at + value.length > pointer.size) {
        throw new StorageCorruptionError(
          this.#where,
          `snapshot chunk ${expected} has the wrong size`,
        );
      }
      data.set(value, at);
      at += value.length;
      expected++;
    }
    if (expected !== pointer.chunks || at !== pointer.size) {
      throw new StorageCorruptionError(
        this.#where,
        `snapshot has ${expected} of ${pointer.chunks} chunks`,
      );
    }
    if (crc32(data) !== pointer.crc) {
      throw new StorageCorruptionError(this.#where, "the snapshot fails its checksum");
    }
    return data;
  }

  /**
   * Encodes entries and their checksums, yielding to the event loop between slices: a follower
   * catching up writes thousands at once, and encoding them in one turn held
   * it deaf to heartbeats and status requests for hundreds of milliseconds.
   */
  async encodeEntries(entries: Entry[]): Promise<{ body: Uint8Array; crc: number }[]> {
    const bodies: { body: Uint8Array; crc: number }[] = [];
    let slice = 0;
    for (const entry of entries) {
      const body = this.#codec.encode(entry);
      bodies.push({ body, crc: crc32(body) });
      slice += body.length + ENCODE_ENTRY_COST;
      if (slice >= ENCODE_SLICE_BYTES) {
        slice = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    return bodies;
  }
}

/** Where the mark of the store at `path` lives (null: none). */
export function markPath(
  path: string,
  options: { mark?: string | null; prefix?: Deno.KvKeyPart[] },
): string | null {
  if (options.mark !== undefined) return options.mark;
  if (path === ":memory:") return null;
  const prefix = options.prefix;
  if (prefix === undefined || (prefix.length === 1 && prefix[0] === "raft")) return `${path}.mark`;
  return `${path}.${prefix.map(String).join(".")}.mark`;
}
