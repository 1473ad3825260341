/**
 * The environment every component runs in: a clock, a random source and an
 * id generator. Components take them as options (`clock`, `random`, `id`);
 * left out, they default to the real ones (the wall clock, a generator seeded
 * from `SEED` or at random, `crypto.randomUUID()`).
 *
 * Inside {@linkcode simulate} there is no such default: a component that was
 * not given its clock, random source or id would run on real time or real
 * randomness in the middle of a deterministic run, and the run would no
 * longer replay from its seed. So while a simulation runs, asking for a
 * default throws {@linkcode MissingEnvironmentError}, naming the component
 * and the option to pass (`clock: sim.clock`, `random: sim.random.fork()`,
 * `id: sim.newId()`).
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";
import { Random, seedFromEnv } from "./random.ts";

/** Simulations running now (in this isolate). */
let simulations = 0;

/**
 * A component inside {@linkcode simulate} was not given its clock, random
 * source or id, and would have fallen back to the real one.
 *
 * @example
 * ```ts
 * import { MissingEnvironmentError } from "@distkit/distkit/net";
 *
 * const err = new MissingEnvironmentError("KvClerk", "id", "sim.newId()");
 * err.message.includes("sim.newId()"); // true
 * ```
 */
export class MissingEnvironmentError extends Error {
  /**
   * Creates the error.
   *
   * @param component Who asked for the default.
   * @param option The option it was not given.
   * @param value What to pass inside a simulation.
   */
  constructor(component: string, option: string, value: string) {
    super(
      `${component} was given no \`${option}\` inside simulate(), and would fall back to the ` +
        `real one, so the run would not replay from its seed: pass \`${option}: ${value}\``,
    );
    this.name = "MissingEnvironmentError";
  }
}

/**
 * Marks a simulation as running until the returned function is called (what
 * {@linkcode simulate} does around its body).
 *
 * @example
 * ```ts
 * import { enterSimulation, insideSimulation } from "@distkit/distkit/net";
 *
 * const leave = enterSimulation();
 * insideSimulation(); // true
 * leave();
 * ```
 */
export function enterSimulation(): () => void {
  simulations++;
  let left = false;
  return () => {
    if (left) return;
    left = true;
    simulations--;
  };
}

/**
 * Whether a simulation is running.
 *
 * @example
 * ```ts
 * import { insideSimulation } from "@distkit/distkit/net";
 *
 * insideSimulation(); // false, outside simulate()
 * ```
 */
export function insideSimulation(): boolean {
  return simulations > 0;
}

/**
 * The clock of a component given none: the real clock.
 *
 * @param component Names the component in the error.
 * @throws {MissingEnvironmentError} inside a simulation.
 *
 * @example
 * ```ts
 * import { type Clock, defaultClock } from "@distkit/distkit/net";
 *
 * function makeTimer(options: { clock?: Clock } = {}) {
 *   const clock = options.clock ?? defaultClock("makeTimer");
 *   return clock.now();
 * }
 * makeTimer();
 * ```
 */
export function defaultClock(component: string): Clock {
  if (simulations > 0) throw new MissingEnvironmentError(component, "clock", "sim.clock");
  return realClock;
}

/**
 * The random source of a component given none: seeded from `SEED`, or at
 * random.
 *
 * @param component Names the component in the error.
 * @throws {MissingEnvironmentError} inside a simulation.
 *
 * @example
 * ```ts
 * import { defaultRandom } from "@distkit/distkit/net";
 *
 * defaultRandom("example").int(6);
 * ```
 */
export function defaultRandom(component: string): Random {
  if (simulations > 0) {
    throw new MissingEnvironmentError(component, "random", "sim.random.fork()");
  }
  return new Random(seedFromEnv());
}

/**
 * A fresh unique id for a component given none: `crypto.randomUUID()`.
 *
 * @param component Names the component in the error.
 * @param option The option that takes the id (default `"id"`), for the error.
 * @throws {MissingEnvironmentError} inside a simulation.
 *
 * @example
 * ```ts
 * import { defaultId } from "@distkit/distkit/net";
 *
 * defaultId("example").length; // 36
 * ```
 */
export function defaultId(component: string, option = "id"): string {
  if (simulations > 0) throw new MissingEnvironmentError(component, option, "sim.newId()");
  return crypto.randomUUID();
}

/**
 * A UUID (version 4 layout) drawn from `random`: the same seed, the same ids.
 *
 * @example
 * ```ts
 * import { Random, randomId } from "@distkit/distkit/net";
 *
 * randomId(new Random(1)) === randomId(new Random(1)); // true
 * ```
 */
export function randomId(random: Random): string {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = random.int(256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
