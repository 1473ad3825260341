/**
 * One-server membership changes (Raft dissertation §4.1; etcd's
 * `confchange/`): whether a leader may propose one now, and the membership
 * it leads to.
 *
 * @module
 */
import type { Refusal } from "./errors.ts";
import type { Membership, NodeId } from "./types.ts";

/**
 * A change of membership, one server at a time (Raft dissertation §4.1).
 *
 * @example
 * ```ts
 * import type { MembershipChange } from "@distkit/distkit/raft";
 *
 * const change: MembershipChange = { type: "addLearner", node: "d" };
 * ```
 */
export type MembershipChange =
  | { type: "addLearner"; node: NodeId }
  | { type: "addVoter"; node: NodeId }
  | { type: "remove"; node: NodeId };

/**
 * What a leader knows when it is asked for a membership change.
 *
 * @example
 * ```ts
 * import type { ChangeContext } from "./confchange.ts";
 *
 * const ctx: ChangeContext = {
 *   current: { voters: ["a", "b", "c"], learners: [] },
 *   committedInTerm: true,
 *   pending: false,
 * };
 * ```
 */
export interface ChangeContext {
  /** The latest membership in the log, committed or not. */
  current: Membership;
  /** Whether the leader has committed an entry of its own term. */
  committedInTerm: boolean;
  /** Whether the latest membership entry is not committed yet. */
  pending: boolean;
  /**
   * The data folder incarnation the leader has heard `node` speak as, if
   * any: a voter added or promoted is bound to it, and one not heard from
   * yet is refused (`folder-unheard`). Default: none (folders are not bound).
   */
  heard?: (node: NodeId) => string | undefined;
}

/**
 * The membership `change` leads to, or why the leader may not propose it
 * now. One change at a time, and only once the leader has committed an
 * entry of its own term: a new leader may hold an uncommitted membership
 * entry of an earlier term that some nodes have and it has not (or the
 * other way round); a change of its own, made before it commits in its
 * term, could then be decided by a quorum that does not overlap the other
 * configuration's, and a committed entry could be overwritten (Ongaro,
 * raft-dev 2015; the Raft dissertation's erratum). Committing an entry of
 * its term first (the no-op of its election) settles which configuration is
 * in force.
 *
 * @example
 * ```ts
 * import { nextMembership } from "./confchange.ts";
 *
 * const next = nextMembership({ type: "addVoter", node: "d" }, {
 *   current: { voters: ["a", "b", "c"], learners: ["d"] },
 *   committedInTerm: true,
 *   pending: false,
 * });
 * // next: { voters: ["a", "b", "c", "d"], learners: [] }
 * ```
 */
export function nextMembership(
  change: MembershipChange,
  context: ChangeContext,
): Membership | Omit<Refusal, "leader"> {
  const busy = busyReason(context);
  if (busy !== undefined) return { reason: busy };
  const { current } = context;
  if (
    change.type === "addVoter" && context.heard !== undefined &&
    !current.voters.includes(change.node) && context.heard(change.node) === undefined
  ) return { reason: "folder-unheard" };
  const voters = current.voters.filter((v) => v !== change.node);
  const learners = current.learners.filter((v) => v !== change.node);
  if (change.type === "addVoter") voters.push(change.node);
  if (change.type === "addLearner") {
    if (current.voters.includes(change.node)) {
      return { reason: "invalid", detail: `${change.node} is already a voter` };
    }
    learners.push(change.node);
  }
  if (voters.length === 0) return { reason: "invalid", detail: "cannot remove the last voter" };
  // A voter that stays one keeps its folder (a new folder comes in only by remove and add: a
  // binding swapped in one entry would let quorums of the two folders miss each other); a node
  // that becomes a voter is bound to the folder the leader heard.
  const bindings: Record<NodeId, string> = {};
  for (const v of voters) {
    const bound = current.voters.includes(v) ? current.bindings?.[v] : context.heard?.(v);
    if (bound !== undefined) bindings[v] = bound;
  }
  return Object.keys(bindings).length === 0 ? { voters, learners } : { voters, learners, bindings };
}

/** Why a leader may not change membership now (see {@linkcode nextMembership}), if it may not. */
function busyReason(
  context: ChangeContext,
): "term-not-committed" | "membership-pending" | undefined {
  if (!context.committedInTerm) return "term-not-committed";
  if (context.pending) return "membership-pending";
  return undefined;
}

/**
 * The membership that binds each unbound voter of `context.current` that
 * `context.heard` knows a folder for (the founding voters, once a leader has
 * heard from them), or undefined when there is none to bind or the leader
 * may not change membership now (the rules of {@linkcode nextMembership}).
 * Binding only narrows whose votes count, never whom: every quorum of the
 * new membership is one of the old, so it needs no joint consensus.
 *
 * @example
 * ```ts
 * import { bindVoters } from "./confchange.ts";
 *
 * const next = bindVoters({
 *   current: { voters: ["a", "b"], learners: [] },
 *   committedInTerm: true,
 *   pending: false,
 *   heard: (n) => n === "a" ? "a#1" : undefined,
 * });
 * // next: { voters: ["a", "b"], learners: [], bindings: { a: "a#1" } }
 * ```
 */
export function bindVoters(context: ChangeContext): Membership | undefined {
  const { current, heard } = context;
  if (heard === undefined || busyReason(context) !== undefined) return undefined;
  const bindings = { ...current.bindings };
  let added = false;
  for (const v of current.voters) {
    if (bindings[v] !== undefined) continue;
    const inc = heard(v);
    if (inc === undefined) continue;
    bindings[v] = inc;
    added = true;
  }
  return added
    ? { voters: [...current.voters], learners: [...current.learners], bindings }
    : undefined;
}
