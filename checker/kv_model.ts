/**
 * The model of the whole KV service (`kv/`): get, put, append, delete and
 * compare-and-set, with the outputs the service's clerk returns.
 *
 * @module
 */
import type { Model } from "./types.ts";

/**
 * An operation of the KV service, as a `KvClerk` makes it: `get` reads a key
 * (absent: null), `put` replaces its value, `append` adds to it (a missing key
 * starts from ""), `delete` removes it, `cas` sets `value` only when the value
 * equals `expected` (null: the key must be absent).
 *
 * @example
 * ```ts
 * import type { KvServiceInput } from "@distkit/distkit/checker";
 *
 * const claim: KvServiceInput = { op: "cas", key: "leader", expected: null, value: "node-1" };
 * ```
 */
export type KvServiceInput =
  | { op: "get"; key: string }
  | { op: "put"; key: string; value: string }
  | { op: "append"; key: string; value: string }
  | { op: "delete"; key: string }
  | { op: "cas"; key: string; expected: string | null; value: string };

/**
 * What the service answered, as the clerk returns it: a `get`'s value (null:
 * absent), a `delete`'s "the key was there", a `cas`'s outcome (`current`:
 * the value found when it did not swap), nothing for `put` and `append`.
 * `undefined` means the outcome is unknown (the operation timed out): any
 * outcome is then accepted.
 *
 * @example
 * ```ts
 * import type { KvServiceOutput } from "@distkit/distkit/checker";
 *
 * const refused: KvServiceOutput = { ok: false, current: "node-2" };
 * ```
 */
export type KvServiceOutput =
  | string
  | null
  | boolean
  | { ok: boolean; current?: string | null }
  | undefined;

function step(
  state: string | null,
  input: KvServiceInput,
  output: KvServiceOutput,
): string | null | undefined {
  switch (input.op) {
    case "get":
      return output === undefined || output === state ? state : undefined;
    case "put":
      return input.value;
    case "append":
      return (state ?? "") + input.value;
    case "delete":
      // An unknown delete may be placed where it ran; after it the key is gone.
      return output === undefined || output === (state !== null) ? null : undefined;
    case "cas": {
      const swaps = state === input.expected;
      // An unknown cas is taken to have run when it could: placed at the very
      // end it changes nothing anyone saw, so "never ran" is covered too.
      if (output === undefined) return swaps ? input.value : state;
      if (typeof output !== "object" || output === null) return undefined;
      if (output.ok) return swaps ? input.value : undefined;
      // A refusal must say what was there (the service always does).
      return !swaps && output.current === state ? state : undefined;
    }
  }
}

function describe(input: KvServiceInput, output: KvServiceOutput): string {
  const key = JSON.stringify(input.key);
  const out = output === undefined
    ? "?"
    : typeof output === "object" && output !== null
    ? output.ok ? "ok" : `refused, current ${JSON.stringify(output.current ?? null)}`
    : JSON.stringify(output);
  switch (input.op) {
    case "get":
      return `get(${key}) → ${out}`;
    case "put":
    case "append":
      return `${input.op}(${key}, ${JSON.stringify(input.value)})`;
    case "delete":
      return `delete(${key}) → ${
        output === undefined ? "?" : output === true ? "existed" : "absent"
      }`;
    case "cas":
      return `cas(${key}, ${JSON.stringify(input.expected)} → ${
        JSON.stringify(input.value)
      }) → ${out}`;
  }
}

/**
 * The model of the whole KV service, key by key: get/put/append/delete/cas
 * with the outputs a `KvClerk` returns (see {@linkcode KvServiceOutput}). A
 * key's state is its value, null while absent. Values are strings (decode
 * byte values before recording them).
 *
 * @example A cas that swapped, then one refused with the value it found
 * ```ts
 * import { checkOperations, kvServiceModel } from "@distkit/distkit/checker";
 *
 * const r = checkOperations(kvServiceModel, [
 *   { client: 0, input: { op: "cas", key: "l", expected: null, value: "a" }, call: 0, output: { ok: true }, return: 1 },
 *   { client: 1, input: { op: "cas", key: "l", expected: null, value: "b" }, call: 2, output: { ok: false, current: "a" }, return: 3 },
 *   { client: 1, input: { op: "delete", key: "l" }, call: 4, output: true, return: 5 },
 *   { client: 0, input: { op: "get", key: "l" }, call: 6, output: null, return: 7 },
 * ]);
 * r.verdict; // "linearizable"
 * ```
 */
export const kvServiceModel: Model<string | null, KvServiceInput, KvServiceOutput> = {
  init: () => null,
  step,
  partitionKey: (input) => input.key,
  describeOperation: describe,
  describeState: (s) => s === null ? "(absent)" : JSON.stringify(s),
};
