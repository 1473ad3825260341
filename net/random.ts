/**
 * Seeded randomness: every random choice in distkit goes through a
 * {@linkcode Random}, so a seed replays a whole run exactly.
 *
 * @module
 */

/**
 * A fast seeded pseudo-random generator (sfc32, seeded through splitmix32).
 * Not for cryptography.
 *
 * @example The same seed, the same sequence
 * ```ts
 * import { Random } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const a = new Random(42);
 * const b = new Random(42);
 * assert.equal(a.int(1000), b.int(1000));
 * ```
 */
export class Random {
  /** The seed this generator started from. */
  readonly seed: number;
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * Creates a generator.
   *
   * @param seed Any integer; only its low 32 bits are used.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.seed = seed >>> 0;
    let s = this.seed;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.#next32();
  }

  #next32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.#next32() / 4294967296;
  }

  /** An integer in [0, n); `n` must be a positive integer below 2^32. */
  int(n: number): number {
    if (!(n > 0 && n <= 4294967296) || !Number.isInteger(n)) {
      throw new RangeError(`int(n) needs an integer 0 < n <= 2^32, got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max], both inclusive. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick needs a non-empty array");
    return items[this.int(items.length)];
  }

  /** A shuffled copy of `items` (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /**
   * A new generator seeded from this one: give each component its own stream
   * so that adding random choices in one does not shift the others.
   */
  fork(): Random {
    return new Random(this.#next32());
  }
}

/**
 * The seed for a randomized run: `SEED` from the environment when it is set
 * (to replay a failure), otherwise a fresh random one. Print it with every
 * failure.
 *
 * @example
 * ```ts
 * import { Random, seedFromEnv } from "@distkit/distkit/net";
 *
 * const seed = seedFromEnv();
 * const random = new Random(seed);
 * ```
 */
export function seedFromEnv(): number {
  let text: string | undefined;
  try {
    text = Deno.env.get("SEED");
  } catch {
    text = undefined; // no --allow-env: fall back to a fresh seed
  }
  if (text !== undefined && text !== "") {
    const seed = Number(text);
    if (!Number.isInteger(seed)) throw new RangeError(`SEED must be an integer, got "${text}"`);
    return seed >>> 0;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
