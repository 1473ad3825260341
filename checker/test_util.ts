/**
 * Random append histories for the checker's tests and benchmarks: clients
 * append unique values (`<key>.<n>;`), now and then put one, and read, each
 * operation taking effect at a random point between its call and its return,
 * so every history made here is linearizable; tests then corrupt reads.
 *
 * @module
 */
import { Random } from "../net/random.ts";
import type { KvInput } from "./models.ts";
import type { Operation } from "./types.ts";

/** A key/value operation of a generated history. */
export type KvOperation = Operation<KvInput, string | undefined>;

/** Options for {@linkcode appendHistory}. */
export interface AppendHistoryOptions {
  /** Operations in all. */
  operations: number;
  /** Keys (each its own partition). Default 1. */
  keys?: number;
  /** Concurrent clients per key. Default 4. */
  clientsPerKey?: number;
  /** Share of writes that are puts. Default 0.05. */
  putChance?: number;
  /** Share of operations that are gets. Default 0.5. */
  readChance?: number;
  /** Share of operations whose outcome is unknown (the client is then replaced). Default 0.02. */
  unknownChance?: number;
  /** Longest operation, in time units. Default 10. */
  maxDuration?: number;
  /** Write only this many distinct values per key (`v<n>;`), so values repeat. Default: all unique. */
  valuePool?: number;
}

/**
 * A linearizable history of get/put/append operations with unique values.
 *
 * @example
 * ```ts
 * import { Random } from "../net/random.ts";
 * import { appendHistory } from "./test_util.ts";
 *
 * const history = appendHistory(new Random(1), { operations: 100, keys: 2 });
 * history.length; // 100
 * ```
 */
export function appendHistory(random: Random, options: AppendHistoryOptions): KvOperation[] {
  const keys = options.keys ?? 1;
  const perKey = options.clientsPerKey ?? 4;
  const putChance = options.putChance ?? 0.05;
  const readChance = options.readChance ?? 0.5;
  const unknownChance = options.unknownChance ?? 0.02;
  const maxDuration = options.maxDuration ?? 10;
  const out: KvOperation[] = [];
  let nextClient = 0;
  for (let k = 0; k < keys; k++) {
    const key = String(k);
    const count = Math.floor(options.operations / keys) +
      (k < options.operations % keys ? 1 : 0);
    const clients = Array.from({ length: perKey }, () => ({ id: nextClient++, at: 0 }));
    const ops: KvOperation[] = [];
    const points: number[] = [];
    for (let n = 0; n < count; n++) {
      const client = clients[random.int(perKey)];
      const call = client.at + random.int(3);
      const ret = call + random.int(maxDuration + 1);
      const input: KvInput = random.chance(readChance) ? { op: "get", key } : {
        op: random.chance(putChance) ? "put" : "append",
        key,
        value: options.valuePool ? `v${random.int(options.valuePool)};` : `${key}.${n};`,
      };
      const op: KvOperation = { client: client.id, input, call, output: undefined, return: ret };
      let point = call + random.next() * (ret - call);
      if (random.chance(unknownChance)) {
        op.unknown = true;
        op.return = Infinity;
        // It took effect some time after its call, or never.
        point = random.chance(0.3) ? Infinity : call + random.next() * 4 * maxDuration;
        client.id = nextClient++;
      }
      client.at = ret + 1;
      ops.push(op);
      points.push(point);
    }
    const order = ops.map((_, i) => i).sort((a, b) => points[a] - points[b]);
    let state = "";
    for (const i of order) {
      if (points[i] === Infinity) break;
      const op = ops[i];
      const input = op.input;
      if (input.op === "get") {
        if (!op.unknown) op.output = state;
      } else {
        state = input.op === "put" ? input.value! : state + input.value!;
        if (!op.unknown) op.output = "";
      }
    }
    for (const op of ops) {
      if (op.input.op !== "get" && !op.unknown) op.output = "";
    }
    out.push(...ops);
  }
  return out;
}

/**
 * Corrupts the output of one random read that saw something (or of any
 * read when none did): drops, repeats or swaps a value, adds a value written
 * elsewhere, or empties it. The result may still be linearizable (a read
 * concurrent with the right writes); an oracle decides.
 *
 * @example
 * ```ts
 * import { Random } from "../net/random.ts";
 * import { appendHistory, corruptRead } from "./test_util.ts";
 *
 * const random = new Random(2);
 * const history = appendHistory(random, { operations: 50 });
 * corruptRead(random, history);
 * ```
 */
export function corruptRead(random: Random, history: KvOperation[]): void {
  const reads = history.filter((op) => op.input.op === "get" && !op.unknown);
  if (reads.length === 0) return;
  const seeing = reads.filter((op) => op.output !== "");
  const read = random.pick(seeing.length > 0 ? seeing : reads);
  const tokens = (read.output ?? "").split(";").filter((t) => t !== "").map((t) => `${t};`);
  const written = history.filter((op) => op.input.op !== "get" && op.input.key === read.input.key);
  const how = random.int(6);
  if (how === 0 && tokens.length > 0) tokens.pop();
  else if (how === 1 && tokens.length > 0) tokens.splice(random.int(tokens.length), 1);
  else if (how === 2 && tokens.length > 1) {
    const i = random.int(tokens.length - 1);
    [tokens[i], tokens[i + 1]] = [tokens[i + 1], tokens[i]];
  } else if (how === 3 && tokens.length > 0) tokens.push(random.pick(tokens));
  else if (how === 4 && written.length > 0) tokens.push(random.pick(written).input.value!);
  else tokens.length = 0;
  read.output = tokens.join("");
}

/**
 * The history the report's size test and render benchmark use: 100,000
 * operations (or `operations`) on 12 keys (or `keys`), 6 clients each, with two
 * annotations; `bad` corrupts one read, so the report has a failing key.
 *
 * @example
 * ```ts
 * import { reportHistory } from "./test_util.ts";
 *
 * reportHistory({ operations: 1_000 }).length; // 1000
 * ```
 */
export function reportHistory(
  options: { operations?: number; keys?: number; bad?: boolean } = {},
): KvOperation[] {
  const random = new Random(18);
  const operations = options.operations ?? 100_000;
  const keys = options.keys ?? 12;
  const history = appendHistory(random, { operations, keys, clientsPerKey: 6 });
  history[Math.floor(operations * 0.05)].annotation = "leader killed with SIGKILL";
  history[Math.floor(operations * 0.6)].annotation = "node 2 restarted";
  if (options.bad) corruptRead(random, history);
  return history;
}
