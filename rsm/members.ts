/**
 * Runtime membership of a replicated service (the KV service, a shard
 * group): list the members, add one as a learner, promote a learner that has
 * caught up to a voter, remove one. One change at a time, through the
 * leader; the safety of each change rests on Raft's one-server changes (a
 * leader changes membership only once it has committed an entry of its
 * term: `MembershipBusyError` otherwise).
 *
 * Every change is idempotent (adding a learner twice, removing a node that
 * is not a member, promoting a voter: nothing to do, answered as done), so a
 * change whose outcome was not learned may be sent again.
 *
 * Served over TCP as the `Member` service ({@linkcode serveMembers}); the
 * HTTP API's `/members` and `distkit kv member` call the same functions.
 *
 * @module
 */
import { expectShape, type RpcServer } from "../net/rpc_server.ts";
import { deadline, delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { defaultClock } from "../net/env.ts";
import {
  MembershipBusyError,
  type MembershipChange,
  NotLeaderError,
  type RaftNode,
  RaftRequestError,
  RaftStoppedError,
} from "../raft/mod.ts";

/**
 * One member as the leader sees it.
 *
 * @example
 * ```ts
 * import type { MemberInfo } from "@distkit/distkit/rsm";
 *
 * const m: MemberInfo = { id: "2", role: "learner", match: 120, behind: 3, caughtUp: true };
 * ```
 */
export interface MemberInfo {
  /** The node id. */
  id: string;
  /** A voter counts toward quorums; a learner only receives the log. */
  role: "voter" | "learner";
  /** The last log index known to be on the member (the leader's own last durable one for itself). */
  match: number;
  /** How many committed entries it lacks (0 when it has them all). */
  behind: number;
  /** Whether it is close enough to the commit index to be promoted (see {@linkcode MembershipOptions.maxLag}). */
  caughtUp: boolean;
}

/**
 * The members of a replicated service, from its leader.
 *
 * @example
 * ```ts
 * import type { MemberList } from "@distkit/distkit/rsm";
 *
 * const list: MemberList = { leader: "0", commitIndex: 120, members: [] };
 * ```
 */
export interface MemberList {
  /** The leader that answered. */
  leader: string;
  /** Its commit index. */
  commitIndex: number;
  /** Voters first, then learners, each in id order. */
  members: MemberInfo[];
}

/**
 * A change of membership: `add` a node as a learner, `promote` a learner to
 * a voter, `remove` a node.
 *
 * @example
 * ```ts
 * import type { MemberChange } from "@distkit/distkit/rsm";
 *
 * const change: MemberChange = { op: "add", node: "3" };
 * ```
 */
export interface MemberChange {
  /** What to do. */
  op: "add" | "remove" | "promote";
  /** To which node id. */
  node: string;
}

/**
 * What a change did.
 *
 * @example
 * ```ts
 * import type { MemberOutcome } from "@distkit/distkit/rsm";
 *
 * const o: MemberOutcome = {
 *   changed: false,
 *   note: "3 is already a learner",
 *   members: { leader: "0", commitIndex: 9, members: [] },
 * };
 * ```
 */
export interface MemberOutcome {
  /** False when there was nothing to do (the change was made already). */
  changed: boolean;
  /** What happened, in words. */
  note: string;
  /** The members once the change is committed. */
  members: MemberList;
}

/**
 * Options of {@linkcode changeMember}, {@linkcode listMembers} and
 * {@linkcode serveMembers}.
 *
 * @example
 * ```ts
 * import type { MembershipOptions } from "@distkit/distkit/rsm";
 *
 * const options: MembershipOptions = { maxLag: 100, timeoutMs: 5000 };
 * ```
 */
export interface MembershipOptions {
  /**
   * A learner is caught up (may be promoted) when it lacks at most this
   * many committed entries and the leader has heard it acknowledge entries
   * past its own latest snapshot. Default 100.
   */
  maxLag?: number;
  /**
   * How long a change may wait while the leader is busy with another, and
   * then for its commit. Default 5,000 ms.
   */
  timeoutMs?: number;
  /** The clock waits use. Default: the real one. */
  clock?: Clock;
  /**
   * Why `node` cannot be added (its address is unknown, say), or undefined
   * when it can. A node the transport cannot reach by that id must not be
   * added: the leader would have to send it the log. Default: any id.
   */
  checkNode?: (node: string) => string | undefined;
}

/**
 * The leader refused a membership change; nothing was proposed for it.
 * `retryable` says whether the same request may succeed later (another
 * change in progress, a learner still catching up) or not (it makes no
 * sense: removing the last voter, adding a voter as a learner).
 *
 * @example
 * ```ts
 * import { MemberRefusedError } from "@distkit/distkit/rsm";
 *
 * const err = new MemberRefusedError("a membership change is in progress; retry", true);
 * err.retryable; // true
 * ```
 */
export class MemberRefusedError extends Error {
  /** Whether the same request may succeed later. */
  readonly retryable: boolean;

  /**
   * Creates the error.
   *
   * @param message What was refused and what to do.
   * @param retryable Whether the same request may succeed later.
   */
  constructor(message: string, retryable: boolean) {
    super(message);
    this.name = "MemberRefusedError";
    this.retryable = retryable;
  }
}

/**
 * A membership change was proposed, and then its outcome could not be
 * learned (the leader lost leadership or stopped): it may or may not have
 * been made. Changes are idempotent: list the members, or send it again.
 *
 * @example
 * ```ts
 * import { MemberOutcomeUnknownError } from "@distkit/distkit/rsm";
 *
 * new MemberOutcomeUnknownError("the leader stepped down").message.includes("may or may not"); // true
 * ```
 */
export class MemberOutcomeUnknownError extends Error {
  /**
   * Creates the error.
   *
   * @param reason Why the outcome is unknown.
   * @param options The cause.
   */
  constructor(reason: string, options?: ErrorOptions) {
    super(
      `the membership change may or may not have been made (${reason}); list the members to ` +
        `find out, or send it again (a change already made is answered as done)`,
      options,
    );
    this.name = "MemberOutcomeUnknownError";
  }
}

/**
 * The members as the leader `raft` sees them.
 *
 * @throws {NotLeaderError} when `raft` does not lead.
 *
 * @example
 * ```ts ignore
 * import { listMembers } from "@distkit/distkit/rsm";
 *
 * for (const m of listMembers(server.raft).members) console.log(m.id, m.role, m.behind);
 * ```
 */
export function listMembers(raft: RaftNode, options: MembershipOptions = {}): MemberList {
  const status = raft.status();
  if (status.role !== "leader") throw new NotLeaderError(status.id, status.leader);
  const maxLag = options.maxLag ?? 100;
  const matches = raft.matchIndexes();
  const describe = (id: string, role: MemberInfo["role"]): MemberInfo => {
    const match = matches.get(id) ?? 0;
    const behind = Math.max(0, status.commitIndex - match);
    return {
      id,
      role,
      match,
      behind,
      caughtUp: behind <= maxLag && (match > status.snapshotIndex || behind === 0),
    };
  };
  const byId = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });
  return {
    leader: status.id,
    commitIndex: status.commitIndex,
    members: [
      ...[...status.membership.voters].sort(byId).map((id) => describe(id, "voter")),
      ...[...status.membership.learners].sort(byId).map((id) => describe(id, "learner")),
    ],
  };
}

/**
 * Makes one membership change on the leader `raft` and resolves once it is
 * committed. A leader busy with another change is retried until
 * `options.timeoutMs`. A change with nothing to do is answered so only with
 * no change pending and once a quorum has confirmed that `raft` still leads
 * (a leader deposed without knowing it answers from a stale configuration;
 * an operator who then wipes a "removed" node's disk loses a voter's state).
 *
 * @throws {NotLeaderError} when `raft` does not lead (nothing was proposed).
 * @throws {MemberRefusedError} when the change is refused (nothing was proposed).
 * @throws {RaftStoppedError} when `raft` has stopped (nothing was proposed).
 * @throws {MemberOutcomeUnknownError} when it was proposed and its outcome could not be learned.
 *
 * @example
 * ```ts ignore
 * import { changeMember } from "@distkit/distkit/rsm";
 *
 * await changeMember(server.raft, { op: "add", node: "3" });
 * ```
 */
export async function changeMember(
  raft: RaftNode,
  change: MemberChange,
  options: MembershipOptions = {},
): Promise<MemberOutcome> {
  const clock = options.clock ?? defaultClock("changeMember");
  const timeoutMs = options.timeoutMs ?? 5000;
  const giveUpAt = clock.now() + timeoutMs;
  const { node } = change;
  /** A quorum confirmed this node leads, after the change was asked for. */
  let confirmed = false;
  while (true) {
    const before = listMembers(raft, options);
    // The latest configuration may hold a change not yet committed, which a
    // new leader may drop: answering "already done" from it would be false
    // (an operator then wipes a removed node's disk while it still votes).
    if (membershipPending(raft)) {
      if (clock.now() >= giveUpAt) {
        throw new MemberRefusedError(
          "a membership change is in progress (proposed, not yet committed); retry",
          true,
        );
      }
      await delay(20, { clock });
      continue;
    }
    const member = before.members.find((m) => m.id === node);
    // Nothing to do: so says the configuration of a leader that may have
    // been deposed without knowing it; answered once a quorum confirms it leads.
    let done: string | undefined;
    let proposal: MembershipChange | undefined;
    switch (change.op) {
      case "add": {
        const problem = member === undefined ? options.checkNode?.(node) : undefined;
        if (problem !== undefined) throw new MemberRefusedError(problem, false);
        if (member?.role === "learner") done = `node ${node} is already a learner`;
        else if (member?.role === "voter") done = `node ${node} is already a voter`;
        else proposal = { type: "addLearner", node };
        break;
      }
      case "remove":
        if (member === undefined) {
          done = `node ${node} is not a member`;
          break;
        }
        if (
          before.members.filter((m) => m.role === "voter").length === 1 && member.role === "voter"
        ) {
          throw new MemberRefusedError(
            `node ${node} is the last voter; it cannot be removed`,
            false,
          );
        }
        proposal = { type: "remove", node };
        break;
      case "promote":
        if (member?.role === "voter") {
          done = `node ${node} is already a voter`;
          break;
        }
        if (member === undefined) {
          throw new MemberRefusedError(
            `node ${node} is not a member; add it first (it joins as a learner)`,
            false,
          );
        }
        if (!member.caughtUp) {
          throw new MemberRefusedError(
            `learner ${node} has not caught up: it has the log through index ${member.match}, ` +
              `${member.behind} entries behind the commit index ${before.commitIndex} (at most ` +
              `${
                options.maxLag ?? 100
              } allowed); check that it runs, and retry once it has caught up`,
            true,
          );
        }
        proposal = { type: "addVoter", node };
        break;
    }
    if (done !== undefined || proposal === undefined) {
      if (confirmed) return { changed: false, note: done ?? "nothing to do", members: before };
      try {
        await deadline(raft.readIndex(), { clock, timeoutMs: Math.max(1, giveUpAt - clock.now()) });
      } catch (err) {
        if (err instanceof NotLeaderError || err instanceof RaftStoppedError) throw err;
        throw new MemberRefusedError(
          `could not confirm this node still leads (${(err as Error).message}); retry`,
          true,
        );
      }
      confirmed = true;
      continue;
    }
    // A stopped node proposes nothing (checked in the same turn as the proposal,
    // so a RaftStoppedError from here on comes from waiting for the commit).
    if (raft.status().stopped) throw new RaftStoppedError(raft.id);
    try {
      // Committed in time, or its outcome is unknown (no quorum, a new leader).
      await deadline(raft.changeMembership(proposal), { clock, timeoutMs });
    } catch (err) {
      if (err instanceof MembershipBusyError) {
        if (clock.now() >= giveUpAt) {
          throw new MemberRefusedError(
            `a membership change is in progress; retry (${err.message})`,
            true,
          );
        }
        await delay(20, { clock });
        continue;
      }
      // Refused by the proposal itself: nothing was proposed.
      if (err instanceof NotLeaderError) throw err;
      if (err instanceof RaftRequestError && err.reason === "invalid") {
        throw new MemberRefusedError(err.message, false);
      }
      throw new MemberOutcomeUnknownError((err as Error).message, { cause: err });
    }
    // A leader that removed itself (or lost leadership since) has no view of its followers any
    // more: what it listed before, with the change made.
    const after = raft.status().role === "leader"
      ? listMembers(raft, options)
      : withChange(before, change, raft.status().commitIndex);
    return { changed: true, note: describeChange(change), members: after };
  }
}

/** `list` with `change` made in it, as of `commitIndex`. */
function withChange(list: MemberList, change: MemberChange, commitIndex: number): MemberList {
  const others = list.members.filter((m) => m.id !== change.node);
  const was = list.members.find((m) => m.id === change.node);
  const members = change.op === "remove" ? others : [
    ...others,
    change.op === "add"
      ? {
        id: change.node,
        role: "learner" as const,
        match: 0,
        behind: commitIndex,
        caughtUp: false,
      }
      : {
        ...(was ?? { id: change.node, match: 0, behind: commitIndex, caughtUp: false }),
        role: "voter" as const,
      },
  ];
  const rank = (m: MemberInfo) => m.role === "voter" ? 0 : 1;
  members.sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id, "en", { numeric: true }));
  return { ...list, commitIndex, members };
}

/** Whether `raft`'s log holds a membership entry above its commit index. */
function membershipPending(raft: RaftNode): boolean {
  const { commitIndex, lastIndex } = raft.status();
  return raft.logEntries(commitIndex + 1, lastIndex).some((e) => e.kind === "membership");
}

function describeChange(change: MemberChange): string {
  switch (change.op) {
    case "add":
      return `node ${change.node} added as a learner`;
    case "remove":
      return `node ${change.node} removed`;
    case "promote":
      return `learner ${change.node} promoted to voter`;
  }
}

/**
 * What the `Member` service answers: a list or an outcome, a refusal, or
 * (not the leader, stopped) where to go.
 *
 * @example
 * ```ts
 * import type { MemberReply } from "@distkit/distkit/rsm";
 *
 * const r: MemberReply = { status: "ok", refused: { reason: "learner 3 has not caught up", retryable: true } };
 * ```
 */
export type MemberReply =
  | { status: "ok"; list: MemberList }
  | { status: "ok"; outcome: MemberOutcome }
  | { status: "ok"; refused: { reason: string; retryable: boolean } }
  | { status: "ok"; unknown: string }
  | { status: "not-leader"; leader: string | null }
  | { status: "retry"; reason: string };

/**
 * Runs one `Member` request against `raft` and turns every outcome into a
 * {@linkcode MemberReply} (the TCP service and the HTTP API share it).
 *
 * @example
 * ```ts ignore
 * import { memberRequest } from "@distkit/distkit/rsm";
 *
 * const reply = await memberRequest(server.raft, { op: "promote", node: "3" });
 * ```
 */
export async function memberRequest(
  raft: RaftNode,
  request: MemberChange | { op: "list" },
  options: MembershipOptions = {},
): Promise<MemberReply> {
  try {
    if (request.op === "list") return { status: "ok", list: listMembers(raft, options) };
    return { status: "ok", outcome: await changeMember(raft, request, options) };
  } catch (err) {
    if (err instanceof RaftStoppedError) {
      return { status: "retry", reason: "this node has stopped" };
    }
    if (err instanceof NotLeaderError) {
      if (raft.status().stopped) return { status: "retry", reason: "this node has stopped" };
      return { status: "not-leader", leader: err.leader };
    }
    if (err instanceof MemberRefusedError) {
      return { status: "ok", refused: { reason: err.message, retryable: err.retryable } };
    }
    if (err instanceof MemberOutcomeUnknownError) return { status: "ok", unknown: err.message };
    throw err;
  }
}

/**
 * Registers the `Member` service (`List`, `Add`, `Remove`, `Promote`; the
 * changes take `{ node }`) on `rpc`, for the replicated service led by
 * `raft`. The RPC server's own checks (cluster id, shared secret) apply.
 *
 * @example
 * ```ts ignore
 * import { serveMembers } from "@distkit/distkit/rsm";
 *
 * serveMembers(rpc, server.raft);
 * ```
 */
export function serveMembers(
  rpc: RpcServer,
  raft: RaftNode,
  options: MembershipOptions = {},
): void {
  const change = (op: MemberChange["op"]) => (args: unknown) => {
    const { node } = expectShape<{ node: string }>(args, { node: "string" });
    return memberRequest(raft, { op, node }, options);
  };
  rpc.addService("Member", {
    List: () => memberRequest(raft, { op: "list" }, options),
    Add: change("add"),
    Remove: change("remove"),
    Promote: change("promote"),
  });
}
