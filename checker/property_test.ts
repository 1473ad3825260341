/**
 * The checker against a brute-force one on random small histories: every
 * order of the operations consistent with real time is tried, so the two
 * must agree on every verdict. `SEED=<n>` replays a run.
 */
import assert from "node:assert/strict";
import { Random, seedFromEnv } from "../net/random.ts";
import { checkOperations } from "./check.ts";
import { inferKv } from "./infer.ts";
import { appendHistory, corruptRead, type KvOperation } from "./test_util.ts";
import { casRegisterModel, kvMapModel, kvModel, registerModel } from "./models.ts";
import type { Model, NondeterministicModel, Operation } from "./types.ts";

const HISTORIES = 2000;
/** `CHECKER_PROPERTY_SCALE=10` runs ten times as many append histories (3,000 and 1,000 by default). */
const SCALE = Math.max(1, Number(Deno.env.get("CHECKER_PROPERTY_SCALE") ?? 1) || 1);
const seed = seedFromEnv();
console.log(`checker property tests: seed ${seed} (SEED=${seed} replays)`);

/** A sequential specification, written here independently of models.ts. */
interface Spec<S> {
  init: S;
  /** The next state, or undefined when the output is impossible (undefined output: any). */
  step(state: S, input: unknown, output: unknown): S | undefined;
}

/**
 * Brute force: is there an order of the operations that respects real time
 * (a precedes b when a returned before b was called) and the spec? An
 * operation with an unknown outcome never precedes another, takes any
 * output, and may also never have happened.
 */
function bruteForce<S>(spec: Spec<S>, ops: Operation[]): boolean {
  const n = ops.length;
  const before = ops.map((b) =>
    ops.reduce((mask, a, i) => !a.unknown && a.return < b.call ? mask | (1 << i) : mask, 0)
  );
  const known = ops.reduce((mask, op, i) => op.unknown ? mask : mask | (1 << i), 0);
  const search = (placed: number, state: S): boolean => {
    if ((placed & known) === known) return true; // the unknown rest never happened
    for (let j = 0; j < n; j++) {
      if (placed & (1 << j) || (before[j] & ~placed) !== 0) continue;
      const op = ops[j];
      const next = spec.step(state, op.input, op.unknown ? undefined : op.output);
      if (next !== undefined && search(placed | (1 << j), next)) return true;
    }
    return false;
  };
  return search(0, spec.init);
}

const registerSpec: Spec<number> = {
  init: 0,
  step: (s, input, output) => {
    const i = input as { op: string; value?: number };
    if (i.op === "write") return i.value;
    return output === undefined || output === s ? s : undefined;
  },
};

const casSpec: Spec<number | null> = {
  init: null,
  step: (s, input, output) => {
    const i = input as { op: string; value?: number; from?: number; to?: number };
    if (i.op === "write") return i.value;
    if (i.op === "read") return output === undefined || output === s ? s : undefined;
    if (output === undefined) return s === i.from ? i.to : s;
    if (output === true) return s === i.from ? i.to : undefined;
    return s === i.from ? undefined : s;
  },
};

const kvSpec: Spec<Record<string, string>> = {
  init: {},
  step: (s, input, output) => {
    const i = input as { op: string; key: string; value?: string };
    const current = s[i.key] ?? "";
    if (i.op === "get") return output === undefined || output === current ? s : undefined;
    return { ...s, [i.key]: i.op === "put" ? i.value! : current + i.value! };
  },
};

/**
 * A random history of at most 7 operations by 1–3 clients: the operations
 * are given real-time intervals (small integers, so times often touch),
 * executed in an order their intervals allow, and their outputs recorded;
 * then, often, one read's (or cas's) output is corrupted, so both verdicts are common. Some
 * operations end with an unknown outcome (the client stops there); they took
 * effect or not.
 */
function randomHistory<S>(
  random: Random,
  spec: Spec<S>,
  randomInput: () => unknown,
  corrupt: (op: Operation) => void,
): Operation[] {
  const clients = random.between(1, 3);
  const total = random.between(1, 7);
  const ops: (Operation & { point: number })[] = [];
  const cursor = new Array(clients).fill(0);
  const stopped = new Array(clients).fill(false);
  while (ops.length < total && stopped.includes(false)) {
    const c = random.int(clients);
    if (stopped[c]) continue;
    const call = cursor[c] + random.int(3);
    const ret = call + random.int(6);
    const unknown = random.chance(0.15);
    const point = unknown
      ? (random.chance(0.3) ? Infinity : call + random.int(12)) // may never happen
      : call + random.next() * (ret - call);
    ops.push({ client: c, input: randomInput(), call, output: undefined, return: ret, point });
    if (unknown) {
      ops[ops.length - 1].unknown = true;
      ops[ops.length - 1].return = Infinity;
      stopped[c] = true;
    }
    cursor[c] = ret + 1;
  }
  // Execute in linearization-point order; record the outputs of known operations.
  let state = spec.init;
  for (const op of [...ops].sort((a, b) => a.point - b.point)) {
    if (op.point === Infinity) continue;
    const output = observe(spec, state, op.input);
    state = spec.step(state, op.input, output)!;
    if (!op.unknown) op.output = output;
  }
  const history: Operation[] = ops.map(({ point: _, ...op }) => op);
  const observers = history.filter((op) =>
    !op.unknown && ["read", "get", "cas"].includes((op.input as { op: string }).op)
  );
  if (observers.length > 0 && random.chance(0.6)) corrupt(random.pick(observers));
  return history;
}

/** The output an operation gets in a state: the value read, or the cas result. */
function observe<S>(spec: Spec<S>, state: S, input: unknown): unknown {
  const i = input as { op: string; key?: string; from?: unknown };
  if (i.op === "read") return state;
  if (i.op === "get") return (state as Record<string, string>)[i.key!] ?? "";
  if (i.op === "cas") return state === i.from;
  return spec === kvSpec ? "" : undefined;
}

interface Case<S> {
  name: string;
  spec: Spec<S>;
  // deno-lint-ignore no-explicit-any
  models: [string, Model<any, any, any> | NondeterministicModel<any, any, any>][];
  input(random: Random): unknown;
  corrupt(random: Random, op: Operation): void;
}

/** The register as a nondeterministic model, to cover the power-set construction. */
const ndRegister: NondeterministicModel<unknown, { op: string; value?: unknown }, unknown> = {
  nondeterministic: true,
  init: () => [0],
  step: (s, input, output) =>
    input.op === "write" ? [input.value] : output === undefined || output === s ? [s] : [],
};

const cases: Case<unknown>[] = [
  {
    name: "register",
    spec: registerSpec as Spec<unknown>,
    models: [["registerModel", registerModel], ["nondeterministic register", ndRegister]],
    input: (random) =>
      random.chance(0.5) ? { op: "read" } : { op: "write", value: random.between(1, 3) },
    corrupt: (random, op) => {
      if ((op.input as { op: string }).op === "read" && !op.unknown) op.output = random.int(4);
    },
  },
  {
    name: "cas register",
    spec: casSpec as Spec<unknown>,
    models: [["casRegisterModel", casRegisterModel]],
    input: (random) => {
      const k = random.int(3);
      if (k === 0) return { op: "read" };
      if (k === 1) return { op: "write", value: random.int(3) };
      return { op: "cas", from: random.int(3), to: random.int(3) };
    },
    corrupt: (random, op) => {
      if (op.unknown) return;
      const i = op.input as { op: string };
      if (i.op === "read") op.output = random.chance(0.2) ? null : random.int(3);
      if (i.op === "cas") op.output = !op.output;
    },
  },
  {
    name: "kv",
    spec: kvSpec as Spec<unknown>,
    models: [["kvModel", kvModel], ["kvMapModel", kvMapModel]],
    input: (random) => {
      const key = random.pick(["x", "y"]);
      const k = random.int(3);
      if (k === 0) return { op: "get", key };
      return { op: k === 1 ? "put" : "append", key, value: random.pick(["a", "b"]) };
    },
    corrupt: (random, op) => {
      if ((op.input as { op: string }).op === "get" && !op.unknown) {
        op.output = random.pick(["", "a", "b", "ab", "ba", "aa"]);
      }
    },
  },
];

for (const [index, c] of cases.entries()) {
  Deno.test(`property: the checker agrees with brute force on ${HISTORIES} random ${c.name} histories`, () => {
    // One stream per case, so adding cases does not change the others' histories.
    const random = new Random((seed + index * 0x9e3779b9) >>> 0);
    const counts = { linearizable: 0, "not linearizable": 0, unknownOps: 0 };
    for (let h = 0; h < HISTORIES; h++) {
      const history = randomHistory(
        random,
        c.spec,
        () => c.input(random),
        (op) => c.corrupt(random, op),
      );
      const expected = bruteForce(c.spec, history) ? "linearizable" : "not linearizable";
      counts[expected]++;
      counts.unknownOps += history.filter((op) => op.unknown).length;
      for (const [name, model] of c.models) {
        const result = checkOperations(model, structuredClone(history), { timeoutMs: 10_000 });
        if (result.verdict !== expected) {
          assert.fail(
            `${name} says ${result.verdict}, brute force says ${expected} ` +
              `(SEED=${seed}, ${c.name} history #${h}):\n` +
              history.map((op) => JSON.stringify(op)).join("\n"),
          );
        }
      }
    }
    // Both verdicts, and unknown outcomes, must be well represented, or the test proves little.
    console.log(`  ${c.name}: ${JSON.stringify(counts)}`);
    assert.ok(
      counts.linearizable > HISTORIES / 5,
      `too few linearizable: ${JSON.stringify(counts)}`,
    );
    assert.ok(counts["not linearizable"] > HISTORIES / 5, `too few not: ${JSON.stringify(counts)}`);
    assert.ok(counts.unknownOps > HISTORIES / 10, `too few unknown ops: ${JSON.stringify(counts)}`);
  });
}

Deno.test("property: the brute-force checker itself, on hand-made histories", () => {
  const w = (
    client: number,
    value: number,
    call: number,
    ret: number,
    unknown = false,
  ): Operation => ({
    client,
    input: { op: "write", value },
    call,
    output: undefined,
    return: unknown ? Infinity : ret,
    ...(unknown ? { unknown } : {}),
  });
  const r = (client: number, output: number, call: number, ret: number): Operation => ({
    client,
    input: { op: "read" },
    call,
    output,
    return: ret,
  });
  assert.equal(bruteForce(registerSpec, []), true);
  assert.equal(bruteForce(registerSpec, [r(0, 0, 0, 1)]), true);
  assert.equal(bruteForce(registerSpec, [r(0, 1, 0, 1)]), false);
  assert.equal(bruteForce(registerSpec, [w(0, 1, 0, 5), r(1, 1, 5, 6)]), true); // touching
  assert.equal(bruteForce(registerSpec, [w(0, 1, 6, 9), r(1, 1, 0, 5)]), false);
  assert.equal(bruteForce(registerSpec, [w(0, 1, 0, 0, true), r(1, 0, 5, 6)]), true); // never happened
  assert.equal(bruteForce(registerSpec, [w(0, 1, 0, 0, true), r(1, 1, 5, 6)]), true);
  assert.equal(
    bruteForce(registerSpec, [w(0, 1, 0, 0, true), r(1, 1, 5, 6), r(1, 0, 7, 8)]),
    false,
  );
  assert.equal(bruteForce(registerSpec, [w(0, 1, 3, 0, true), r(1, 1, 0, 2)]), false); // not before its call
});

/**
 * Inference against an oracle on one append history: it must agree, and
 * answer unless values repeat (`mayDecline`: then it may leave the history to
 * the search when time does not tell a value's writes apart).
 */
function agree(history: KvOperation[], oracle: string, where: string, mayDecline = false): boolean {
  const inferred = inferKv(history);
  const dump = () => history.map((op) => JSON.stringify(op)).join("\n");
  if (inferred.verdict === "inapplicable") {
    if (mayDecline && !/invariant/.test(inferred.reason)) return false;
    assert.fail(`inference declined (${inferred.reason}) on ${where}:\n${dump()}`);
  }
  if (inferred.verdict !== oracle) {
    const why = inferred.verdict === "not linearizable"
      ? `\n${inferred.explain((i) => `#${i}`).join("\n")}`
      : "";
    assert.fail(
      `inference says ${inferred.verdict}, the oracle ${oracle} on ${where}${why}\n${dump()}`,
    );
  }
  // Through checkOperations too (the same answer, and the proof's sentences build).
  const checked = checkOperations(kvModel, history);
  assert.equal(checked.verdict, oracle, where);
  if (oracle === "not linearizable") {
    assert.ok(checked.partitions[0].explanation!.join(" ").length > 0, where);
  }
  return true;
}

Deno.test(`property: inference agrees with brute force on ${3000 * SCALE} small append histories`, () => {
  const random = new Random((seed ^ 0x5bd1e995) >>> 0);
  const counts = { linearizable: 0, "not linearizable": 0, puts: 0, unknownOps: 0 };
  for (let h = 0; h < 3000 * SCALE; h++) {
    const history = appendHistory(random, {
      operations: random.between(1, 7),
      clientsPerKey: random.between(1, 3),
      putChance: 0.25,
      unknownChance: 0.15,
      maxDuration: 5,
    });
    if (random.chance(0.6)) corruptRead(random, history);
    const oracle = bruteForce(kvSpec, history) ? "linearizable" : "not linearizable";
    counts[oracle]++;
    counts.puts += history.filter((op) => op.input.op === "put").length;
    counts.unknownOps += history.filter((op) => op.unknown).length;
    agree(history, oracle, `small history #${h} (SEED=${seed})`);
  }
  console.log(`  ${JSON.stringify(counts)}`);
  assert.ok(counts.linearizable > 600 * SCALE, JSON.stringify(counts));
  assert.ok(counts["not linearizable"] > 600 * SCALE, JSON.stringify(counts));
  assert.ok(counts.puts > 300 * SCALE && counts.unknownOps > 300 * SCALE, JSON.stringify(counts));
});

Deno.test(`property: inference agrees with the search on ${400 * SCALE} append histories of 10–60 operations`, () => {
  const random = new Random((seed ^ 0x27d4eb2f) >>> 0);
  const counts = { linearizable: 0, "not linearizable": 0, undecidedBySearch: 0, declined: 0 };
  for (let h = 0; h < 400 * SCALE; h++) {
    // One in four writes values from a small pool, so values repeat.
    const repeats = random.chance(0.25);
    const history = appendHistory(random, {
      operations: random.between(10, 60),
      clientsPerKey: random.between(2, 6),
      putChance: random.pick([0, 0.1, 0.3]),
      unknownChance: random.pick([0, 0.05]),
      valuePool: repeats ? random.between(3, 12) : undefined,
    });
    const corruptions = random.int(3);
    for (let c = 0; c < corruptions; c++) corruptRead(random, history);
    const searched = checkOperations(kvModel, history, { inference: false, timeoutMs: 10_000 });
    if (searched.verdict === "unknown") {
      counts.undecidedBySearch++;
      continue;
    }
    counts[searched.verdict]++;
    if (!agree(history, searched.verdict, `history #${h} (SEED=${seed})`, repeats)) {
      counts.declined++;
    }
  }
  console.log(`  ${JSON.stringify(counts)}`);
  assert.ok(counts.linearizable > 80 * SCALE, JSON.stringify(counts));
  assert.ok(counts["not linearizable"] > 80 * SCALE, JSON.stringify(counts));
  assert.ok(counts.undecidedBySearch < 4 * SCALE, JSON.stringify(counts));
});

Deno.test(
  `property: inference with values written several times agrees with brute force on ${
    3000 * SCALE
  } histories`,
  () => {
    const random = new Random((seed ^ 0x165667b1) >>> 0);
    const counts = { linearizable: 0, "not linearizable": 0, inapplicable: 0 };
    for (let h = 0; h < 3000 * SCALE; h++) {
      const history = appendHistory(random, {
        operations: random.between(1, 7),
        clientsPerKey: random.between(1, 3),
        putChance: 0.25,
        unknownChance: 0.1,
        maxDuration: 5,
        valuePool: random.between(2, 4),
      });
      if (random.chance(0.5)) corruptRead(random, history);
      const oracle = bruteForce(kvSpec, history) ? "linearizable" : "not linearizable";
      const inferred = inferKv(history);
      if (inferred.verdict === "inapplicable") {
        assert.doesNotMatch(inferred.reason, /invariant/);
        counts.inapplicable++;
        continue;
      }
      counts[inferred.verdict]++;
      assert.equal(
        inferred.verdict,
        oracle,
        `history #${h} (SEED=${seed}):\n${history.map((op) => JSON.stringify(op)).join("\n")}`,
      );
    }
    console.log(`  ${JSON.stringify(counts)}`);
    // Most are decided: time tells the writes of a value apart more often than not.
    assert.ok(counts.linearizable > 600 * SCALE, JSON.stringify(counts));
    assert.ok(counts["not linearizable"] > 300 * SCALE, JSON.stringify(counts));
  },
);
