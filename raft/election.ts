/**
 * The rules of elections that need no state of their own: who may
 * campaign, and how a candidate's votes add up.
 *
 * @module
 */
import type { RaftLog } from "./log.ts";
import type { NodeId } from "./types.ts";

/**
 * How the votes a candidate received add up in its latest configuration:
 * `won` with a quorum granted, `lost` once a quorum can no longer be had.
 *
 * @example
 * ```ts
 * import { tallyVotes } from "./election.ts";
 *
 * tallyVotes(new Map([["a", true], ["b", true]]), ["a", "b", "c"]); // "won"
 * ```
 */
export function tallyVotes(
  votes: ReadonlyMap<NodeId, boolean>,
  voters: readonly NodeId[],
): "won" | "lost" | "pending" {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const vote = votes.get(v);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return "won";
  if (rejected > voters.length - quorum) return "lost";
  return "pending";
}

/**
 * Whether node `id` starts elections: a voter of its latest configuration,
 * or of the committed one while a change that removes it is not committed
 * yet (as etcd, which applies a change only once committed). Otherwise a
 * node holding the only copy of its own uncommitted removal, with the
 * longest log, would neither campaign nor vote for the shorter logs, and
 * the cluster could stall for good. Votes are still counted in the
 * candidate's latest configuration, its own only if it is in it.
 *
 * @example
 * ```ts
 * import { mayCampaign } from "./election.ts";
 * import { RaftLog } from "./log.ts";
 *
 * const log = new RaftLog({ index: 0, term: 0, membership: { voters: ["a"], learners: [] } }, []);
 * mayCampaign("a", log, { commit: 0 }); // true
 * ```
 */
export function mayCampaign(id: NodeId, log: RaftLog, options: { commit: number }): boolean {
  if (log.membership().voters.includes(id)) return true;
  return log.membershipIndex() > options.commit &&
    log.membershipAt(options.commit).voters.includes(id);
}
