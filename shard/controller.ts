/**
 * The shard controller: a replicated service ({@linkcode Replica}) holding
 * every shard configuration, and its clerk. Changes (Join, Leave, Move) go
 * through the log exactly once; queries are ReadIndex reads.
 *
 * @module
 */
import { DedupTable, digestBytes } from "../rsm/dedup.ts";
import { refuseBadRequest, RequestError } from "../rsm/errors.ts";
import {
  Replica,
  type ReplicaMachine,
  type ReplicaOptions,
  type ReplicaReply,
} from "../rsm/replica.ts";
import { ReplicaClient, type ReplicaClientOptions, Sessions } from "../rsm/replica_client.ts";
import { type Codec, defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import type { Transport } from "../net/transport.ts";
import type { RaftNode } from "../raft/mod.ts";
import type { ShardConfig } from "./config.ts";
import {
  type ControllerOp,
  type ControllerResult,
  ControllerState,
  parseControllerOp,
} from "./controller_state.ts";
import { defaultId } from "../net/env.ts";

/** The name of the controller's RPC service. */
const SERVICE = "Ctrler";
/** The service's name in the clerk's errors. */
const NAME_IN_ERRORS = "shard controller";

/** A change as it goes through the log. */
interface CtrlerCommand {
  client: string;
  seq: number;
  op: ControllerOp;
}

/**
 * Options of {@linkcode ShardController.start}: those of a {@linkcode Replica}.
 *
 * @example
 * ```ts
 * import type { ShardControllerOptions } from "@distkit/distkit/shard";
 *
 * const extra: Partial<ShardControllerOptions> = { maxRaftState: 1 << 20 };
 * ```
 */
export type ShardControllerOptions = ReplicaOptions;

/**
 * One replica of the shard controller. It serves `Ctrler.Query` and
 * `Ctrler.Change` on the RPC server.
 *
 * @example
 * ```ts
 * import { ShardControllerClerk, ShardController } from "@distkit/distkit/shard";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net, random }) => {
 *   const server = new RpcServer();
 *   net.addServer("c0", server);
 *   const ctrler = await ShardController.start({
 *     id: "c0",
 *     peers: ["c0"],
 *     transport: net.transportFor("c0"),
 *     server,
 *     storage: new MemoryStorage(),
 *     clock,
 *     random: random.fork(),
 *   });
 *   const clerk = new ShardControllerClerk(net.transportFor("admin"), ["c0"], {
 *     clock,
 *     random: random.fork(),
 *     id: "admin",
 *   });
 *   await clerk.join({ 100: ["a", "b", "c"] });
 *   assert.equal((await clerk.query()).shards[0], 100);
 *   await ctrler.stop();
 * }, { seed: 1 });
 * ```
 */
export class ShardController {
  readonly #replica: Replica<ControllerResult>;
  readonly #machine: CtrlerMachine;

  private constructor(replica: Replica<ControllerResult>, machine: CtrlerMachine) {
    this.#replica = replica;
    this.#machine = machine;
  }

  /** Starts the replica (restoring its configurations) and begins serving. */
  static async start(options: ShardControllerOptions): Promise<ShardController> {
    const machine = new CtrlerMachine();
    const replica = await Replica.start(machine, {
      ...options,
      // The machine keeps its own dedup table (in its state and snapshots).
      exactlyOnce: false,
      service: {
        name: SERVICE,
        methods: (replica) => ({
          Query: (args: unknown) =>
            replica.serve<{ config: ShardConfig }>("reads", async () => {
              const { num } = expectShape<{ num: number }>(args, { num: "integer" });
              await replica.read();
              return { status: "ok" as const, config: machine.state.query(num) };
            }),
          Change: (args: unknown) =>
            replica.serve<{ result: ControllerResult }>("writes", async () => {
              const command = parseCommand(args);
              const result = machine.recall(command) ?? await replica.submit(command);
              if (result === null) return { status: "retry" as const, reason: "entry lost" };
              return { status: "ok" as const, result };
            }),
        }),
      },
    });
    return new ShardController(replica, machine);
  }

  /** The Raft node underneath. */
  get raft(): RaftNode {
    return this.#replica.raft;
  }

  /** Resolves once the replica has stopped: by `stop`, or on its own after a failure (reported). */
  get finished(): Promise<void> {
    return this.#replica.finished;
  }

  /** The replica underneath (stats, pending requests). */
  get replica(): Replica<ControllerResult> {
    return this.#replica;
  }

  /**
   * This replica's configuration `num` (-1: its latest), without any check
   * that it is current: for inspection and tests. Clients use the clerk.
   */
  localQuery(num = -1): ShardConfig {
    return this.#machine.state.query(num);
  }

  /** Stops serving and stops the Raft node. */
  stop(): Promise<void> {
    return this.#replica.stop();
  }
}

/** The configurations and the sessions' table, as a replicated machine. */
class CtrlerMachine implements ReplicaMachine<ControllerResult> {
  state = new ControllerState();
  #dedup = new DedupTable<ControllerResult>();
  readonly #codec: Codec = defaultCodec;

  apply(entry: unknown): ControllerResult {
    let command: CtrlerCommand;
    try {
      command = parseCommand(entry);
    } catch (err) {
      return { ok: false, refused: `malformed log entry: ${(err as Error).message}` };
    }
    const digest = this.#digest(command.op);
    const verdict = this.#dedup.check(command.client, command.seq, digest);
    if (verdict.kind !== "new") return this.#answer(verdict, command);
    const result = this.state.apply(command.op);
    this.#dedup.record(command.client, command.seq, digest, result);
    return result;
  }

  /** The result of a command already applied, if it was. */
  recall(entry: unknown): ControllerResult | undefined {
    const command = entry as CtrlerCommand;
    const verdict = this.#dedup.check(command.client, command.seq, this.#digest(command.op));
    return verdict.kind === "new" ? undefined : this.#answer(verdict, command);
  }

  #answer(
    verdict: { kind: "done"; result: ControllerResult } | { kind: "stale" } | { kind: "conflict" },
    command: CtrlerCommand,
  ): ControllerResult {
    if (verdict.kind === "done") return verdict.result;
    return {
      ok: false,
      refused: verdict.kind === "stale"
        ? `change ${command.seq} of session ${command.client} is older than one applied since`
        : `change ${command.seq} of session ${command.client} was already a different change: ` +
          `two clerks share an id`,
    };
  }

  #digest(op: ControllerOp): number {
    return digestBytes(this.#codec.encode(op));
  }

  snapshot(): Uint8Array {
    return this.#codec.encode({ configs: this.state.toJSON(), dedup: this.#dedup.toJSON() });
  }

  restore(bytes: Uint8Array): void {
    const decoded = this.#codec.decode(bytes) as { configs?: unknown; dedup?: unknown } | null;
    const state = ControllerState.from(decoded?.configs);
    const dedup = DedupTable.from(decoded?.dedup, isResult);
    this.state = state;
    this.#dedup = dedup;
  }
}

function isResult(r: unknown): r is ControllerResult {
  return typeof (r as { ok?: unknown } | null)?.ok === "boolean";
}

/** Checks a `Ctrler.Change` request (or a log entry). */
function parseCommand(raw: unknown): CtrlerCommand {
  const r = expectShape<{ client: string; seq: number; op: unknown }>(
    raw,
    { client: "string", seq: "integer", op: "object" },
  );
  if (r.client === "" || r.seq < 1) {
    throw new ArgumentsError("a change needs a client id and a positive seq");
  }
  return { client: r.client, seq: r.seq, op: parseControllerOp(r.op) };
}

/**
 * Options of a {@linkcode ShardControllerClerk}.
 *
 * @example
 * ```ts
 * import type { ShardControllerClerkOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardControllerClerkOptions = { id: "admin-1", attemptTimeoutMs: 1000 };
 * ```
 */
export interface ShardControllerClerkOptions extends ReplicaClientOptions {
  /** The client's id, unique among the controller's clients, without `#`. Default: a random UUID (none inside `simulate`: pass `sim.newId()`). */
  id?: string;
}

/**
 * A client of the shard controller.
 *
 * @example
 * ```ts
 * import { ShardControllerClerk } from "@distkit/distkit/shard";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function addGroup(transport: Transport) {
 *   const clerk = new ShardControllerClerk(transport, ["c0", "c1", "c2"]);
 *   await clerk.join({ 101: ["s0", "s1", "s2"] });
 *   return await clerk.query(); // the latest configuration
 * }
 * ```
 */
export class ShardControllerClerk {
  readonly #client: ReplicaClient;
  readonly #sessions: Sessions;

  /**
   * Creates a clerk of the controller run by `servers`.
   *
   * @param transport How to reach the servers.
   * @param servers The controller replicas' names.
   */
  constructor(
    transport: Transport,
    servers: readonly string[],
    options: ShardControllerClerkOptions = {},
  ) {
    this.#client = new ReplicaClient(transport, servers, {
      ...options,
      service: NAME_IN_ERRORS,
    });
    this.#sessions = new Sessions(options.id ?? defaultId("ShardControllerClerk"));
  }

  /**
   * Configuration `num`; -1 (the default) or a number past the latest
   * gives the latest.
   */
  async query(num = -1, options: { signal?: AbortSignal } = {}): Promise<ShardConfig> {
    const reply = await this.#client.call<{ config: ShardConfig }>(
      `${SERVICE}.Query`,
      { num },
      { operation: "query", write: false, signal: options.signal },
    );
    return expectOk(reply).config;
  }

  /**
   * Adds groups (gid → server names); returns the new configuration's number.
   *
   * @throws {RequestError} when a group is already there or the request is malformed.
   */
  join(groups: Record<number, string[]>, options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#change({ type: "join", groups }, options.signal);
  }

  /**
   * Removes groups; their shards go to the others. Returns the new
   * configuration's number.
   */
  leave(gids: number[], options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#change({ type: "leave", gids }, options.signal);
  }

  /**
   * Assigns `shard` to group `gid` (until the next join or leave
   * rebalances). Returns the new configuration's number.
   *
   * @throws {RequestError} when the group is not in the configuration.
   */
  move(shard: number, gid: number, options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#change({ type: "move", shard, gid }, options.signal);
  }

  async #change(op: ControllerOp, signal: AbortSignal | undefined): Promise<number> {
    const clean = refuseBadRequest(NAME_IN_ERRORS, () => parseControllerOp(op));
    const session = this.#sessions.take();
    let reply;
    try {
      reply = await this.#client.call<{ result: ControllerResult }>(
        `${SERVICE}.Change`,
        { client: session.id, seq: session.seq, op: clean },
        { operation: op.type, write: true, signal },
      );
    } catch (err) {
      this.#sessions.release(session, "abandoned");
      throw err;
    }
    this.#sessions.release(session, "done");
    const { result } = expectOk(reply);
    if (!result.ok) throw new RequestError(NAME_IN_ERRORS, result.refused);
    return result.num;
  }
}

/** The payload of an `ok` reply; the controller never answers anything else finally. */
function expectOk<T extends object>(reply: ReplicaReply<T> | undefined): T {
  if (reply?.status !== "ok") {
    throw new RequestError(
      NAME_IN_ERRORS,
      `the controller answered ${reply?.status ?? "nothing"}, which only a shard group ` +
        `answers: check that the addresses given as controllers are the controller's`,
    );
  }
  return reply;
}
