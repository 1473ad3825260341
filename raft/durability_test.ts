/**
 * Durability: a randomized core-level model of RaftNode's driver with slow
 * writes (one write in flight per node, finishing at a random later step),
 * a leader's early sends, commit-only writes skipped, crashes that lose the
 * write in flight, and restarts from what was durable. Checks:
 * (1) whenever a leader's commit index covers an entry, a majority of voters
 *     hold it durably (or a durable snapshot covering it);
 * (2) no message leaves with a term (or a granted real vote) that is not durable;
 * (3) every entry any incarnation applies was committed by a leader, and all agree;
 * (4) ready() never comes back empty while hasReady() said there was work.
 *
 * Run again with a real storage behind each node (`DenoKvStorage`,
 * `SegmentLogStorage`): every durable write is also saved there, and every
 * restart reopens it, whose `load` must return the model's durable state
 * (and never refuse it: the high-water mark must not see a loss that did
 * not happen).
 */
import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { RaftCore } from "./core.ts";
import { DenoKvStorage } from "./kv_storage.ts";
import type { Ready } from "./ready.ts";
import { SegmentLogStorage } from "./segment_storage.ts";
import type { RaftStorage } from "./storage.ts";
import type { Entry, HardState, Message, NodeId, Snapshot } from "./types.ts";

/** Opens (again) the real storage of a node; its state must follow the model's. */
type Backing = (id: NodeId) => Promise<RaftStorage>;

interface Durable {
  hs: HardState;
  snapshot: Snapshot;
  entries: Entry[]; // after snapshot.meta.index, contiguous
}

interface Node {
  id: NodeId;
  core: RaftCore;
  durable: Durable;
  pending: { rd: Ready; early: boolean } | undefined;
  up: boolean;
}

function durableTerm(d: Durable, index: number): number | undefined {
  if (index === d.snapshot.meta.index) return d.snapshot.meta.term;
  if (index < d.snapshot.meta.index) return -1; // covered by the snapshot
  const e = d.entries[index - d.snapshot.meta.index - 1];
  return e?.term;
}

function save(d: Durable, rd: Ready, hs: HardState): void {
  if (rd.resetLog) d.entries = [];
  if (rd.snapshot) {
    const idx = rd.snapshot.meta.index;
    const old = d.snapshot.meta.index;
    d.entries = d.entries.filter((e) => e.index > idx);
    if (rd.resetLog) d.entries = [];
    d.snapshot = rd.snapshot;
    void old;
  }
  if (rd.entries.length > 0) {
    const from = rd.entries[0].index;
    const keep = from - d.snapshot.meta.index - 1;
    assert.ok(keep >= 0 && keep <= d.entries.length, `gap writing ${from}`);
    d.entries = d.entries.slice(0, keep).concat(rd.entries.map((e) => ({ ...e })));
  }
  d.hs = { ...hs };
}

async function runSeed(seed: number, backing?: Backing): Promise<void> {
  const rnd = new Random(seed);
  const ids = ["a", "b", "c", "d", "e"].slice(0, 3 + 2 * rnd.int(2));
  const membership = { voters: ids, learners: [] as NodeId[] };
  const net: Message[] = [];
  const committed = new Map<number, number>(); // index -> term, by leaders' commits
  const applied = new Map<number, number>();
  const nodes = new Map<NodeId, Node>();
  const makeCore = (id: NodeId, d: Durable) =>
    new RaftCore(id, { hardState: { ...d.hs }, snapshot: d.snapshot, entries: d.entries.slice() }, {
      random: new Random(seed * 31 + id.charCodeAt(0) + rnd.int(1000)),
      electionTicks: 6,
      heartbeatTicks: 1,
      maxInflight: 4,
      checkQuorum: rnd.int(2) === 0,
      preVote: rnd.int(2) === 0,
    });
  for (const id of ids) {
    const durable: Durable = {
      hs: { term: 0, vote: null, commit: 0 },
      snapshot: { meta: { index: 0, term: 0, membership }, data: new Uint8Array() },
      entries: [],
    };
    nodes.set(id, { id, core: makeCore(id, durable), durable, pending: undefined, up: true });
  }
  const stores = new Map<NodeId, RaftStorage>();
  if (backing) {
    for (const id of ids) {
      const store = await backing(id);
      await store.load();
      // As RaftNode does for a new node: the initial membership as a snapshot at 0.
      await store.save({ snapshot: nodes.get(id)!.durable.snapshot, entries: [], resetLog: false });
      stores.set(id, store);
    }
  }
  /** A restart from the real storage: it must load what the model holds durably. */
  const reopen = async (n: Node) => {
    const old = stores.get(n.id);
    if (old === undefined) return;
    await old.close();
    const store = await backing!(n.id);
    stores.set(n.id, store);
    const loaded = await store.load();
    const d = n.durable;
    const where = `seed ${seed}: ${n.id} restarted`;
    assert.equal(loaded.hardState.term, d.hs.term, where);
    assert.equal(loaded.hardState.vote, d.hs.vote, where);
    assert.deepEqual(loaded.snapshot?.meta, d.snapshot.meta, where);
    assert.deepEqual(loaded.entries, d.entries, where);
  };
  const quorum = Math.floor(ids.length / 2) + 1;
  let appliedAt = new Map<NodeId, number>();

  const send = (n: Node, m: Message) => {
    // (2) a message's term, and a granted real vote, are durable before it leaves
    const future = (m.type === "vote" && m.pre) || (m.type === "voteResp" && m.pre);
    if (!future) {
      assert.ok(
        m.term <= n.durable.hs.term,
        `seed ${seed}: ${n.id} sends ${m.type} of term ${m.term} with durable term ${n.durable.hs.term}`,
      );
    }
    if (m.type === "voteResp" && !m.pre && m.granted) {
      assert.ok(
        n.durable.hs.term === m.term && n.durable.hs.vote === m.to,
        `seed ${seed}: ${n.id} grants vote to ${m.to} in ${m.term} before durable`,
      );
    }
    net.push(m);
  };

  const checkCommit = () => {
    for (const n of nodes.values()) {
      if (!n.up || n.core.role !== "leader") continue;
      const c = n.core.commitIndex;
      for (let i = Math.max(1, n.core.snapshotIndex + 1); i <= c; i++) {
        const t = n.core.termAt(i)!;
        const prev = committed.get(i);
        assert.ok(
          prev === undefined || prev === t,
          `seed ${seed}: index ${i} committed with terms ${prev} and ${t}`,
        );
        if (prev === undefined) {
          // (1) durable on a majority at the time it is first committed
          let holders = 0;
          for (const v of ids) {
            const dt = durableTerm(nodes.get(v)!.durable, i);
            if (dt === t || dt === -1) holders++;
          }
          assert.ok(
            holders >= quorum,
            `seed ${seed}: leader ${n.id} committed ${i} (term ${t}) held durably by ${holders} < ${quorum}`,
          );
          committed.set(i, t);
        }
      }
    }
  };

  const applyCommitted = (n: Node, rd: Ready) => {
    for (const e of rd.committed) {
      // (3) only committed entries are applied, and everyone agrees
      assert.equal(
        committed.get(e.index),
        e.term,
        `seed ${seed}: ${n.id} applies ${e.index}/${e.term} not committed (${
          committed.get(e.index)
        })`,
      );
      const a = applied.get(e.index);
      assert.ok(
        a === undefined || a === e.term,
        `seed ${seed}: ${n.id} applies ${e.index}/${e.term} vs ${a}`,
      );
      applied.set(e.index, e.term);
      appliedAt.set(n.id, e.index);
    }
  };

  const takeReady = (n: Node) => {
    if (n.pending || !n.core.hasReady()) return;
    const rd = n.core.ready();
    // (4) no empty ready
    assert.ok(
      rd.entries.length > 0 || rd.messages.length > 0 || rd.committed.length > 0 || rd.hardState ||
        rd.snapshot || rd.reads.length > 0,
      `seed ${seed}: ${n.id} hasReady() but ready() was empty`,
    );
    const saved = n.durable.hs;
    const early = n.core.role === "leader" && rd.snapshot === undefined &&
      !(rd.hardState && (rd.hardState.term !== saved.term || rd.hardState.vote !== saved.vote));
    if (early) { for (const m of rd.messages) send(n, m); }
    n.pending = { rd, early };
  };

  // the latest hard state handed out, as RaftNode's #hardState
  const handed = new Map<NodeId, HardState>();
  const finishWrite = async (n: Node) => {
    const p = n.pending!;
    n.pending = undefined;
    const rd = p.rd;
    if (rd.hardState) handed.set(n.id, rd.hardState);
    const hs = handed.get(n.id) ?? n.durable.hs;
    const saved = n.durable.hs;
    const termOrVote = hs.term !== saved.term || hs.vote !== saved.vote;
    if (termOrVote || rd.entries.length > 0 || rd.snapshot !== undefined) {
      await stores.get(n.id)?.save({
        hardState: hs,
        entries: rd.entries,
        snapshot: rd.snapshot,
        resetLog: rd.resetLog,
      });
      save(n.durable, rd, hs);
    }
    n.core.persisted(rd.lastIndex, rd.lastTerm);
    if (!p.early) { for (const m of rd.messages) send(n, m); }
    applyCommitted(n, rd);
    checkCommit();
  };

  let proposals = 0;
  for (let step = 0; step < 1500; step++) {
    const r = rnd.int(100);
    const list = [...nodes.values()];
    const n = list[rnd.int(list.length)];
    if (r < 10) {
      if (n.up) n.core.tick();
    } else if (r < 45 && net.length > 0) {
      const k = rnd.int(net.length);
      const m = net[k];
      if (rnd.int(10) !== 0) net.splice(k, 1); // sometimes duplicate
      const to = nodes.get(m.to)!;
      if (to.up && rnd.int(20) !== 0) to.core.step(m);
    } else if (r < 65) {
      if (n.up && n.pending) await finishWrite(n);
    } else if (r < 80) {
      if (n.up && n.core.role === "leader") n.core.propose(`p${proposals++}`);
    } else if (r < 82) {
      // crash: the write in flight is lost; restart from what is durable
      n.pending = undefined;
      handed.delete(n.id);
      await reopen(n);
      n.core = makeCore(n.id, n.durable);
      appliedAt.set(n.id, n.durable.snapshot.meta.index);
    } else if (r < 84 && n.up && n.core.appliedIndex > n.core.snapshotIndex + 3 && !n.pending) {
      n.core.compact(n.core.appliedIndex - 1, new Uint8Array([1]));
    }
    for (const x of nodes.values()) if (x.up) takeReady(x);
    checkCommit();
  }
  appliedAt = new Map();
  for (const store of stores.values()) await store.close();
}

Deno.test("durability: commits are durable on a majority; term/vote durable before sending; restarts apply only committed", async () => {
  const seeds = Number(Deno.env.get("DURABILITY_SEEDS") ?? "300");
  const base = Number(Deno.env.get("DURABILITY_SEED_BASE") ?? "1");
  for (let s = base; s < base + seeds; s++) await runSeed(s);
});

const BACKINGS: [string, (dir: string) => Promise<RaftStorage>][] = [
  ["deno-kv", (dir) => DenoKvStorage.open(`${dir}/raft.kv`)],
  // Small segments: the runs cross segments and compact them.
  ["segments", (dir) => SegmentLogStorage.open(`${dir}/raft.log`, { segmentBytes: 4096 })],
];

for (const [name, openIn] of BACKINGS) {
  Deno.test(`durability (${name}): the storage loads the model's durable state at every restart`, async () => {
    const seeds = Number(Deno.env.get("DURABILITY_STORAGE_SEEDS") ?? "6");
    const root = await Deno.makeTempDir({ prefix: `distkit-durability-${name}-` });
    try {
      for (let s = 1; s <= seeds; s++) {
        await runSeed(s, async (id) => {
          await Deno.mkdir(`${root}/${s}/${id}`, { recursive: true });
          return await openIn(`${root}/${s}/${id}`);
        });
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}
