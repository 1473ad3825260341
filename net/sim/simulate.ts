/**
 * One call to run a deterministic simulation: a virtual clock, a seeded PRNG,
 * an id generator and a simulated network, with the seed printed on failure.
 * While it runs, a component left without its clock, random source or id
 * fails loudly instead of falling back to the real one (see `env.ts`).
 *
 * @module
 */
import { VirtualClock } from "../clock.ts";
import { enterSimulation, randomId } from "../env.ts";
import { Random, seedFromEnv } from "../random.ts";
import { SimNetwork } from "./network.ts";

/**
 * What a simulation body gets to work with.
 *
 * @example
 * ```ts
 * import type { Simulation } from "@distkit/distkit/net";
 *
 * function describe(sim: Simulation) {
 *   return `seed ${sim.seed} at ${sim.clock.now()} ms`;
 * }
 * ```
 */
export interface Simulation {
  /** The seed everything random was drawn from; `SEED=<seed>` replays the run. */
  seed: number;
  /** Virtual time: starts at 0, moves only when nothing else can happen. */
  clock: VirtualClock;
  /** The run's randomness; fork it for components. */
  random: Random;
  /** A simulated network on the same clock, with its own random stream. */
  net: SimNetwork;
  /**
   * A fresh id (a UUID drawn from the run's own id stream): what components
   * take as `id` inside a simulation, instead of `crypto.randomUUID()`.
   */
  newId(): string;
  /**
   * A hash of the run so far: every network event (with its virtual time,
   * the message's length and first and last 32 bytes) and every timer
   * fired. The same seed, the same hash.
   */
  traceHash(): string;
}

/**
 * Options for {@linkcode simulate}.
 *
 * @example
 * ```ts
 * import type { SimulateOptions } from "@distkit/distkit/net";
 *
 * const options: SimulateOptions = { seed: 1234, limitMs: 600_000, trace: true };
 * ```
 */
export interface SimulateOptions {
  /** The seed. Default: `SEED` from the environment, else a fresh random one. */
  seed?: number;
  /** Fail once this much virtual time has passed. Default: no limit. */
  limitMs?: number;
  /** Record the network's events in `sim.net.trace`. Default false. */
  trace?: boolean;
}

/**
 * Thrown by {@linkcode simulate} when the body fails: it names the seed that
 * replays the run, and carries the original error as `cause`.
 *
 * @example
 * ```ts
 * import { SimulationFailure } from "@distkit/distkit/net";
 *
 * const failure = new SimulationFailure(42, new Error("two leaders in term 3"));
 * failure.message; // "simulation failed with seed 42 (replay: SEED=42): two leaders in term 3"
 * ```
 */
export class SimulationFailure extends Error {
  /** The seed that reproduces the failure. */
  readonly seed: number;

  /**
   * Creates the error.
   *
   * @param seed The seed that reproduces the failure.
   * @param cause The original error.
   */
  constructor(seed: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`simulation failed with seed ${seed} (replay: SEED=${seed}): ${reason}`, { cause });
    this.name = "SimulationFailure";
    this.seed = seed;
  }
}

/**
 * Runs `body` in virtual time and returns its result. The same seed gives the
 * same run, event for event.
 *
 * @throws {SimulationFailure} when the body throws (or the run stalls or
 * passes `limitMs`), naming the seed.
 *
 * @example
 * ```ts
 * import { delay, RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net }) => {
 *   const server = new RpcServer();
 *   server.addService("Clock", { Now: () => clock.now() });
 *   net.addServer("s", server);
 *   const end = net.makeEnd("c");
 *   net.connect("c", "s");
 *   net.enable("c", true);
 *   await delay(90_000, { clock }); // a minute and a half of virtual time, at once
 *   assert.equal(await end.call("Clock.Now"), 90_000);
 * }, { seed: 1 });
 * ```
 */
export async function simulate<T>(
  body: (sim: Simulation) => Promise<T>,
  options: SimulateOptions = {},
): Promise<T> {
  const seed = options.seed ?? seedFromEnv();
  const clock = new VirtualClock();
  const random = new Random(seed);
  const net = new SimNetwork({ clock, random: random.fork(), trace: options.trace });
  // Its own stream, not a fork of `random`: ids must not shift a seed's run.
  const ids = new Random(seed ^ 0x1d5eed);
  const sim: Simulation = {
    seed,
    clock,
    random,
    net,
    newId: () => randomId(ids),
    traceHash: () =>
      `${net.traceHash.toString(16).padStart(8, "0")}${
        clock.traceHash.toString(16).padStart(8, "0")
      }`,
  };
  const leave = enterSimulation();
  try {
    return await clock.run(() => body(sim), { limitMs: options.limitMs });
  } catch (err) {
    throw new SimulationFailure(seed, err);
  } finally {
    leave();
    net.close();
  }
}
