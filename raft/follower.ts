/**
 * How a follower answers its leader's appends, heartbeats and snapshot
 * chunks: what it changes in its log, the answer, and how far it may move
 * its commit index.
 *
 * @module
 */
import { invariant } from "./invariant.ts";
import type { Outgoing } from "./leader.ts";
import type { RaftLog } from "./log.ts";
import type { SnapshotReceiver } from "./snapshot_receive.ts";
import type { AppendMessage, HeartbeatMessage, Snapshot, SnapshotMessage } from "./types.ts";

/**
 * Appends the leader's entries when the log matches at `prevIndex`, and
 * returns the answer and the index the commit may move to (never past
 * what is known to match the leader).
 *
 * @example
 * ```ts
 * import { acceptAppend } from "./follower.ts";
 * import { RaftLog } from "./log.ts";
 * import type { AppendMessage } from "./types.ts";
 *
 * const log = new RaftLog({ index: 0, term: 0, membership: { voters: ["a", "b"], learners: [] } }, []);
 * const m: AppendMessage = {
 *   type: "append", from: "a", to: "b", term: 1, prevIndex: 0, prevTerm: 0, commit: 1, seq: 1,
 *   entries: [{ index: 1, term: 1, kind: "noop" }],
 * };
 * acceptAppend(log, m, 0).commit; // 1
 * ```
 */
export function acceptAppend(
  log: RaftLog,
  m: AppendMessage,
  commit: number,
): { answer: Outgoing; commit: number } {
  const answer = { type: "appendResp", to: m.from, seq: m.seq } as const;
  if (m.prevIndex < commit) {
    // Everything up to our commit index matches the leader already.
    const matched = { success: true, index: commit, conflictTerm: 0, conflictIndex: 0 };
    return { answer: { ...answer, ...matched }, commit };
  }
  if (log.matches(m.prevIndex, m.prevTerm)) {
    log.appendAfterMatch(m.entries, commit);
    const lastNew = m.prevIndex + m.entries.length;
    const matched = { success: true, index: lastNew, conflictTerm: 0, conflictIndex: 0 };
    return { answer: { ...answer, ...matched }, commit: Math.min(m.commit, lastNew) };
  }
  const hint = log.conflictHint(m.prevIndex);
  return { answer: { ...answer, success: false, index: m.prevIndex, ...hint }, commit };
}

/**
 * The answer to a heartbeat and the index the commit may move to. The
 * heartbeat's commit is at most what the leader counts as this follower's
 * match: a log ending below it lost entries it had acknowledged, and the
 * leader, believing them here, would send nothing while idle, so the
 * answer tells it where the log ends.
 *
 * @example
 * ```ts
 * import { answerHeartbeat } from "./follower.ts";
 * import { RaftLog } from "./log.ts";
 *
 * const log = new RaftLog({ index: 0, term: 0, membership: { voters: ["a", "b"], learners: [] } }, []);
 * const m = { type: "heartbeat", from: "a", to: "b", term: 1, commit: 3, context: 0 } as const;
 * answerHeartbeat(log, m).answer; // { type: "heartbeatResp", to: "a", context: 0, lastIndex: 0 }
 * ```
 */
export function answerHeartbeat(
  log: RaftLog,
  m: HeartbeatMessage,
): { answer: Outgoing; commit: number } {
  const last = log.lastIndex();
  return {
    answer: {
      type: "heartbeatResp",
      to: m.from,
      context: m.context,
      ...(last < m.commit ? { lastIndex: last } : {}),
    },
    commit: Math.min(m.commit, last),
  };
}

/**
 * Takes a chunk of a snapshot. With the last chunk, the log is replaced
 * up to the snapshot (kept after it when it holds the snapshot's last
 * entry, else discarded: `resetLog`) and the snapshot is returned to
 * install. A snapshot the follower's commit index already covers is
 * answered as done at once.
 *
 * @example
 * ```ts
 * import { receiveSnapshot } from "./follower.ts";
 * import { RaftLog } from "./log.ts";
 * import { SnapshotReceiver } from "./snapshot_receive.ts";
 *
 * const log = new RaftLog({ index: 0, term: 0, membership: { voters: ["a", "b"], learners: [] } }, []);
 * const meta = { index: 5, term: 1, membership: { voters: ["a", "b"], learners: [] } };
 * const m = {
 *   type: "snapshot", from: "a", to: "b", term: 1, meta, offset: 0, size: 1, chunk: new Uint8Array([7]),
 * } as const;
 * receiveSnapshot(new SnapshotReceiver(), log, m, { commit: 0 }).installed?.resetLog; // true
 * ```
 */
export function receiveSnapshot(
  receiver: SnapshotReceiver,
  log: RaftLog,
  m: SnapshotMessage,
  options: { commit: number },
): { answer: Outgoing; installed?: { snapshot: Snapshot; resetLog: boolean } } {
  const { commit } = options;
  if (m.meta.index <= commit) {
    receiver.reset();
    return { answer: { type: "snapshotResp", to: m.from, index: commit, offset: 0, done: true } };
  }
  const { answer, snapshot } = receiver.receive(m);
  const reply: Outgoing = { type: "snapshotResp", to: m.from, ...answer };
  if (snapshot === undefined) return { answer: reply };
  invariant(
    snapshot.meta.index > commit,
    `snapshot through ${snapshot.meta.index} would move the commit index back from ${commit}`,
  );
  const resetLog = !log.restore(snapshot.meta);
  return { answer: reply, installed: { snapshot, resetLog } };
}
