/**
 * Shard configurations and how they change: which replica group serves each
 * of the {@linkcode N_SHARDS} shards, and the rebalancing that keeps the
 * assignment balanced while moving as few shards as possible. Pure and
 * deterministic, so every controller replica computes the same result.
 *
 * @module
 */

/**
 * The number of shards keys are spread over.
 *
 * @example
 * ```ts
 * import { N_SHARDS } from "@distkit/distkit/shard";
 *
 * N_SHARDS; // 10
 * ```
 */
export const N_SHARDS = 10;

/**
 * A configuration: its number, the group (gid) of each shard (0: none), and
 * the servers of each group. Configuration 0 has no groups.
 *
 * @example
 * ```ts
 * import type { ShardConfig } from "@distkit/distkit/shard";
 *
 * const config: ShardConfig = {
 *   num: 1,
 *   shards: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
 *   groups: { 100: ["a", "b", "c"] },
 * };
 * ```
 */
export interface ShardConfig {
  /** The configuration's number; each change makes the next one. */
  num: number;
  /** For each shard, the gid of the group that serves it (0: no group). */
  shards: number[];
  /** The servers of each group, by gid. */
  groups: Record<number, string[]>;
}

/**
 * The first configuration: no groups, every shard on gid 0.
 *
 * @example
 * ```ts
 * import { initialConfig } from "@distkit/distkit/shard";
 *
 * initialConfig().shards.every((gid) => gid === 0); // true
 * ```
 */
export function initialConfig(): ShardConfig {
  return { num: 0, shards: new Array(N_SHARDS).fill(0), groups: {} };
}

/**
 * The shard a key belongs to: its first character's code modulo
 * {@linkcode N_SHARDS} (0 for the empty key), as in the course.
 *
 * @example
 * ```ts
 * import { keyToShard } from "@distkit/distkit/shard";
 *
 * keyToShard("a"); // 7 ("a" is 97)
 * ```
 */
export function keyToShard(key: string): number {
  return key.length === 0 ? 0 : key.charCodeAt(0) % N_SHARDS;
}

/**
 * The gids of a configuration's groups, ascending.
 *
 * @example
 * ```ts
 * import { gidsOf, initialConfig, joinGroups } from "@distkit/distkit/shard";
 *
 * gidsOf(joinGroups(initialConfig(), { 7: ["a"], 3: ["b"] })); // [3, 7]
 * ```
 */
export function gidsOf(config: ShardConfig): number[] {
  return Object.keys(config.groups).map(Number).sort((a, b) => a - b);
}

/**
 * Assigns the shards to `gids` (ascending) so that every shard has a live
 * group, the loads differ by at most one, and as few shards as possible
 * move: groups with more shards keep the larger share; only shards of groups
 * over their share, or of groups that are gone, change hands, and they go to
 * the groups under their share. Deterministic: the same input always gives
 * the same output.
 *
 * @example
 * ```ts
 * import { rebalance } from "@distkit/distkit/shard";
 *
 * rebalance([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 2]); // [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
 * ```
 */
export function rebalance(shards: readonly number[], gids: readonly number[]): number[] {
  if (gids.length === 0) return new Array(shards.length).fill(0);
  const live = new Set(gids);
  const owned = new Map<number, number[]>(gids.map((g) => [g, []]));
  const free: number[] = [];
  shards.forEach((gid, shard) => {
    if (live.has(gid)) owned.get(gid)!.push(shard);
    else free.push(shard);
  });
  // The larger shares go to the groups that hold the most (then the lowest gid).
  const order = [...gids].sort((a, b) => owned.get(b)!.length - owned.get(a)!.length || a - b);
  const base = Math.floor(shards.length / gids.length);
  const extra = shards.length % gids.length;
  const target = new Map(order.map((g, k) => [g, base + (k < extra ? 1 : 0)]));
  for (const g of order) {
    const mine = owned.get(g)!;
    while (mine.length > target.get(g)!) free.push(mine.pop()!); // its highest shards go
  }
  free.sort((a, b) => a - b);
  const next = [...shards];
  for (const g of order) {
    const mine = owned.get(g)!;
    while (mine.length < target.get(g)!) {
      const shard = free.shift()!;
      mine.push(shard);
      next[shard] = g;
    }
  }
  return next;
}

/**
 * The next configuration after groups join (gid → servers). A gid that is
 * already in the configuration keeps its shards and gets the new server list.
 *
 * @throws {RangeError} for gid 0 or a group without servers.
 *
 * @example
 * ```ts
 * import { initialConfig, joinGroups } from "@distkit/distkit/shard";
 *
 * joinGroups(initialConfig(), { 100: ["a"] }).shards; // all 100
 * ```
 */
export function joinGroups(config: ShardConfig, groups: Record<number, string[]>): ShardConfig {
  const next = { ...config.groups };
  for (const [gidText, servers] of Object.entries(groups)) {
    const gid = Number(gidText);
    if (!Number.isSafeInteger(gid) || gid <= 0) {
      throw new RangeError(`a group id must be a positive integer, got ${gidText}`);
    }
    if (!Array.isArray(servers) || servers.length === 0) {
      throw new RangeError(`group ${gid} needs at least one server`);
    }
    next[gid] = [...servers];
  }
  return withGroups(config, next);
}

/**
 * The next configuration after groups leave; their shards go to the others.
 * Gids that are not in the configuration are ignored.
 *
 * @example
 * ```ts
 * import { initialConfig, joinGroups, leaveGroups } from "@distkit/distkit/shard";
 *
 * const two = joinGroups(initialConfig(), { 1: ["a"], 2: ["b"] });
 * leaveGroups(two, [1]).shards; // all 2
 * ```
 */
export function leaveGroups(config: ShardConfig, gids: readonly number[]): ShardConfig {
  const next = { ...config.groups };
  for (const gid of gids) delete next[gid];
  return withGroups(config, next);
}

/**
 * The next configuration with `shard` moved to group `gid`, and nothing else
 * changed (no rebalancing).
 *
 * @throws {RangeError} for a shard out of range or a gid not in the configuration.
 *
 * @example
 * ```ts
 * import { initialConfig, joinGroups, moveShard } from "@distkit/distkit/shard";
 *
 * const two = joinGroups(initialConfig(), { 1: ["a"], 2: ["b"] });
 * moveShard(two, { shard: 0, gid: 2 }).shards[0]; // 2
 * ```
 */
export function moveShard(
  config: ShardConfig,
  change: { shard: number; gid: number },
): ShardConfig {
  const { shard, gid } = change;
  if (!Number.isInteger(shard) || shard < 0 || shard >= N_SHARDS) {
    throw new RangeError(`shard must be 0..${N_SHARDS - 1}, got ${shard}`);
  }
  if (config.groups[gid] === undefined) {
    throw new RangeError(`group ${gid} is not in configuration ${config.num}; join it first`);
  }
  const shards = [...config.shards];
  shards[shard] = gid;
  return { num: config.num + 1, shards, groups: copyGroups(config.groups) };
}

function withGroups(config: ShardConfig, groups: Record<number, string[]>): ShardConfig {
  const gids = Object.keys(groups).map(Number).sort((a, b) => a - b);
  return {
    num: config.num + 1,
    shards: rebalance(config.shards, gids),
    groups: copyGroups(groups),
  };
}

function copyGroups(groups: Record<number, string[]>): Record<number, string[]> {
  const out: Record<number, string[]> = {};
  for (const [gid, servers] of Object.entries(groups)) out[Number(gid)] = [...servers];
  return out;
}
