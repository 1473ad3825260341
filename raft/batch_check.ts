/**
 * The one check every `RaftStorage` makes of a batch before it changes
 * anything (not published: storage implementations share it). It takes the
 * batch's shape, not `StorageBatch`, so that `storage.ts` can import it
 * without a cycle.
 *
 * @module
 */
/**
 * Refuses a batch whose entries would leave a gap after the stored log,
 * which holds `count` entries from index `first` on; `who` names the store
 * in the error.
 */
export function checkBatchFollows(
  stored: { first: number; count: number },
  batch: {
    entries: { index: number }[];
    snapshot?: { meta: { index: number } };
    resetLog: boolean;
  },
  who: string,
): void {
  if (batch.entries.length === 0) return;
  let first = stored.first;
  let last = stored.first + stored.count - 1;
  const snapIndex = batch.snapshot?.meta.index;
  if (batch.resetLog) {
    first = (snapIndex ?? 0) + 1;
    last = first - 1;
  } else if (snapIndex !== undefined && snapIndex >= first) {
    first = snapIndex + 1;
    last = Math.max(last, snapIndex);
  }
  const from = batch.entries[0].index;
  if (last >= first && (from < first || from > last + 1)) {
    throw new Error(`${who}: entry ${from} does not follow the stored log (${first}..${last})`);
  }
}
