/**
 * Ready-made models: key/value (get/put/append), a register, a
 * compare-and-set register, a set, and a lock service (the whole KV
 * service's model is in kv_model.ts).
 *
 * @module
 */
import type { Model, Operation } from "./types.ts";

/**
 * An operation on the key/value store: `get` reads a key (absent reads as
 * ""), `put` replaces its value, `append` adds to it.
 *
 * @example
 * ```ts
 * import type { KvInput } from "@distkit/distkit/checker";
 *
 * const input: KvInput = { op: "append", key: "7", value: "x 3 12 y" };
 * ```
 */
export interface KvInput {
  /** The operation. */
  op: "get" | "put" | "append";
  /** The key. */
  key: string;
  /** The value written (put, append). */
  value?: string;
}

function kvStep(state: string, input: KvInput, output: string | undefined): string | undefined {
  switch (input.op) {
    case "get":
      return output === undefined || output === state ? state : undefined;
    case "put":
      return input.value ?? "";
    case "append":
      return state + (input.value ?? "");
  }
}

function describeKv(input: KvInput, output: string | undefined): string {
  if (input.op === "get") {
    return `get(${JSON.stringify(input.key)}) → ${
      output === undefined ? "?" : JSON.stringify(output)
    }`;
  }
  return `${input.op}(${JSON.stringify(input.key)}, ${JSON.stringify(input.value)})`;
}

/**
 * Splits a history by a string the input names (a key, a lock), in order of
 * first appearance.
 *
 * @example
 * ```ts
 * import { partitionBy } from "@distkit/distkit/checker";
 *
 * const ops = [
 *   { client: 0, input: "a", call: 0, output: 1, return: 1 },
 *   { client: 0, input: "b", call: 2, output: 1, return: 3 },
 * ];
 * partitionBy(ops, (input) => input).length; // 2
 * ```
 */
export function partitionBy<I, O>(
  history: Operation<I, O>[],
  keyOf: (input: I) => string,
): Operation<I, O>[][] {
  const groups = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    const key = keyOf(op.input);
    const list = groups.get(key);
    if (list) list.push(op);
    else groups.set(key, [op]);
  }
  return [...groups.values()];
}

/**
 * The key/value model of the course's KV service, partitioned by key (each
 * key is checked alone, so histories stay tractable).
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel } from "@distkit/distkit/checker";
 *
 * const r = checkOperations(kvModel, [
 *   { client: 0, input: { op: "append", key: "k", value: "a" }, call: 0, output: "", return: 1 },
 *   { client: 0, input: { op: "get", key: "k" }, call: 2, output: "b", return: 3 },
 * ]);
 * r.verdict; // "not linearizable"
 * ```
 */
export const kvModel: Model<string, KvInput, string | undefined> = {
  init: () => "",
  step: kvStep,
  partition: (history) => partitionBy(history, (input) => input.key),
  partitionKey: (input) => input.key,
  describeOperation: describeKv,
  describeState: (s) => JSON.stringify(s),
};

/**
 * The same key/value model without partitioning: one state for all keys.
 * Much slower on large histories; useful to compare, and for operations
 * that touch several keys.
 *
 * @example
 * ```ts
 * import { checkOperations, kvMapModel } from "@distkit/distkit/checker";
 *
 * checkOperations(kvMapModel, []).verdict; // "linearizable"
 * ```
 */
export const kvMapModel: Model<ReadonlyMap<string, string>, KvInput, string | undefined> = {
  init: () => new Map(),
  step: (state, input, output) => {
    const current = state.get(input.key) ?? "";
    const next = kvStep(current, input, output);
    if (next === undefined) return undefined;
    if (next === current && (input.op === "get" || state.has(input.key))) return state;
    const copy = new Map(state);
    copy.set(input.key, next);
    return copy;
  },
  equal: (a, b) => {
    if (a === b) return true;
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (b.get(k) !== v) return false;
    return true;
  },
  describeOperation: describeKv,
  describeState: (s) => JSON.stringify(Object.fromEntries(s)),
};

/**
 * A register operation: read its value, or write one.
 *
 * @example
 * ```ts
 * import type { RegisterInput } from "@distkit/distkit/checker";
 *
 * const write: RegisterInput = { op: "write", value: 3 };
 * ```
 */
export type RegisterInput = { op: "read" } | { op: "write"; value: unknown };

/**
 * A read/write register starting at 0; reads return the value (`undefined`
 * output: unknown).
 *
 * @example
 * ```ts
 * import { checkOperations, registerModel } from "@distkit/distkit/checker";
 *
 * checkOperations(registerModel, [
 *   { client: 0, input: { op: "read" }, call: 0, output: 5, return: 1 },
 * ]).verdict; // "not linearizable"
 * ```
 */
export const registerModel: Model<unknown, RegisterInput, unknown> = {
  init: () => 0,
  step: (state, input, output) => {
    if (input.op === "write") return input.value;
    return output === undefined || output === state ? state : undefined;
  },
  describeOperation: (input, output) =>
    input.op === "write"
      ? `write(${JSON.stringify(input.value)})`
      : `read() → ${output === undefined ? "?" : JSON.stringify(output)}`,
  describeState: (s) => JSON.stringify(s),
};

/**
 * A compare-and-set register operation (the Jepsen etcd tests'): read,
 * write, or cas from → to.
 *
 * @example
 * ```ts
 * import type { CasInput } from "@distkit/distkit/checker";
 *
 * const cas: CasInput = { op: "cas", from: 1, to: 4 };
 * ```
 */
export type CasInput =
  | { op: "read" }
  | { op: "write"; value: number }
  | { op: "cas"; from: number; to: number };

/**
 * A compare-and-set register starting at null (Jepsen's etcd model).
 * Outputs: a read returns the value (null when unset); a cas returns whether
 * it swapped; `undefined` means unknown (timed out): a cas that may have run
 * is taken to have run when it could, since an open operation can also be
 * placed at the very end.
 *
 * @example
 * ```ts
 * import { casRegisterModel, checkOperations } from "@distkit/distkit/checker";
 *
 * checkOperations(casRegisterModel, [
 *   { client: 0, input: { op: "write", value: 1 }, call: 0, output: undefined, return: 1 },
 *   { client: 0, input: { op: "cas", from: 1, to: 2 }, call: 2, output: true, return: 3 },
 *   { client: 0, input: { op: "read" }, call: 4, output: 2, return: 5 },
 * ]).verdict; // "linearizable"
 * ```
 */
export const casRegisterModel: Model<number | null, CasInput, unknown> = {
  init: () => null,
  step: (state, input, output) => {
    switch (input.op) {
      case "read":
        return output === undefined || output === state ? state : undefined;
      case "write":
        return input.value;
      case "cas": {
        const matches = state === input.from;
        if (output === undefined) return matches ? input.to : state;
        if (output === true) return matches ? input.to : undefined;
        return matches ? undefined : state;
      }
    }
  },
  describeOperation: (input, output) => {
    const out = output === undefined ? "?" : JSON.stringify(output);
    if (input.op === "read") return `read() → ${out}`;
    if (input.op === "write") return `write(${input.value})`;
    return `cas(${input.from} → ${input.to}) → ${out}`;
  },
  describeState: (s) => JSON.stringify(s),
};

/**
 * A set operation: add or remove an element, or read the whole set.
 *
 * @example
 * ```ts
 * import type { SetInput } from "@distkit/distkit/checker";
 *
 * const add: SetInput = { op: "add", value: "x" };
 * ```
 */
export type SetInput = { op: "add"; value: string } | { op: "remove"; value: string } | {
  op: "read";
};

/**
 * A set of strings, initially empty; a read returns its elements (in any
 * order). States are kept as sorted, joined strings so they compare fast.
 *
 * @example
 * ```ts
 * import { checkOperations, setModel } from "@distkit/distkit/checker";
 *
 * checkOperations(setModel, [
 *   { client: 0, input: { op: "add", value: "a" }, call: 0, output: undefined, return: 1 },
 *   { client: 1, input: { op: "read" }, call: 2, output: ["a"], return: 3 },
 * ]).verdict; // "linearizable"
 * ```
 */
export const setModel: Model<string, SetInput, unknown> = {
  init: () => "[]",
  step: (state, input, output) => {
    const items: string[] = JSON.parse(state);
    switch (input.op) {
      case "read": {
        if (output === undefined) return state;
        if (!Array.isArray(output)) return undefined;
        return JSON.stringify([...output].map(String).sort()) === state ? state : undefined;
      }
      case "add":
        return items.includes(input.value) ? state : JSON.stringify([...items, input.value].sort());
      case "remove":
        return JSON.stringify(items.filter((v) => v !== input.value));
    }
  },
  describeOperation: (input, output) =>
    input.op === "read"
      ? `read() → ${JSON.stringify(output)}`
      : `${input.op}(${JSON.stringify(input.value)})`,
  describeState: (s) => s,
};

/**
 * A lock service operation: take the lock `name`, or release it.
 *
 * @example
 * ```ts
 * import type { LockInput } from "@distkit/distkit/checker";
 *
 * const input: LockInput = { op: "lock", name: "printer" };
 * ```
 */
export interface LockInput {
  /** The operation. */
  op: "lock" | "unlock";
  /** The lock. */
  name: string;
}

/**
 * A lock service: the state is the set of held locks, initially none.
 * `lock` returns true if the lock was free (it is now held), false if it was
 * held; `unlock` returns true if it was held (it is now free), false if not.
 * An `undefined` output (unknown) leaves the lock held after a `lock` and
 * free after an `unlock`, whatever it was. Histories are partitioned by
 * lock name; a state is the held names, sorted, as a JSON array.
 *
 * @example Two locks of one name with no unlock between cannot both succeed
 * ```ts
 * import { checkOperations, lockModel } from "@distkit/distkit/checker";
 *
 * checkOperations(lockModel, [
 *   { client: 0, input: { op: "lock", name: "a" }, call: 0, output: true, return: 1 },
 *   { client: 1, input: { op: "lock", name: "a" }, call: 2, output: true, return: 3 },
 * ]).verdict; // "not linearizable"
 * ```
 */
export const lockModel: Model<string, LockInput, boolean | undefined> = {
  init: () => "[]",
  step: (state, input, output) => {
    const held: string[] = JSON.parse(state);
    const was = held.includes(input.name);
    // What a correct lock service answers in this state.
    const expected = input.op === "lock" ? !was : was;
    if (output !== undefined && output !== expected) return undefined;
    const now = input.op === "lock";
    if (now === was) return state;
    return JSON.stringify(
      now ? [...held, input.name].sort() : held.filter((n) => n !== input.name),
    );
  },
  partition: (history) => partitionBy(history, (input) => input.name),
  partitionKey: (input) => input.name,
  describeOperation: (input, output) =>
    `${input.op}(${JSON.stringify(input.name)}) → ${
      output === undefined ? "?" : JSON.stringify(output)
    }`,
  describeState: (s) => s,
};
