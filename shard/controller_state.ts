/**
 * The shard controller's replicated state: every configuration so far, and
 * the operations that make the next one (Join, Leave, Move) or read one
 * (Query). Deterministic, so every replica holds the same history.
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import { initialConfig, joinGroups, leaveGroups, moveShard, type ShardConfig } from "./config.ts";

/**
 * A change to the configuration.
 *
 * @example
 * ```ts
 * import type { ControllerOp } from "./controller_state.ts";
 *
 * const op: ControllerOp = { type: "join", groups: { 100: ["a", "b", "c"] } };
 * ```
 */
export type ControllerOp =
  | { type: "join"; groups: Record<number, string[]> }
  | { type: "leave"; gids: number[] }
  | { type: "move"; shard: number; gid: number };

/**
 * The outcome of a change: the number of the configuration it made, or why
 * it was refused (a move to a group that is not there).
 *
 * @example
 * ```ts
 * import type { ControllerResult } from "@distkit/distkit/shard";
 *
 * const r: ControllerResult = { ok: true, num: 3 };
 * ```
 */
export type ControllerResult = { ok: true; num: number } | { ok: false; refused: string };

/**
 * Every configuration, from number 0.
 *
 * @example
 * ```ts
 * import { ControllerState } from "./controller_state.ts";
 *
 * const state = new ControllerState();
 * state.apply({ type: "join", groups: { 1: ["a"] } });
 * state.query(-1).num; // 1
 * ```
 */
export class ControllerState {
  #configs: ShardConfig[] = [initialConfig()];

  /** Applies a change; a refused one changes nothing. */
  apply(op: ControllerOp): ControllerResult {
    const latest = this.#configs[this.#configs.length - 1];
    let next: ShardConfig;
    try {
      switch (op.type) {
        case "join":
          next = joinGroups(latest, op.groups);
          break;
        case "leave":
          next = leaveGroups(latest, op.gids);
          break;
        case "move":
          next = moveShard(latest, op);
          break;
      }
    } catch (err) {
      return { ok: false, refused: (err as Error).message };
    }
    this.#configs.push(next);
    return { ok: true, num: next.num };
  }

  /** Configuration `num`; -1 or a number past the latest gives the latest. */
  query(num: number): ShardConfig {
    const latest = this.#configs.length - 1;
    return this.#configs[num < 0 || num > latest ? latest : num];
  }

  /** Every configuration, for a snapshot. */
  toJSON(): ShardConfig[] {
    return this.#configs;
  }

  /**
   * A state restored from {@linkcode ControllerState.toJSON}.
   *
   * @throws {Error} when `configs` is not a list of configurations numbered from 0.
   */
  static from(configs: unknown): ControllerState {
    if (
      !Array.isArray(configs) || configs.length === 0 ||
      configs.some((c, i) =>
        c?.num !== i || !Array.isArray(c?.shards) || typeof c?.groups !== "object"
      )
    ) {
      throw new Error("not a controller state: expected configurations numbered 0, 1, 2...");
    }
    const state = new ControllerState();
    state.#configs = configs as ShardConfig[];
    return state;
  }
}

/**
 * Checks a change as it comes from the wire.
 *
 * @throws {ArgumentsError} naming what is wrong.
 *
 * @example
 * ```ts
 * import { parseControllerOp } from "./controller_state.ts";
 *
 * parseControllerOp({ type: "leave", gids: [100] }); // { type: "leave", gids: [100] }
 * ```
 */
export function parseControllerOp(raw: unknown): ControllerOp {
  const op = raw as Partial<Record<string, unknown>> | null;
  const gidsOk = (xs: unknown) =>
    Array.isArray(xs) && xs.every((g) => Number.isSafeInteger(g) && g > 0);
  switch (op?.type) {
    case "join": {
      const groups = op.groups;
      if (typeof groups !== "object" || groups === null || Array.isArray(groups)) {
        throw new ArgumentsError("join takes groups: { gid: [server, ...] }");
      }
      const clean: Record<number, string[]> = {};
      for (const [gid, servers] of Object.entries(groups)) {
        if (!gidsOk([Number(gid)])) throw new ArgumentsError(`bad group id ${gid}`);
        if (
          !Array.isArray(servers) || servers.length === 0 ||
          servers.some((s) => typeof s !== "string")
        ) {
          throw new ArgumentsError(`group ${gid} needs a list of server names`);
        }
        clean[Number(gid)] = [...servers];
      }
      return { type: "join", groups: clean };
    }
    case "leave":
      if (!gidsOk(op.gids)) throw new ArgumentsError("leave takes gids: [gid, ...]");
      return { type: "leave", gids: [...(op.gids as number[])] };
    case "move":
      if (!Number.isSafeInteger(op.shard) || !Number.isSafeInteger(op.gid)) {
        throw new ArgumentsError("move takes { shard, gid } as integers");
      }
      return { type: "move", shard: op.shard as number, gid: op.gid as number };
    default:
      throw new ArgumentsError(`a change is join, leave or move, got ${JSON.stringify(op?.type)}`);
  }
}
