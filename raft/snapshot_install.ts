/**
 * Receiving a stored state as a snapshot (the follower's half of
 * `snapshot_stream.ts`): a service whose state is durable gives the node a
 * {@linkcode SnapshotSink}, and each chunk of a leader's stream is written
 * into it before the chunk is acknowledged (the leader keeps no more than
 * its window of chunks unacknowledged: that is the back-pressure), so
 * neither side holds the state.
 * The last chunk switches the service's state, and only then does Raft
 * record the snapshot (data-less) and reset its log. A crash between the
 * two leaves a state beyond the stored log: the next start finishes the
 * bookkeeping from the state's own record of the snapshot
 * ({@linkcode recordInstalled}).
 *
 * @module
 */
import type { SnapshotMeta } from "./types.ts";
import type { StreamedChunk } from "./snapshot_receive.ts";
import type { RaftStorage, StorageBatch, StoredState } from "./storage.ts";
import { invariant } from "./invariant.ts";

/**
 * Where a follower writes a stored state streamed to it.
 *
 * @example
 * ```ts
 * import type { SnapshotSink } from "@distkit/distkit/raft";
 *
 * let bytes = 0;
 * const sink: SnapshotSink = {
 *   begin: () => Promise.resolve(void (bytes = 0)),
 *   write: (chunk) => Promise.resolve(void (bytes += chunk.length)),
 *   finish: () => Promise.resolve(),
 *   abandon: () => Promise.resolve(),
 *   installed: () => undefined,
 * };
 * ```
 */
export interface SnapshotSink {
  /** A stream of the state as of `meta` begins: whatever was being received is dropped. */
  begin(meta: SnapshotMeta): Promise<void>;
  /** The stream's next bytes, in order; resolves once they are written. */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * The stream is whole: make it the service's state, once the service has
   * stored every item the node handed it before (through index `after`).
   * Resolves once the switch is durable; rejects when `signal` aborts (the
   * node stops) before it.
   */
  finish(options: { after: number; signal: AbortSignal }): Promise<void>;
  /** Drops the stream being received, if any. */
  abandon(): Promise<void>;
  /**
   * The snapshot the service's state was switched to, while it reflects
   * nothing applied since (else undefined): at start, Raft records it if a
   * crash came between the switch and Raft's own record.
   */
  installed(): SnapshotMeta | undefined;
}

/**
 * Writes a ready's streamed chunks into `sink`, in order (see
 * {@linkcode SnapshotSink}); the last chunk of a stream finishes it.
 *
 * @example
 * ```ts ignore
 * if (rd.streamed) await feedSink(sink, rd.streamed, { after: applied, signal });
 * ```
 */
export async function feedSink(
  sink: SnapshotSink,
  ops: StreamedChunk[],
  options: { after: number; signal: AbortSignal },
): Promise<void> {
  for (const op of ops) {
    if ("abandon" in op) {
      await sink.abandon();
      continue;
    }
    if (op.offset === 0) await sink.begin(op.meta);
    await sink.write(op.chunk);
    if (op.last) await sink.finish(options);
  }
}

/**
 * What storage holds once {@linkcode recordInstalled} has recorded `meta`
 * (nothing is written): `stored` itself when there is nothing to record;
 * else the snapshot, data-less, with the log reset. Pure, so a start can
 * check it before the storage repairs anything (`LoadOptions.accept`).
 *
 * @example
 * ```ts ignore
 * const state = installedState(stored, sink.installed());
 * ```
 */
export function installedState(
  stored: StoredState,
  meta: SnapshotMeta | undefined,
): StoredState {
  const snapshotIndex = stored.snapshot?.meta.index ?? 0;
  if (meta === undefined || meta.index <= snapshotIndex) return stored;
  const at = stored.entries.find((e) => e.index === meta.index);
  if (at !== undefined && at.term === meta.term) return stored; // the log holds it: nothing lost
  invariant(
    meta.index > stored.hardState.commit || at === undefined,
    `the service's state is a snapshot through ${meta.index} (term ${meta.term}), but the ` +
      `stored log committed another entry there`,
  );
  return { hardState: stored.hardState, snapshot: { meta, data: new Uint8Array() }, entries: [] };
}

/**
 * At start: when the service's state was switched to a snapshot that Raft
 * had not recorded yet (a crash came between the two), records it now, the
 * way an installed snapshot is (data-less, the log reset unless it holds
 * the snapshot's last entry), and returns what storage then holds.
 *
 * @example
 * ```ts ignore
 * const stored = await recordInstalled(storage, { stored: await storage.load(), meta });
 * ```
 */
export async function recordInstalled(
  storage: RaftStorage,
  options: { stored: StoredState; meta: SnapshotMeta | undefined },
): Promise<StoredState> {
  const state = installedState(options.stored, options.meta);
  if (state === options.stored) return state;
  const batch: StorageBatch = { snapshot: state.snapshot, entries: [], resetLog: true };
  await storage.save(batch);
  return state;
}
