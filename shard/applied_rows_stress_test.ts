/**
 * A stored shard group's reads against a model, randomized (from review30c): many clients, a
 * replica answering once staged, batches of random bounds stored in several commits (5% of
 * values 8–68 KiB, written ahead in parts), reads of the store delivered late and a small read
 * cache, gets fired at random points (in flight across commits), and a leaving shard's pages read
 * slice by slice while later batches commit. `APPLIED_SEEDS` (default 4) from `APPLIED_SEED_BASE`
 * (default 1), `APPLIED_CACHE_BYTES` the read cache (default 4096); each test names its seed. It fails when a pending write is dropped while a read
 * that began before its commit is in flight, or one step early.
 */
import assert from "node:assert/strict";
import { VirtualClock } from "../net/clock.ts";
import { SimKv } from "../store/sim_kv.ts";
import { joinGroups } from "./mod.ts";
import { defaultCodec } from "../net/codec.ts";
import { keyToShard } from "./config.ts";
import { Random } from "../net/random.ts";
import { openStagedGroup } from "./test_util.ts";

const SEEDS = Number(Deno.env.get("APPLIED_SEEDS") ?? "4");
const BASE = Number(Deno.env.get("APPLIED_SEED_BASE") ?? "1");

for (let seed = BASE; seed < BASE + SEEDS; seed++) {
  Deno.test(`applied rows: randomized reads against a model (seed ${seed})`, async () => {
    const random = new Random(seed);
    const r = () => random.next();
    const clock = new VirtualClock();
    await clock.run(async () => {
      const kv = new SimKv({ clock, commitMs: 1 + Math.floor(r() * 5) });
      // Reads answered late (read now, delivered 0-6 virtual ms later), as a disk read may be.
      const late = <T>(p: Promise<T>) =>
        p.then((v) => new Promise<T>((res) => clock.setTimer(Math.floor(r() * 7), () => res(v))));
      const readKv = {
        get: (key: Deno.KvKey) => late(kv.get(key)),
        getMany: (keys: Deno.KvKey[]) => late(kv.getMany(keys)),
        list: (sel: Deno.KvListSelector, o?: Deno.KvListOptions) => kv.list(sel, o),
        atomic: () => kv.atomic(),
        close: () => {},
      };
      let answered = 0;
      const group = await openStagedGroup({
        clock,
        kv,
        store: {
          readKv: readKv as never,
          cacheBytes: Number(Deno.env.get("APPLIED_CACHE_BYTES") ?? "4096"),
        },
        limits: () =>
          r() < 0.5
            ? undefined
            : { entries: 64 + Math.floor(r() * 448), delayMs: 1 + Math.floor(r() * 50) },
        last: () => r() < 0.5,
        done: (item) => void (answered = item.index),
      });
      const { store, state, applier, c1 } = group;
      // History per key: [entry index, value | null].
      const hist = new Map<string, [number, string | null][]>();
      const cur = (k: string) => hist.get(k)?.at(-1)?.[1] ?? null;
      const seqs = new Map<string, number>();
      const errors: string[] = [];
      const inflight: Promise<void>[] = [];
      const keys = Array.from({ length: 400 }, (_, i) => `${i % 10}k${i}`);
      let moved = new Set<number>();
      const c2 = joinGroups(c1, { 101: ["b"] });
      const leaving = [...Array(10).keys()].filter((s) => c2.shards[s] === 101);
      const live = keys.filter((k) => !leaving.includes(keyToShard(k)));
      const fireGet = (k: string) => {
        const from = answered;
        inflight.push(
          state.get(k).then((v) => {
            const to = answered;
            const h = hist.get(k) ?? [];
            // Values the key held at some entry in [from, to].
            const ok = new Set<string | null>();
            let before: string | null = null;
            for (const [i, val] of h) {
              if (i <= from) before = val;
              else if (i <= to) ok.add(val);
            }
            ok.add(before);
            if (v === undefined && moved.has(keyToShard(k))) return;
            if (!ok.has(v === undefined ? "UNDEF" : v as string)) {
              errors.push(
                `get ${k} in [${from},${to}] read ${
                  String(v).slice(0, 16)
                }; store ${store.applied.index}`,
              );
            }
          }),
        );
      };
      const ops = 3000;
      let leftAt = -1;
      let pagesRead = 0;
      const storeMoves = new Set<number>();
      let maxLag = 0;
      let frozen = new Map<string, string>();
      for (let i = 0; i < ops && errors.length === 0 && group.failed === undefined; i++) {
        if (i === 2000) {
          // Shards leave, their writes staged; later reads of their pages must hold them all.
          await group.config(c2);
          leftAt = 2;
          moved = new Set(leaving);
          frozen = new Map();
          for (const k of keys) {
            if (moved.has(keyToShard(k)) && cur(k) !== null) frozen.set(k, cur(k)!);
          }
        }
        const pool = moved.size > 0 ? live : keys;
        const key = pool[Math.floor(r() * pool.length)];
        const client = `c${Math.floor(r() * 40)}`;
        const seq = (seqs.get(client) ?? 0) + 1;
        seqs.set(client, seq);
        const roll = r();
        const big = r() < 0.05 ? "B".repeat(8192 + Math.floor(r() * 60000)) : "";
        const value = `${i}${big}`;
        const write = roll < 0.6
          ? { type: "put", key, value }
          : roll < 0.85
          ? { type: "append", key, value: `+${i}` }
          : { type: "delete", key };
        await group.take({ kind: "op", command: { client, seq, write } });
        const h = hist.get(key) ?? [];
        hist.set(key, h);
        const prev = cur(key);
        h.push([
          group.index,
          write.type === "put" ? value : write.type === "append" ? (prev ?? "") + `+${i}` : null,
        ]);
        storeMoves.add(store.applied.index);
        maxLag = Math.max(maxLag, group.index - store.applied.index);
        const nGets = Math.floor(r() * 4);
        for (let g = 0; g < nGets; g++) {
          fireGet(r() < 0.5 ? key : pool[Math.floor(r() * pool.length)]);
        }
        if (r() < 0.3) {
          await group.tick(Math.floor(r() * 4));
        }
        if (leftAt > 0 && r() < 0.02) {
          // Read every leaving shard's pages (small pages: several slices, cursors).
          for (const shard of leaving) {
            const got = new Map<string, string>();
            let after: string | null = null;
            for (;;) {
              const page = await state.leavingPage(shard, leftAt, {
                after,
                maxBytes: 1 + Math.floor(r() * 3000),
              });
              assert.ok(page, "leaving page");
              const d = defaultCodec.decode(page.data) as {
                data: [string, string][];
                next: string | null;
              };
              for (const [k, v] of d.data) got.set(k, v);
              pagesRead++;
              if (d.next === null) break;
              after = d.next;
            }
            for (const [k, v] of frozen) {
              if (keyToShard(k) !== shard) continue;
              if (got.get(k) !== v) {
                errors.push(
                  `page of ${shard}: ${k} = ${String(got.get(k)).slice(0, 12)} want ${
                    v.slice(0, 12)
                  }; store ${store.applied.index}/${group.index}`,
                );
              }
            }
            for (const k of got.keys()) {
              if (!frozen.has(k)) errors.push(`page of ${shard}: extra ${k}`);
            }
          }
        }
      }
      await Promise.all(inflight);
      console.log(
        `seed ${seed}: entries ${group.index}, store ${store.applied.index}, gets ${inflight.length}, pages ${pagesRead}, storeMoves ${storeMoves.size}, maxLag ${maxLag}`,
      );
      await applier.close();
      assert.equal(group.failed, undefined);
      assert.deepEqual(errors.slice(0, 5), []);
    });
  });
}
