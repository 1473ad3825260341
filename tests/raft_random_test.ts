/**
 * Randomized simulation of Raft: many seeds of random partitions, crashes and
 * restarts, drops, delays, duplicates and reordering, with Raft's safety
 * properties checked after every step:
 *
 * - election safety: at most one leader per term;
 * - log matching: two logs with an entry of the same index and term agree on
 *   every entry up to it;
 * - leader completeness: a leader's log holds every entry applied anywhere;
 * - state machine safety: every node applies the same command at each index
 *   (checked by the harness on every apply);
 * - over the whole run ({@linkcode AppliedLedger}, fed by every core as it
 *   goes): an entry once applied by any node is never replaced at its index
 *   on any node, and no term has two leaders.
 *
 * Besides the faults, membership changes: two spare servers start outside
 * the cluster; learners are added (spares, or members removed earlier, with
 * the state they kept), promoted and removed, voters removed (the leader
 * too), leadership is transferred, and half the seeds snapshot often, so
 * snapshots are taken and sent while configurations change. Some changes
 * are proposed the moment a node becomes leader, before its no-op commits
 * (the leader must refuse those until it has committed in its term).
 *
 * Every server's storage is a `SimStorage` in even seeds: saves take
 * virtual time and are split into commits, so a crash keeps only a prefix of
 * the save in progress (which Raft must survive). In odd seeds it is the real
 * `SegmentLogStorage` on a `SimFs` (segments of 4, 8 or 16 KiB, from the
 * seed): a crash is a power loss (unsynced writes and folder changes lost,
 * the last write torn at a sector), and the damage below is done to its
 * files (a flipped bit or a rolled-back write in a segment or a snapshot's
 * data, the folder wiped), after a process crash (a power loss may take back
 * the mark's newest floors, a window the mark documents); those seeds also
 * cut a server's power while it syncs a write and fill disks for a while
 * (tests/raft_disk_faults.ts), and print their own summary line.
 *
 * A crash also damages the storage beyond the storage contract (a flipped
 * bit, resolved saves lost, the file gone) with chance DAMAGE_CHANCE, on at most one server per run: that server must
 * refuse to start (fail-stop) and stays down; the others, never fewer than
 * 3 voters with at most one of them down for good, keep a majority, and the
 * run must end live. Half the damaging crashes are issue 15's amnesia: the
 * leader goes down too and the damaged server comes straight back. A server
 * that started from a shortened log would break the ledger (checked: with
 * the high-water mark's check disabled, seed 2351 fails so, two leaders in
 * one term).
 *
 * Runs RAFT_SEEDS seeds (default 500) from a random base; `SEED=<n>` replays
 * one (its storage too). A failure prints the seed and the schedule of
 * faults. A second test runs RAFT_REPLAY_SEEDS seeds (default 4) twice each
 * and compares their trace hashes: the same seed, the same run.
 */
import assert from "node:assert/strict";
import { delay, Random, seedFromEnv, simulate } from "../net/mod.ts";
import {
  AppliedLedger,
  type Entry,
  MembershipBusyError,
  type MembershipChange,
  type RaftObserver,
  SimFs,
  type SimFsStats,
} from "../raft/mod.ts";
import { Cluster } from "./raft_cluster.ts";
import { DiskFaults } from "./raft_disk_faults.ts";
import { segmentLogOf } from "./sim_disk.ts";
import { checkReplays } from "./seeds.ts";

const VIRTUAL_MS = 6_000;

/**
 * The chance that a crash also damages the server's storage beyond the
 * storage contract (a flipped bit, resolved saves lost, the file gone), while
 * no server of the run has been damaged yet.
 */
const DAMAGE_CHANCE = 0.3;
const DAMAGES = ["flip", "lose", "wipe"] as const;

/** Spare servers, outside the cluster at first, for membership changes. */
const SPARES = 2;

/** Counts of the membership activity of one seed. */
interface Activity {
  changes: number;
  busy: number;
  transfers: number;
  /** Crashes that damaged a server's storage beyond the contract. */
  damaged: number;
  /** Servers that refused to start from damaged storage. */
  failStops: number;
  /** Servers out of the membership replaced by a fresh folder (`folders` seeds). */
  replaced: number;
  /** Seeds run on the segment log (0 or 1 for one seed). */
  segmentSeeds: number;
  /** Servers of the segment log seeds crashed while syncing and restarted at once. */
  powerCycles: number;
  /** Disks filled up for a while (segment log seeds). */
  fullDisks: number;
  /** Nodes whose storage failed (a full disk), restarted by their operator once it had space. */
  storageFailures: number;
  /** Of those, nodes whose server stayed on the network while stopped (`stoppedServerStays`). */
  stoppedStayed: number;
  /** What the segment log's disks saw: crashes (power losses and process crashes), torn writes... */
  disk: SimFsStats;
}

/**
 * With folders bound (`folders` seeds): replaces a server out of the
 * leader's committed membership by a fresh folder that joins (an operator
 * replacing a dead disk; the admin may add it back later), or asks the
 * leader to make an existing voter a voter again, which must keep its folder.
 */
async function replaceOrRebind(
  cfg: Cluster,
  leader: number,
  admin: Random,
  log: { schedule: string[]; activity: Activity; now: () => number; frozen: () => boolean },
): Promise<void> {
  const node = cfg.node(leader);
  const { commitIndex, lastIndex, membership } = node.status();
  if (admin.chance(0.3)) {
    const voter = admin.pick(membership.voters);
    log.schedule.push(`${log.now()} addVoter ${voter} again, on ${leader}`);
    // Not awaited (like the other changes): its outcome may stay open until the run ends.
    node.changeMembership({ type: "addVoter", node: voter }).catch(() => {});
    return;
  }
  if (log.frozen()) return;
  const pending = node.logEntries(commitIndex + 1, lastIndex).some((e) => e.kind === "membership");
  const members = [...membership.voters, ...membership.learners];
  const outside = cfg.ids.filter((id) => !members.includes(id)).map(Number);
  if (pending || outside.length === 0) return;
  const i = admin.pick(outside);
  await cfg.replace(i);
  await cfg.startServer(i);
  cfg.connect(i);
  log.activity.replaced++;
  log.schedule.push(`${log.now()} replace ${i} by a fresh folder (it joins)`);
}

/** Counts of a run (or of many runs) before anything happened. */
function noActivity(): Activity {
  return {
    changes: 0,
    busy: 0,
    transfers: 0,
    damaged: 0,
    failStops: 0,
    replaced: 0,
    segmentSeeds: 0,
    powerCycles: 0,
    fullDisks: 0,
    storageFailures: 0,
    stoppedStayed: 0,
    disk: SimFs.noStats(),
  };
}

/** Adds `b`'s counts to `a`'s. */
function addActivity(a: Activity, b: Activity): void {
  for (const key of Object.keys(a) as (keyof Activity)[]) {
    if (key !== "disk") a[key] += b[key];
  }
  for (const key of Object.keys(a.disk) as (keyof SimFsStats)[]) a.disk[key] += b.disk[key];
}

/** The running leader of the highest term, if any. */
function currentLeader(cfg: Cluster): number | undefined {
  let best: number | undefined;
  let bestTerm = -1;
  for (let i = 0; i < cfg.n; i++) {
    if (!cfg.isRunning(i)) continue;
    const s = cfg.node(i).status();
    if (s.role === "leader" && s.term > bestTerm) [best, bestTerm] = [i, s.term];
  }
  return best;
}

/**
 * A random one-server change the leader's latest membership allows, if any.
 * A new leader (`fresh`) of an even configuration mostly shrinks it at once:
 * the change that races worst with an earlier leader's growing one. In a
 * race seed the voters swing between even and odd counts (grow, shrink) so
 * that such races can happen at all (with an odd count the quorums of a
 * growing and a shrinking change always overlap).
 */
function pickChange(
  cfg: Cluster,
  leader: number,
  random: Random,
  how: { fresh: boolean; race: boolean },
): MembershipChange | undefined {
  const { voters, learners } = cfg.node(leader).status().membership;
  const outside = cfg.ids.filter((id) => !voters.includes(id) && !learners.includes(id));
  const even = voters.length % 2 === 0;
  const shrink = how.fresh && even && random.chance(0.7);
  if (how.race && !shrink) {
    if (voters.length > 3 && random.chance(even ? 0.5 : 0.7)) {
      return { type: "remove", node: random.pick(voters) };
    }
    if (learners.length > 0) return { type: "addVoter", node: random.pick(learners) };
    if (outside.length > 0) return { type: "addLearner", node: random.pick(outside) };
    return undefined;
  }
  const roll = shrink ? 99 : random.int(100);
  if (roll < 35 && outside.length > 0) {
    return { type: "addLearner", node: random.pick(outside) }; // a spare, or a re-add
  }
  if (roll < 65 && learners.length > 0) return { type: "addVoter", node: random.pick(learners) };
  if (roll < 80 && learners.length > 0) return { type: "remove", node: random.pick(learners) };
  if (voters.length > 3) return { type: "remove", node: random.pick(voters) }; // maybe itself
  if (outside.length > 0) return { type: "addLearner", node: random.pick(outside) };
  return undefined;
}

/**
 * Proposes a membership change on `leader` (not awaited: it resolves when
 * the change commits, which a partition may delay past the run's end). When
 * the leader took it, sometimes cut the leader off at once with a few others
 * (the added node among them, a removed one not), so that the new
 * configuration entry reaches only some nodes: the others elect a leader
 * that may not know of it.
 */
function proposeChange(
  cfg: Cluster,
  leader: number,
  random: Random,
  log: {
    schedule: string[];
    activity: Activity;
    now: () => number;
    why: string;
    race: boolean;
    frozen: () => boolean;
  },
): void {
  if (!cfg.isRunning(leader) || log.frozen()) return;
  const change = pickChange(cfg, leader, random, {
    fresh: log.why.startsWith("new leader"),
    race: log.race,
  });
  if (change === undefined) return;
  const node = cfg.node(leader);
  const before = node.status().lastIndex;
  log.schedule.push(`${log.now()} ${log.why} ${leader}: ${change.type} ${change.node}`);
  node.changeMembership(change).then(
    () => log.activity.changes++,
    (err) => {
      if (err instanceof MembershipBusyError) log.activity.busy++;
    },
  );
  if (node.status().lastIndex === before || !random.chance(0.8)) return;
  // The leader's side: it, an added node, and at most one other (when the
  // change removes a voter, one that stays, so the smaller configuration
  // can commit without the rest).
  const side = new Set([String(leader)]);
  if (change.type !== "remove") side.add(change.node);
  const stays = node.status().membership.voters.filter((v) => !side.has(v));
  const others = change.type === "remove" ? stays : cfg.ids.filter((id) => !side.has(id));
  if (others.length > 0 && random.chance(0.5)) side.add(random.pick(others));
  const rest = cfg.ids.filter((id) => !side.has(id));
  cfg.sim.net.partition([...side], rest);
  log.schedule.push(`${log.now()} partition ${[...side]} | ${rest} (right after the change)`);
}

/**
 * Whether membership is settled: no server, running or crashed, holds a
 * configuration entry above its commit index. Only then may a crash damage a
 * server's storage for good, and no change is proposed after that in the
 * run. Otherwise a server lost for good can stall the cluster, through no
 * fault of storage: a leader that removed itself with an entry only it and
 * the lost server hold, once restarted, does not campaign (it is not in its
 * latest configuration) and refuses its vote to the others (its log is
 * longer), who then lack a majority of the configuration they know. Seen with
 * seed 1335 of base 1000 (a liveness gap of the core: a node whose own
 * removal is uncommitted could campaign).
 */
async function settled(cfg: Cluster): Promise<boolean> {
  for (let i = 0; i < cfg.n; i++) {
    if (cfg.failed(i)) continue;
    let tail: Entry[];
    if (cfg.isRunning(i)) {
      const s = cfg.node(i).status();
      tail = cfg.node(i).logEntries(s.commitIndex + 1, s.lastIndex);
    } else {
      const stored = await cfg.stored(i); // what its restart will find
      tail = stored.entries.filter((e) => e.index > stored.hardState.commit);
    }
    if (tail.some((e) => e.kind === "membership")) return false;
  }
  return true;
}

/** Checks the safety properties across the running nodes; throws on violation. */
function checkSafety(cfg: Cluster, leaders: Map<number, string>, ledger: AppliedLedger): void {
  ledger.check();
  cfg.checkFailure();
  const running = cfg.ids.map((_, i) => i).filter((i) => cfg.isRunning(i));
  for (const i of running) {
    const s = cfg.node(i).status();
    if (s.role !== "leader") continue;
    const known = leaders.get(s.term);
    if (known !== undefined && known !== s.id) {
      throw new Error(`election safety: ${known} and ${s.id} are both leaders of term ${s.term}`);
    }
    leaders.set(s.term, s.id);
    // Leader completeness: everything applied anywhere is in this leader's log.
    const node = cfg.node(i);
    for (const [index, term] of cfg.appliedTerms) {
      if (index <= s.snapshotIndex || s.term <= cfg.committedBy.get(index)!) continue;
      const entry = node.logEntries(index, index)[0];
      if (entry === undefined || entry.term !== term) {
        throw new Error(
          `leader completeness: leader ${s.id} (term ${s.term}) lacks applied entry ${index} of term ${term}`,
        );
      }
    }
  }
  // Log matching, pairwise.
  for (let a = 0; a < running.length; a++) {
    for (let b = a + 1; b < running.length; b++) {
      const na = cfg.node(running[a]);
      const nb = cfg.node(running[b]);
      const from = Math.max(na.status().snapshotIndex, nb.status().snapshotIndex) + 1;
      const to = Math.min(na.status().lastIndex, nb.status().lastIndex);
      const ea = na.logEntries(from, to);
      const eb = nb.logEntries(from, to);
      let matchedUpTo = -1;
      for (let k = ea.length - 1; k >= 0; k--) {
        if (ea[k].term === eb[k].term) {
          matchedUpTo = k;
          break;
        }
      }
      for (let k = 0; k <= matchedUpTo; k++) {
        if (
          ea[k].term !== eb[k].term ||
          JSON.stringify(commandOf(ea[k])) !== JSON.stringify(commandOf(eb[k]))
        ) {
          throw new Error(
            `log matching: nodes ${running[a]} and ${running[b]} differ at ${ea[k].index} ` +
              `but agree at ${ea[matchedUpTo].index}`,
          );
        }
      }
    }
  }
}

async function runSeed(
  seed: number,
): Promise<{ commits: number; faults: number; activity: Activity; trace: string }> {
  const schedule: string[] = [];
  let runLedger: AppliedLedger | undefined;
  try {
    return await simulate(async (sim) => {
      const { random, net, clock } = sim;
      // A third of the seeds race membership changes: four voters (two
      // changes' quorums can then miss each other), no PreVote, and only
      // partitions and heals for faults, so leaders come and go quickly.
      const race = random.chance(1 / 3);
      const voters = race ? 4 : random.pick([3, 4, 5]);
      const n = voters + SPARES;
      const ledger = (runLedger = new AppliedLedger());
      const activity = noActivity();
      const admin = random.fork();
      // Set once a server's storage is damaged: no membership change after that.
      let damaged: number | undefined;
      const frozen = () => damaged !== undefined;
      const log = { schedule, activity, now: () => clock.now(), why: "", race, frozen };
      let eager = false;
      // Every core reports to the ledger; a new leader is sometimes asked
      // for a change at once, before its no-op can have committed.
      const observer: RaftObserver = {
        applied: (node, entries) => ledger.applied(node, entries),
        installed: (node, meta) => ledger.installed(node, meta),
        removed: (node, entries) => ledger.removed(node, entries),
        leader: (node, term) => {
          ledger.leader(node, term);
          if (eager && admin.chance(0.8)) {
            queueMicrotask(() =>
              proposeChange(cfg, Number(node), admin, { ...log, why: `new leader (term ${term})` })
            );
          }
        },
      };
      const folders = random.chance(0.5);
      const segments = segmentLogOf(seed, 0); // odd seeds: the segment log on a SimFs
      schedule.push(
        segments
          ? `storage: SegmentLogStorage on SimFs, ${segments.segmentBytes}-byte segments`
          : "storage: SimStorage",
      );
      if (segments) activity.segmentSeeds++;
      // Seeds with bit 2 set leave a stopped node's server on the network (seed 3221).
      const stoppedServerStays = ((seed >>> 2) & 1) === 1;
      if (stoppedServerStays) schedule.push("a node that stops leaves its server on the network");
      const cfg = await Cluster.start(sim, n, {
        segments,
        stoppedServerStays,
        initialVoters: voters,
        unreliable: !race && random.chance(0.3),
        snapshotEvery: random.chance(0.5) ? 5 + random.int(20) : undefined,
        // Some seeds run without PreVote (an option we export): elections
        // then raise terms freely, and races between leaders come sooner.
        node: { observer, preVote: !race && random.chance(0.5) },
        // Half the seeds bind voters to their folders (what `kv serve` does): bind entries
        // mix with the membership changes, and answers are filtered by folder.
        folders,
      });
      eager = true;
      const leaders = new Map<number, string>();
      let stop = false;
      let commits = 0;
      const client = (async () => {
        while (!stop) {
          for (let i = 0; i < n; i++) {
            if (!cfg.isRunning(i)) continue;
            try {
              await cfg.node(i).propose(random.int(1e9));
              commits++;
            } catch {
              // refused, or the node stopped (a broken invariant is reported by the checker)
            }
          }
          await delay(10 + random.int(40), { clock });
        }
      })();
      let violation: Error | undefined;
      const checker = (async () => {
        while (!stop && violation === undefined) {
          try {
            checkSafety(cfg, leaders, ledger);
          } catch (err) {
            violation = err as Error;
          }
          await delay(25, { clock });
        }
      })();
      // The operator: membership changes and leadership transfers on whoever leads.
      const operator = (async () => {
        while (!stop) {
          await delay(50 + admin.int(250), { clock });
          const leader = currentLeader(cfg);
          if (leader === undefined || stop) continue;
          if (folders && admin.chance(0.15)) {
            await replaceOrRebind(cfg, leader, admin, log);
            continue;
          }
          if (admin.chance(0.25)) {
            const others = cfg.node(leader).status().membership.voters.filter((v) =>
              v !== String(leader)
            );
            if (others.length === 0) continue;
            const to = admin.pick(others);
            schedule.push(`${clock.now()} transfer ${leader} -> ${to}`);
            cfg.node(leader).transferLeadership(to).then(() => activity.transfers++, () => {});
          } else {
            proposeChange(cfg, leader, admin, { ...log, why: "change on" });
          }
        }
      })();
      let faults = 0;
      const disks = random.fork();
      const diskFaults = segments ? new DiskFaults(cfg, disks, schedule) : undefined;
      // Its own stream, so that the other faults of a seed stay where they were.
      const reports = new Random((seed ^ 0x2545f491) >>> 0);
      while (clock.now() < VIRTUAL_MS) {
        // A race seed leaves each split for longer: a new leader must be
        // elected on one side before the next fault.
        await delay(race ? 300 + random.int(900) : 100 + random.int(400), { clock });
        await diskFaults?.free(clock.now());
        const roll = random.int(race ? 35 : 100);
        const i = random.int(n);
        if (roll < 20) {
          const shuffled = random.shuffle(cfg.ids);
          const cut = 1 + random.int(n - 1);
          net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
          schedule.push(
            `${clock.now()} partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}`,
          );
        } else if (roll < 35) {
          net.heal();
          schedule.push(`${clock.now()} heal`);
        } else if (roll < 50 && cfg.isRunning(i)) {
          // At most one server per run has its storage damaged beyond the
          // contract: it must refuse to start (fail-stop), and the others,
          // never fewer than 3 voters, keep a majority of any configuration.
          const damage = damaged === undefined && disks.chance(DAMAGE_CHANCE) && await settled(cfg)
            ? disks.pick(DAMAGES)
            : undefined;
          const leader = damage ? currentLeader(cfg) : undefined;
          if (damage && leader !== undefined && leader !== i && disks.chance(0.5)) {
            // Issue 15's amnesia: the damaged server comes straight back
            // while the leader, which shared its entries, is down; only the
            // high-water mark stops it from voting from the shortened log.
            [damaged, activity.damaged] = [i, activity.damaged + 1];
            await cfg.crash(i, damage);
            await cfg.crash(leader);
            reportGone(cfg, [i, leader], { reports, schedule, now: clock.now() });
            await cfg.startServer(i);
            cfg.connect(i);
            schedule.push(
              `${clock.now()} crash ${i} (storage damaged: ${
                damageShown(cfg, i, damage)
              }), crash ` +
                `${leader} (leader), restart ${i}${
                  cfg.failed(i) ? ": refused its storage (fail-stop)" : ""
                }`,
            );
            if (cfg.failed(i)) activity.failStops++;
          } else {
            if (damage) [damaged, activity.damaged] = [i, activity.damaged + 1];
            // On a disk, half the crashes wait for a save being synced: its write may tear.
            if (diskFaults && !damage && disks.chance(0.5)) await diskFaults.untilSyncing(i);
            await cfg.crash(i, damage);
            schedule.push(
              `${clock.now()} crash ${i}${
                damage ? ` (storage damaged: ${damageShown(cfg, i, damage)})` : ""
              }`,
            );
            reportGone(cfg, [i], { reports, schedule, now: clock.now() });
          }
        } else if (roll < 70 && !cfg.isRunning(i) && !cfg.failed(i)) {
          await cfg.startServer(i);
          cfg.connect(i);
          schedule.push(
            `${clock.now()} restart ${i}${
              cfg.failed(i) ? ": refused its storage (fail-stop)" : ""
            }`,
          );
          if (cfg.failed(i)) activity.failStops++;
        } else if (roll < 80) {
          const j = random.int(n);
          const rule = {
            dropRequests: random.next() * 0.5,
            delayMs: [0, random.int(300)] as const,
            duplicate: 0.1,
          };
          net.setLinkRule(String(i), String(j), rule);
          schedule.push(`${clock.now()} link ${i}->${j} ${JSON.stringify(rule)}`);
        } else if (roll < 85) {
          const on = random.chance(0.5);
          net.setLongReordering(on);
          schedule.push(`${clock.now()} long reordering ${on}`);
        } else if (roll < 90) {
          net.setLinkRule("*", "*", undefined);
          for (let a = 0; a < n; a++) {
            for (let b = 0; b < n; b++) net.setLinkRule(String(a), String(b), undefined);
          }
          schedule.push(`${clock.now()} clear link rules`);
        } else {
          const on = random.chance(0.5);
          net.setReliable(!on);
          schedule.push(`${clock.now()} unreliable ${on}`);
        }
        faults++;
        // On a disk: power cycles inside syncs, full disks (raft_disk_faults.ts).
        const crashed = (j: number) =>
          reportGone(cfg, [j], { reports, schedule, now: clock.now() });
        if (await diskFaults?.maybe(crashed)) faults++;
        if (violation) throw violation;
        checkSafety(cfg, leaders, ledger);
      }
      // Heal everything: the cluster must make progress again. The operator
      // stops first: a start that takes virtual time (the segment log's)
      // would otherwise let it partition the network again after the heal
      // (seed 4102189: two servers cut off for good).
      stop = true;
      eager = false;
      await diskFaults?.free(Infinity);
      net.heal();
      net.setReliable(true);
      net.setLongReordering(false);
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) net.setLinkRule(String(a), String(b), undefined);
      }
      for (let i = 0; i < n; i++) {
        if (!cfg.isRunning(i) && !cfg.failed(i)) {
          await cfg.startServer(i);
          if (cfg.failed(i)) activity.failStops++;
        }
        cfg.connect(i);
      }
      schedule.push(`${clock.now()} heal all${race ? " (a membership race seed)" : ""}`);
      await client;
      await checker;
      await operator;
      if (violation) throw violation;
      try {
        // Once the leader has committed in its term, no change is pending:
        // every member of its configuration must then take the next entry.
        await cfg.one(random.int(1e9), 1, true);
        const leader = currentLeader(cfg) ?? await cfg.checkOneLeader();
        const { voters, learners } = cfg.node(leader).status().membership;
        const alive = [...voters, ...learners].filter((id) => !cfg.failed(Number(id)));
        await cfg.one(random.int(1e9), alive.length, true);
      } catch (err) {
        for (let i = 0; i < n; i++) {
          if (cfg.isRunning(i)) console.error(JSON.stringify(cfg.node(i).status()));
        }
        throw err;
      }
      checkSafety(cfg, leaders, ledger);
      activity.disk = cfg.diskStats(); // before the harness stops every server
      Object.assign(activity, diskFaults?.counts);
      if (stoppedServerStays) activity.stoppedStayed = activity.storageFailures;
      await cfg.cleanup();
      ledger.check();
      return { commits, faults, activity, trace: sim.traceHash() };
    }, { seed, limitMs: 120_000 });
  } catch (err) {
    console.error(`raft random simulation failed: seed ${seed}; replay with SEED=${seed}`);
    console.error(`schedule:\n  ${schedule.join("\n  ")}`);
    // A broken whole-run invariant stops the node that saw it; what fails
    // next (an agreement that never comes) is only its consequence.
    const violation = runLedger?.violation;
    if (violation && !(err instanceof Error && err.message.includes(violation.message))) {
      throw new Error(`seed ${seed} (replay: SEED=${seed}): ${violation.message}`, { cause: err });
    }
    throw err;
  }
}

Deno.test("raft: randomized fault schedules keep every safety property", async () => {
  let replay: string | undefined;
  let base: number;
  let count = 500;
  try {
    replay = Deno.env.get("SEED");
    count = Number(Deno.env.get("RAFT_SEEDS") ?? 500);
    base = Number(Deno.env.get("RAFT_SEED_BASE") ?? seedFromEnv()) >>> 0;
  } catch {
    base = seedFromEnv(); // no --allow-env: defaults
  }
  const seeds = replay
    ? [Number(replay) >>> 0]
    : Array.from({ length: count }, (_, k) => (base + k) >>> 0);
  // Printed up front, so that even a run that hangs can be replayed.
  console.log(
    `  seeds ${seeds[0]}..${seeds.at(-1)} (replay all: RAFT_SEED_BASE=${seeds[0]}; one: SEED=<n>)`,
  );
  const t0 = performance.now();
  let commits = 0;
  let faults = 0;
  const activity = noActivity();
  /** The segment log's seeds alone. */
  const onDisk = noActivity();
  for (const seed of seeds) {
    const r = await runSeed(seed);
    commits += r.commits;
    faults += r.faults;
    addActivity(activity, r.activity);
    if (r.activity.segmentSeeds > 0) addActivity(onDisk, r.activity);
  }
  const disk = onDisk.disk;
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `  ${seeds.length} seeds, ${faults} faults, ${commits} proposals accepted, ` +
      `${activity.changes} membership changes committed (${activity.busy} refused as busy), ` +
      `${activity.transfers} leadership transfers, ${activity.damaged} storages damaged ` +
      `(${activity.failStops} refused to start), ${activity.replaced} servers replaced by a ` +
      `fresh folder, ${secs.toFixed(1)} s (${(secs * 1000 / seeds.length).toFixed(0)} ms a seed)`,
  );
  console.log(
    `  of which ${onDisk.segmentSeeds} seeds on the segment log (SimFs): ${disk.crashes} ` +
      `crashes (${onDisk.powerCycles} power cycles), ${disk.lostWrites} unsynced writes ` +
      `lost (${disk.tornWrites} torn), ${disk.lostFolderChanges} folder changes lost, ` +
      `${onDisk.damaged} storages damaged (${disk.damaged} files hit, ${onDisk.failStops} ` +
      `refused to start), ${onDisk.fullDisks} disks full (${disk.noSpace} calls refused, ` +
      `${onDisk.storageFailures} nodes stopped and restarted, ${onDisk.stoppedStayed} of them ` +
      `left on the network while stopped)`,
  );
  // What the run is for happened (printed above, asserted here): for the
  // default 500 seeds the counts are in the tens to thousands; the thresholds
  // keep the chance of a zero by bad luck negligible.
  if (seeds.length >= 50) {
    assert.ok(onDisk.segmentSeeds > 0, `no segment-log seed in ${seeds.length}`);
    assert.ok(disk.crashes > 0, `no disk crash in ${onDisk.segmentSeeds} segment-log seeds`);
    assert.ok(disk.lostWrites > 0, `no unsynced write lost in ${disk.crashes} disk crashes`);
  }
  if (seeds.length >= 200) {
    assert.ok(disk.tornWrites > 0, `no torn write in ${disk.crashes} disk crashes`);
    assert.ok(onDisk.stoppedStayed > 0, "no stopped node's server was left on the network");
    // A damaged store is refused at its start, at least sometimes (a flip may hit a torn tail
    // cut off anyway, a lost write one overwritten since).
    assert.ok(
      activity.damaged === 0 || activity.failStops > 0,
      `${activity.damaged} storages damaged, none refused to start`,
    );
    assert.ok(
      onDisk.damaged === 0 || onDisk.failStops > 0,
      `${onDisk.damaged} segment logs damaged, none refused to start`,
    );
  }
});

/**
 * Seeds that once failed, replayed on every run (a library change may move
 * their schedules off the case they found; tests/raft_cluster_test.ts holds
 * each case's directed test).
 */
const FAILED_ONCE = [
  // A crashed node's queued items, handed out while its successor applied
  // the same indexes: the harness took both nodes for one.
  3752570988,
  // On the segment log: a SimFs crash copy shared its bytes with the zombie's
  // inode, whose later syncs then changed what the restart read (a damaged record).
  3049,
  // On the segment log: its start takes virtual time, during which the
  // operator partitioned the network again after the final heal.
  4102189,
  // On the segment log: a learner whose disk had been full stopped after the
  // final heal (at its next segment, whose making had failed), never restarted.
  685186859,
  // On the segment log: a node stopped by a full disk stayed on the network,
  // answering at once, and the leader resent it a snapshot chunk for ever in
  // no virtual time (raft/progress.ts now waits an election timeout before a
  // resend; seeds with bit 2 set, 3221 among them, keep such a server there).
  3221,
];

Deno.test("raft: seeds that once failed still keep every safety property", async () => {
  for (const seed of FAILED_ONCE) await runSeed(seed);
});

Deno.test("raft: a seed replays its run exactly (the same trace hash twice)", async () => {
  await checkReplays("RAFT_REPLAY_SEEDS", 4, async (seed) => (await runSeed(seed)).trace);
});

/**
 * What `kv serve`'s TCP server does when a crashed node's connections close:
 * tells the running nodes it is gone (`RaftNode.peerGone`), so a follower
 * of a crashed leader campaigns at once; most of the time (a report can
 * miss a node, and a partition reports nothing). Now and then a running
 * node is reported gone too (one of its connections closed while it lives):
 * nothing about safety may depend on a report being true.
 */
function reportGone(
  cfg: Cluster,
  crashed: number[],
  { reports, schedule, now }: { reports: Random; schedule: string[]; now: number },
): void {
  const running = cfg.ids.map(Number).filter((j) => cfg.isRunning(j));
  for (const j of running) {
    for (const gone of crashed) if (reports.chance(0.8)) cfg.node(j).peerGone(String(gone));
  }
  if (running.length >= 2 && reports.chance(0.2)) {
    const [to, alive] = reports.shuffle(running);
    cfg.node(to).peerGone(String(alive));
    schedule.push(`${now} report to ${to}: ${alive} gone (it is not)`);
  }
}

/** The damage done to server i's storage, as the schedule shows it. */
function damageShown(cfg: Cluster, i: number, damage: string): string {
  return cfg.segments ? `${damage}: ${cfg.damageDone(i) ?? "nothing to damage"}` : damage;
}

/** The command an entry carries (undefined for a no-op or membership entry). */
function commandOf(e: Entry): unknown {
  return e.kind === "command" ? e.command : undefined;
}
