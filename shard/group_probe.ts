/**
 * Asking a shard group's servers who they are before the controller is told
 * of them: a group joined with a mistyped address takes shards it can never
 * pull, and the groups that held them wait to hand them over for good (a
 * later `leave` does not release them: each group moves through the
 * configurations in order). `distkit shard join` refuses such a join unless
 * told `--force`.
 *
 * @module
 */
import type { Transport } from "../net/transport.ts";
import { SHARD_SERVICE } from "./group.ts";

/**
 * What `ShardKV.Status` answers: the group a server belongs to and the
 * configuration it has reached.
 *
 * @example
 * ```ts
 * import type { ShardServerStatus } from "@distkit/distkit/shard";
 *
 * const line = (s: ShardServerStatus) => `group ${s.gid} at configuration ${s.configNum}`;
 * ```
 */
export interface ShardServerStatus {
  /** The group the server belongs to (its `--gid`). */
  gid: number;
  /** The configuration its group has reached, as this replica has applied it. */
  configNum: number;
  /**
   * The servers of its Raft group (voters, then learners) as it knows them:
   * a server started alone with a group's id is a group of its own.
   */
  members?: string[];
}

/**
 * One server's answer to {@linkcode probeGroupServers}: its status, or why
 * there is none.
 *
 * @example
 * ```ts
 * import type { GroupServerProbe } from "@distkit/distkit/shard";
 *
 * const ok = (p: GroupServerProbe) => p.status !== undefined;
 * ```
 */
export interface GroupServerProbe {
  /** The address asked. */
  server: string;
  /** Its answer, when it gave one. */
  status?: ShardServerStatus;
  /** Why it gave none (unreachable, refused, not a shard group server...). */
  problem?: string;
}

/**
 * Options of {@linkcode probeGroupServers}.
 *
 * @example
 * ```ts
 * import type { ProbeGroupOptions } from "@distkit/distkit/shard";
 *
 * const options: ProbeGroupOptions = { timeoutMs: 2000 };
 * ```
 */
export interface ProbeGroupOptions {
  /** How long to wait for each server. Default 2,000 ms. */
  timeoutMs?: number;
  /** Gives up early. */
  signal?: AbortSignal;
}

/**
 * Asks each of `servers` (at once) for its `ShardKV.Status`.
 *
 * @example
 * ```ts ignore
 * const probes = await probeGroupServers(transport, ["127.0.0.1:7101"]);
 * ```
 */
export function probeGroupServers(
  transport: Transport,
  servers: string[],
  options: ProbeGroupOptions = {},
): Promise<GroupServerProbe[]> {
  const timeoutMs = options.timeoutMs ?? 2000;
  return Promise.all(servers.map(async (server): Promise<GroupServerProbe> => {
    try {
      const status = await transport.connect(server).call<ShardServerStatus>(
        `${SHARD_SERVICE}.Status`,
        {},
        { timeoutMs, signal: options.signal },
      );
      if (!Number.isSafeInteger(status?.gid) || !Number.isSafeInteger(status?.configNum)) {
        return { server, problem: "it answered, but not as a shard group server does" };
      }
      const members = Array.isArray(status.members) &&
          status.members.every((m: unknown) => typeof m === "string")
        ? status.members
        : undefined;
      return {
        server,
        status: { gid: status.gid, configNum: status.configNum, ...(members && { members }) },
      };
    } catch (err) {
      if (options.signal?.aborted) throw err;
      return { server, problem: (err as Error).message };
    }
  }));
}

/**
 * Fewer than a majority of a group's servers answered as servers of that
 * group: joining it would hand it shards it cannot take.
 *
 * @example
 * ```ts
 * import { GroupServersError } from "@distkit/distkit/shard";
 *
 * const err = new GroupServersError(100, [{ server: "127.0.0.1:7101", problem: "refused" }]);
 * err.message.includes("--force"); // true
 * ```
 */
export class GroupServersError extends Error {
  /** The group asked for. */
  readonly gid: number;
  /** Each server's answer. */
  readonly probes: GroupServerProbe[];

  /**
   * Creates the error.
   *
   * @param gid The group asked for.
   * @param probes Each server's answer.
   * @param options The servers the configuration lists for the group now, if it has it.
   */
  constructor(gid: number, probes: GroupServerProbe[], options: { current?: string[] } = {}) {
    const lines = probes.map((p) =>
      `  ${p.server}: ${
        p.status === undefined
          ? p.problem
          : p.status.gid !== gid
          ? `serves group ${p.status.gid}, not ${gid}`
          : servesCurrent(p, options.current)
          ? `serves group ${gid}`
          : `serves a group ${gid} of its own (its Raft members: ${
            p.status.members?.join(", ") ?? "unknown"
          }), not the one the configuration lists (${options.current!.join(", ")})`
      }`
    );
    super(
      `fewer than a majority of group ${gid}'s servers answer as its servers:\n${
        lines.join("\n")
      }\nnothing was changed. Start the group's servers (shard group serve --gid ${gid}) at ` +
        `these addresses, or fix --servers; --force joins it anyway (its shards then wait ` +
        `for its servers, and the groups that hold them wait to hand them over)`,
    );
    this.name = "GroupServersError";
    this.gid = gid;
    this.probes = probes;
  }
}

/**
 * Whether a majority of the probed servers serve group `gid`; when the
 * configuration has the group already (`options.current`, the servers it
 * lists), as servers of that group, and none of them a group of its own
 * started under its id.
 *
 * @throws {GroupServersError} when they do not.
 *
 * @example
 * ```ts
 * import { checkGroupServers } from "@distkit/distkit/shard";
 *
 * checkGroupServers(100, [{ server: "a", status: { gid: 100, configNum: 0 } }]); // no throw
 * ```
 */
export function checkGroupServers(
  gid: number,
  probes: GroupServerProbe[],
  options: { current?: string[] } = {},
): void {
  const ofGid = probes.filter((p) => p.status?.gid === gid);
  const serving = ofGid.filter((p) => servesCurrent(p, options.current));
  // One group of its own among them is one too many: the configuration would list it, and
  // clients would reach its empty store for the group's keys.
  if (serving.length * 2 <= probes.length || serving.length < ofGid.length) {
    throw new GroupServersError(gid, probes, options);
  }
}

/**
 * Whether a server of the group is one of the group the configuration has
 * now (`current`, its servers; undefined: a new group): listed there, or in
 * one Raft group with one that is. A server started alone under the group's
 * id (a new, empty folder) is a group of its own: joined in its place, its
 * empty store would answer for the group's keys.
 */
function servesCurrent(probe: GroupServerProbe, current: string[] | undefined): boolean {
  if (current === undefined) return true;
  // A group of one is known by its one server; in a larger group a server must be in one Raft
  // group with another of the group's servers (one listed now, wiped and started alone at its
  // address, is a group of its own).
  if (current.length === 1 && current[0] === probe.server) return true;
  return probe.status?.members?.some((m) => m !== probe.server && current.includes(m)) ?? false;
}
