import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import {
  gidsOf,
  initialConfig,
  joinGroups,
  keyToShard,
  leaveGroups,
  moveShard,
  N_SHARDS,
  rebalance,
  type ShardConfig,
} from "./config.ts";

function loads(config: ShardConfig): Map<number, number> {
  const counts = new Map(gidsOf(config).map((g) => [g, 0]));
  for (const gid of config.shards) counts.set(gid, (counts.get(gid) ?? 0) + 1);
  return counts;
}

function checkBalanced(config: ShardConfig): void {
  const gids = gidsOf(config);
  if (gids.length === 0) {
    assert.ok(config.shards.every((g) => g === 0), "shards without groups must be on gid 0");
    return;
  }
  for (const gid of config.shards) assert.ok(gids.includes(gid), `shard on dead group ${gid}`);
  const counts = [...loads(config).values()];
  const spread = Math.max(...counts) - Math.min(...counts);
  assert.ok(spread <= 1, `unbalanced: ${counts}`);
}

Deno.test("shard config: keys map to shards by their first character", () => {
  assert.equal(keyToShard(""), 0);
  assert.equal(keyToShard("a"), 97 % N_SHARDS);
  assert.equal(keyToShard("0"), 48 % N_SHARDS);
});

Deno.test("shard config: join, leave and move keep every shard on a live group, balanced", () => {
  let c = initialConfig();
  c = joinGroups(c, { 1: ["a", "b"] });
  assert.deepEqual(c.shards, new Array(N_SHARDS).fill(1));
  assert.deepEqual(c.groups, { 1: ["a", "b"] });
  c = joinGroups(c, { 2: ["c"], 3: ["d"] });
  checkBalanced(c);
  assert.equal(c.num, 2);
  c = moveShard(c, { shard: 0, gid: 3 });
  assert.equal(c.shards[0], 3);
  assert.equal(c.num, 3);
  c = leaveGroups(c, [1, 2, 3]);
  assert.deepEqual(c.shards, new Array(N_SHARDS).fill(0));
  assert.throws(() => moveShard(c, { shard: 0, gid: 9 }), /not in configuration/);
  assert.throws(() => moveShard(c, { shard: 10, gid: 9 }), /shard must be 0..9/);
  assert.throws(() => joinGroups(c, { 0: ["x"] }), /positive integer/);
  assert.throws(() => joinGroups(c, { 4: [] }), /at least one server/);
});

Deno.test("shard config: more groups than shards leaves the extra groups idle", () => {
  const groups: Record<number, string[]> = {};
  for (let g = 1; g <= 12; g++) groups[g] = [`s${g}`];
  const c = joinGroups(initialConfig(), groups);
  const counts = [...loads(c).values()];
  assert.ok(counts.every((n) => n <= 1));
  assert.equal(counts.filter((n) => n === 1).length, N_SHARDS);
});

Deno.test("shard config: rebalancing moves the fewest shards, between the right groups, deterministically", () => {
  const random = new Random(11);
  for (let run = 0; run < 300; run++) {
    let c = initialConfig();
    let balanced = true; // false after a move, until the next join or leave
    for (let step = 0; step < 20; step++) {
      const before = c;
      const existing = gidsOf(before);
      const roll = random.int(3);
      if (roll === 0 || existing.length === 0) {
        const joining: Record<number, string[]> = {};
        for (let k = random.int(3); k >= 0; k--) {
          const gid = 1 + random.int(15);
          if (!existing.includes(gid)) joining[gid] = [`g${gid}`];
        }
        c = joinGroups(before, joining);
        // No shard moves between groups that existed before the join.
        before.shards.forEach((gid, s) => {
          if (!balanced) return;
          if (existing.includes(c.shards[s])) {
            assert.equal(c.shards[s], gid === 0 ? c.shards[s] : gid);
          }
        });
      } else if (roll === 1) {
        const leaving = existing.filter(() => random.chance(0.3));
        c = leaveGroups(before, leaving);
        // The remaining groups keep their shards.
        before.shards.forEach((gid, s) => {
          if (!balanced) return;
          if (!leaving.includes(gid) && gid !== 0) assert.equal(c.shards[s], gid);
        });
      } else {
        c = moveShard(before, {
          shard: random.int(N_SHARDS),
          gid: existing[random.int(existing.length)],
        });
        balanced = false; // a move is not balanced, on purpose
        continue;
      }
      balanced = true;
      checkBalanced(c);
      // Deterministic: the same input, the same output.
      assert.deepEqual(rebalance(before.shards, gidsOf(c)), c.shards);
      // Minimal: a group keeps min(its shards, its share) of what it had.
      const after = loads(c);
      let moved = 0;
      before.shards.forEach((gid, s) => {
        if (c.shards[s] !== gid) moved++;
      });
      let needed = 0;
      for (const [gid, n] of loads(before)) {
        if (gid === 0 || !after.has(gid)) needed += n;
        else needed += Math.max(0, n - after.get(gid)!);
      }
      assert.equal(moved, needed, `moved ${moved} shards where ${needed} had to`);
    }
  }
});
