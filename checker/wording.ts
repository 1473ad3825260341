/**
 * One way to speak of a check's partitions, shared by the API's callers, the
 * CLI and the HTML report: a partition is named by its key where it has one
 * (else by its 1-based number in the model's partition order), a partition
 * never decided is `unknown` with the reason, and partitions are listed
 * failing first, then unknown, then linearizable.
 *
 * @module
 */
import type { CheckResult, PartitionResult } from "./types.ts";

/**
 * A partition's name: `key "x"` when the model partitions by key, else
 * `partition 3` (1-based, in the model's partition order).
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel, partitionName } from "@distkit/distkit/checker";
 *
 * const result = checkOperations(kvModel, [
 *   { client: 0, input: { op: "get", key: "x" }, call: 0, output: "", return: 1 },
 * ]);
 * partitionName(result, 0); // 'key "x"'
 * ```
 */
export function partitionName(result: CheckResult, index: number): string {
  const p = result.partitions[index];
  if (p === undefined) {
    throw new RangeError(
      `partition index ${index} is out of range: the result has ${result.partitions.length} partitions`,
    );
  }
  return p.key === undefined ? `partition ${index + 1}` : `key ${JSON.stringify(p.key)}`;
}

/**
 * The indexes of a result's partitions in the order to list them: the one
 * not linearizable first, then the unknown ones, then the linearizable ones
 * (each group in the model's order).
 *
 * @example
 * ```ts
 * import { checkOperations, kvModel, partitionOrder } from "@distkit/distkit/checker";
 *
 * const result = checkOperations(kvModel, [
 *   { client: 0, input: { op: "put", key: "a", value: "1" }, call: 0, output: "", return: 1 },
 *   { client: 0, input: { op: "get", key: "b" }, call: 2, output: "2", return: 3 },
 * ]);
 * partitionOrder(result); // [1, 0]: key "b" failed
 * ```
 */
export function partitionOrder(result: CheckResult): number[] {
  const rank = (p: PartitionResult) =>
    p.verdict === "not linearizable" ? 0 : p.verdict === "unknown" ? 1 : 2;
  return result.partitions.map((_, k) => k).sort((a, b) =>
    rank(result.partitions[a]) - rank(result.partitions[b]) || a - b
  );
}

/**
 * Why a partition's verdict is `unknown` (empty for a decided one): the
 * search stopped at a partition that is not linearizable, or which budget
 * ran out first.
 *
 * @example
 * ```ts
 * import { type CheckResult, unknownReason } from "@distkit/distkit/checker";
 *
 * const result: CheckResult = {
 *   verdict: "unknown",
 *   gaveUp: "time",
 *   elapsedMs: 10,
 *   partitions: [{ verdict: "unknown", operations: [] }],
 * };
 * unknownReason(result, 0); // "the time budget ran out before it was decided"
 * ```
 */
export function unknownReason(result: CheckResult, index: number): string {
  if (result.partitions[index]?.verdict !== "unknown") return "";
  if (result.verdict === "not linearizable") {
    return "not checked: the search stops at the first partition that is not linearizable";
  }
  const budget = result.gaveUp === "states"
    ? "memory budget (maxStates)"
    : result.gaveUp === "steps"
    ? "step budget"
    : "time budget";
  return `the ${budget} ran out before it was decided`;
}
