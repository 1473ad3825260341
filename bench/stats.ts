/**
 * The two summaries every benchmark prints: a quantile of a latency sample
 * (nearest rank) and the median of rounds (the mean of the middle two of an
 * even count). One definition of each, so two benchmarks' figures mean the
 * same (two quantiles and five medians, some taking the upper middle of an
 * even count, were in use before).
 *
 * @module
 */

/** The value at quantile `q` (0..1) of ascending `sorted` (nearest rank); NaN when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** The median of the finite values of `xs` (the mean of the middle two of an even count); NaN when none. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
