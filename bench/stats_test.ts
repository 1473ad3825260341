import assert from "node:assert/strict";
import { median, quantile } from "./stats.ts";

Deno.test("stats: nearest-rank quantiles, and the median of an even count is the middle two's mean", () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
  assert.equal(quantile([1, 2, 3, 4], 0.99), 4);
  assert.equal(quantile([7], 0), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.equal(median([0.57, 0.42]), 0.495);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([1, NaN, 3, Infinity]), 2);
  assert.ok(Number.isNaN(median([])));
});
