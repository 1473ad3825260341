/**
 * What a write does to one key, and what a session's dedup verdict
 * answers: the rules both key/value states (in memory and stored) apply.
 *
 * @module
 */
import type { DedupVerdict } from "../rsm/dedup.ts";
import type { KvCommand, KvResult, KvWrite } from "./kv_types.ts";
import { concatValues, type KvValue, sameValue, valueBytes } from "./value.ts";

/**
 * What write `w` does to a key whose value is `current` (undefined: absent):
 * its result, and the key's next value (`null`: deleted; undefined: unchanged).
 *
 * @example
 * ```ts
 * import { decideWrite } from "./write.ts";
 *
 * decideWrite({ type: "append", key: "k", value: "b" }, "a", Infinity);
 * // { result: { ok: true }, next: "ab" }
 * ```
 */
export function decideWrite(
  w: KvWrite,
  current: KvValue | undefined,
  maxValueBytes: number,
): { result: KvResult; next?: KvValue | null } {
  switch (w.type) {
    case "put":
      return { result: { ok: true }, next: w.value };
    case "append": {
      const size = (current === undefined ? 0 : valueBytes(current)) + valueBytes(w.value);
      if (size > maxValueBytes) {
        return {
          result: {
            ok: false,
            refused:
              `append would make the value of ${w.key} ${size} bytes; the limit is ${maxValueBytes}`,
          },
        };
      }
      return {
        result: { ok: true },
        next: current === undefined ? w.value : concatValues(current, w.value),
      };
    }
    case "delete":
      return { result: { ok: true, existed: current !== undefined }, next: null };
    case "cas":
      if (!sameValue(current ?? null, w.expected)) {
        return { result: { ok: false, current: current ?? null } };
      }
      return { result: { ok: true }, next: w.value };
  }
}

/**
 * The answer a session's dedup verdict gives `command`: its recorded result,
 * a stale or conflicting write's refusal, or undefined for a new write.
 *
 * @example
 * ```ts
 * import { dedupAnswer } from "./write.ts";
 *
 * const command = { client: "c", seq: 2, write: { type: "delete" as const, key: "k" } };
 * dedupAnswer({ kind: "stale" }, command); // { ok: false, stale: true }
 * ```
 */
export function dedupAnswer(
  verdict: DedupVerdict<KvResult>,
  command: KvCommand,
): KvResult | undefined {
  switch (verdict.kind) {
    case "new":
      return undefined;
    case "done":
      return verdict.result;
    case "stale":
      return { ok: false, stale: true };
    case "conflict":
      return {
        ok: false,
        refused: `write ${command.seq} of session ${command.client} was already a different ` +
          `write: two clients use one id; give every clerk instance its own id`,
      };
  }
}
