/**
 * `LockServer`: one of the two servers of the primary/backup lock service
 * (the course's 2013 lab 1, made production grade).
 *
 * The primary applies each request and forwards it, with its result, to the
 * backup before it answers, so everything a client was told is on both
 * servers. Clients call the primary and, when it does not answer, the
 * backup; the first request the backup gets from a client makes it serve
 * alone, and from then on it refuses the old primary's forwards, which
 * tells that primary to stop answering: the two never diverge. When the
 * backup does not answer the primary's forwards, the primary serves alone.
 *
 * The fault model is the lab's: servers fail by stopping, and stay
 * stopped; the link between primary and backup loses nothing for long (a
 * forward that fails {@linkcode LockServerOptions.forwardAttempts} times
 * means the backup has stopped). Clients' requests and replies may be lost.
 * A partition between the two servers, or a restarted server, could let
 * them diverge; the view service (a later part of the lab) is the cure.
 *
 * @module
 */
import { retry } from "../net/async.ts";
import { type Clock, realClock } from "../net/clock.ts";
import { ArgumentsError, RpcError, type RpcErrorCode } from "../net/errors.ts";
import { Random, seedFromEnv } from "../net/random.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import {
  LOCK_SERVICE,
  type LockForwardedOp,
  type LockForwardReply,
  type LockForwardRequest,
  type LockOpKind,
  type LockReply,
  parseLockForward,
  parseLockRequest,
} from "./lock_protocol.ts";
import { LockTable } from "./lock_table.ts";

/**
 * What a {@linkcode LockServer} is doing:
 *
 * - `primary`: serving clients, forwarding to the backup;
 * - `backup`: following the primary's forwards, serving no client yet;
 * - `alone`: serving clients without a backup (the primary whose backup
 *   stopped, or the backup once a client came to it);
 * - `deposed`: the primary whose backup serves alone; it answers no client
 *   again;
 * - `stopped`: stopped by {@linkcode LockServer.stop}.
 *
 * @example
 * ```ts
 * import type { LockRole } from "@distkit/distkit/pb";
 *
 * const role: LockRole = "alone";
 * ```
 */
export type LockRole = "primary" | "backup" | "alone" | "deposed" | "stopped";

/**
 * Options of a {@linkcode LockServer}.
 *
 * @example
 * ```ts
 * import type { LockServerOptions } from "@distkit/distkit/pb";
 * import { RpcServer, type Transport } from "@distkit/distkit/net";
 *
 * function options(transport: Transport): LockServerOptions {
 *   return { id: "p", primary: "p", backup: "b", transport, server: new RpcServer() };
 * }
 * ```
 */
export interface LockServerOptions {
  /** This server's name: the primary's or the backup's. */
  id: string;
  /** The primary's name. */
  primary: string;
  /** The backup's name. */
  backup: string;
  /** How the primary reaches the backup. */
  transport: Transport;
  /** Where the `Lock` service is registered (see {@linkcode LOCK_SERVICE}). */
  server: RpcServer;
  /** Time source for forward timeouts and backoff. Default: the real clock. */
  clock?: Clock;
  /** Randomness for the backoff jitter. Default: seeded from `SEED` or at random. */
  random?: Random;
  /** Deadline of one forward attempt. Default 1,000 ms. */
  forwardTimeoutMs?: number;
  /**
   * Attempts of a forward before the primary takes the backup to have
   * stopped and serves alone. Default 3.
   */
  forwardAttempts?: number;
  /** Most operations in one forward. Default 1,024. */
  maxBatchOps?: number;
}

/**
 * Counters and gauges of a {@linkcode LockServer}, for monitoring; also what
 * `Lock.Status` answers.
 *
 * @example
 * ```ts
 * import type { LockServerStatus } from "@distkit/distkit/pb";
 *
 * function line(s: LockServerStatus): string {
 *   return `${s.id} (${s.role}): ${s.held} held, ${s.retries} retries answered`;
 * }
 * ```
 */
export interface LockServerStatus {
  /** The server's name. */
  id: string;
  /** What it is doing. */
  role: LockRole;
  /** Locks held. */
  held: number;
  /** Client sessions remembered. */
  sessions: number;
  /** Client operations this server ran itself. */
  applied: number;
  /** Operations the backup acknowledged (on the primary). */
  forwarded: number;
  /** Operations installed from the primary's forwards (on the backup). */
  installed: number;
  /** Retried requests answered from the session table. */
  retries: number;
}

/** How a forward ended: applied, refused (or failed for good), or never answered. */
type ForwardOutcome = "ok" | "refused" | "dead";

/**
 * One server of the lock service. It registers the `Lock` service on the
 * RPC server it is given: `Lock.Lock` and `Lock.Unlock` for clerks,
 * `Lock.Forward` for the primary, `Lock.Status` for monitoring.
 *
 * @example The primary forwards before it answers
 * ```ts
 * import { LockServer } from "@distkit/distkit/pb";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net }) => {
 *   const servers = ["p", "b"].map((id) => {
 *     const server = new RpcServer();
 *     net.addServer(id, server);
 *     const transport = net.transportFor(id);
 *     return new LockServer({ id, primary: "p", backup: "b", transport, server, clock });
 *   });
 *   const end = net.transportFor("client").connect("p");
 *   const reply = await end.call("Lock.Lock", { client: "c1", seq: 1, name: "printer" });
 *   assert.deepEqual(reply, { status: "ok", result: true });
 *   assert.ok(servers[1].isHeld("printer")); // the backup has it too
 * }, { seed: 1 });
 * ```
 */
export class LockServer {
  readonly #id: string;
  readonly #primary: string;
  readonly #server: RpcServer;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #forwardTimeoutMs: number;
  readonly #forwardAttempts: number;
  readonly #maxBatchOps: number;
  readonly #table = new LockTable();
  /** The primary's end to the backup; undefined on the backup. */
  readonly #toBackup: ClientEnd | undefined;
  #role: LockRole;
  /** Operations run for clients here, numbered from 1: the last one's number. */
  #applied = 0;
  /** The number of the last operation the backup has (or that may be answered alone). */
  #safe = 0;
  /** Operations run but not yet sent to the backup, in order. */
  #outbox: LockForwardedOp[] = [];
  /** Answers waiting for their operation to be safe, in operation order. */
  #waiters: { index: number; settle: (safe: boolean) => void }[] = [];
  #batch = 0;
  #lastBatch = 0;
  #forwarded = 0;
  #installed = 0;
  #retries = 0;
  /** The forwarding loop while it runs. */
  #pumping: Promise<void> | undefined;
  /** Fires at stop, ending the forward in flight and its retries. */
  readonly #stopping = new AbortController();

  /**
   * Creates the server and registers the `Lock` service on `options.server`.
   *
   * @throws {RangeError} when the primary and backup share a name, `id` is
   * neither, or a number option is out of range.
   */
  constructor(options: LockServerOptions) {
    const { id, primary, backup } = options;
    if (primary === backup) {
      throw new RangeError(`the primary and the backup must differ; both are "${primary}"`);
    }
    if (id !== primary && id !== backup) {
      throw new RangeError(
        `server "${id}" is neither the primary ("${primary}") nor the backup ("${backup}")`,
      );
    }
    this.#forwardTimeoutMs = positive(options.forwardTimeoutMs ?? 1000, "forwardTimeoutMs");
    this.#forwardAttempts = positiveInteger(options.forwardAttempts ?? 3, "forwardAttempts");
    this.#maxBatchOps = positiveInteger(options.maxBatchOps ?? 1024, "maxBatchOps");
    this.#id = id;
    this.#primary = primary;
    this.#server = options.server;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? new Random(seedFromEnv());
    this.#role = id === primary ? "primary" : "backup";
    this.#toBackup = id === primary ? options.transport.connect(backup) : undefined;
    options.server.addService(LOCK_SERVICE, {
      Lock: (args: unknown) => this.#serve("lock", args),
      Unlock: (args: unknown) => this.#serve("unlock", args),
      Forward: (args: unknown) => this.#receive(args),
      Status: () => this.status(),
    });
  }

  /** The server's name. */
  get id(): string {
    return this.#id;
  }

  /** What the server is doing now. */
  get role(): LockRole {
    return this.#role;
  }

  /**
   * Whether this server's copy holds the lock `name`: for inspection and
   * tests (on a primary it may include operations not yet answered).
   */
  isHeld(name: string): boolean {
    return this.#table.isHeld(name);
  }

  /** The held locks of this server's copy, sorted. */
  held(): string[] {
    return this.#table.held();
  }

  /** Counters and gauges for monitoring. */
  status(): LockServerStatus {
    return {
      id: this.#id,
      role: this.#role,
      held: this.#table.size,
      sessions: this.#table.sessions,
      applied: this.#applied,
      forwarded: this.#forwarded,
      installed: this.#installed,
      retries: this.#retries,
    };
  }

  /**
   * Stops for good, like a crash: the `Lock` service is removed (callers
   * get `UnknownServiceError`), answers not yet given say `not-primary`,
   * and nothing more is forwarded (a forward already sent may still
   * arrive). Resolves once the forwarding has ended.
   */
  async stop(): Promise<void> {
    if (this.#role !== "stopped") {
      this.#role = "stopped";
      this.#server.removeService(LOCK_SERVICE);
      this.#outbox = [];
      this.#settleAll(false);
      this.#stopping.abort(new Error(`lock server ${this.#id} stopped`));
    }
    await this.#pumping;
  }

  async #serve(kind: LockOpKind, args: unknown): Promise<LockReply> {
    const op = { op: kind, ...parseLockRequest(args) };
    // A client only comes to the backup when it could not reach the
    // primary, which (the lab's fault model) has therefore stopped.
    if (this.#role === "backup") this.#role = "alone";
    if (this.#role === "deposed" || this.#role === "stopped") return this.#notPrimary();
    const outcome = this.#table.apply(op);
    switch (outcome.kind) {
      case "stale":
        return {
          status: "refused",
          reason: `session ${op.client} has sent a request after ${op.seq}: another clerk ` +
            `uses its id; give every clerk instance its own id`,
        };
      case "conflict":
        return {
          status: "refused",
          reason: `request ${op.seq} of session ${op.client} was a different operation: two ` +
            `clerks use one id; give every clerk instance its own id`,
        };
      case "done":
        this.#retries++;
        break;
      case "applied":
        this.#applied++;
        if (this.#role === "primary") {
          this.#outbox.push({ ...op, result: outcome.result });
          this.#pump();
        } else this.#safe = this.#applied;
    }
    // Every answer waits until all this server has run so far is on the
    // backup: a retry's first answer may still be on its way there, and an
    // answer computed from an operation the backup lacks could contradict
    // what the backup says once it serves alone.
    const safe = await this.#whenSafe(this.#applied);
    return safe ? { status: "ok", result: outcome.result } : this.#notPrimary();
  }

  #receive(args: unknown): LockForwardReply {
    const forward = parseLockForward(args);
    if (forward.from !== this.#primary) {
      throw new ArgumentsError(
        `forwards come from the primary "${this.#primary}", not "${forward.from}"; check ` +
          `both servers' primary and backup names`,
      );
    }
    if (this.#role !== "backup") {
      return {
        status: "refused",
        reason: `${this.#id} is ${this.#role}, not a backup: it ${
          this.#role === "alone" ? "serves clients itself" : "takes no forwards"
        }`,
      };
    }
    // Batches come one at a time: an old number is a retry of one applied already.
    if (forward.batch <= this.#lastBatch) return { status: "ok" };
    if (forward.batch !== this.#lastBatch + 1) {
      throw new ArgumentsError(
        `batch ${forward.batch} follows batch ${this.#lastBatch}: one is missing, so the ` +
          `primary was restarted; a stopped server must stay stopped`,
      );
    }
    for (const op of forward.ops) this.#table.install(op);
    this.#lastBatch = forward.batch;
    this.#installed += forward.ops.length;
    return { status: "ok" };
  }

  #notPrimary(): LockReply {
    const why = this.#role === "stopped"
      ? "has stopped"
      : "was deposed: the backup serves clients alone";
    return { status: "not-primary", reason: `${this.#id} ${why}; ask the other server` };
  }

  #whenSafe(index: number): Promise<boolean> {
    if (this.#role === "alone" || this.#safe >= index) return Promise.resolve(true);
    if (this.#role !== "primary") return Promise.resolve(false);
    return new Promise((settle) => this.#waiters.push({ index, settle }));
  }

  #advance(safe: number): void {
    this.#safe = safe;
    let n = 0;
    while (n < this.#waiters.length && this.#waiters[n].index <= safe) {
      this.#waiters[n++].settle(true);
    }
    this.#waiters.splice(0, n);
  }

  #settleAll(safe: boolean): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.settle(safe);
  }

  /** Starts the forwarding loop unless it runs. */
  #pump(): void {
    this.#pumping ??= this.#forwardAll().finally(() => (this.#pumping = undefined));
  }

  /** Sends the outbox in batches, one at a time, until it is empty or the role changes. */
  async #forwardAll(): Promise<void> {
    while (this.#outbox.length > 0 && this.#role === "primary") {
      const ops = this.#outbox.splice(0, this.#maxBatchOps);
      const last = this.#safe + ops.length;
      const outcome = await this.#forward(++this.#batch, ops);
      if (this.#role !== "primary") return; // stopped meanwhile
      if (outcome === "ok") {
        this.#forwarded += ops.length;
        this.#advance(last);
      } else if (outcome === "refused") {
        this.#role = "deposed";
        this.#outbox = [];
        this.#settleAll(false);
      } else {
        this.#role = "alone";
        this.#outbox = [];
        this.#advance(this.#applied);
      }
    }
  }

  async #forward(batch: number, ops: LockForwardedOp[]): Promise<ForwardOutcome> {
    const args: LockForwardRequest = { from: this.#id, batch, ops };
    try {
      const reply = await retry(
        () =>
          this.#toBackup!.call<LockForwardReply>(`${LOCK_SERVICE}.Forward`, args, {
            timeoutMs: this.#forwardTimeoutMs,
            signal: this.#stopping.signal,
          }),
        {
          attempts: this.#forwardAttempts,
          baseMs: 50,
          maxMs: 1000,
          clock: this.#clock,
          random: this.#random,
          signal: this.#stopping.signal,
          retryIf: (err) => this.#role === "primary" && unanswered(err),
        },
      );
      // Anything but a plain ok (a refusal, a reply of another version)
      // means the backup did not take the batch, while it may serve
      // clients: answering them alone could diverge from it.
      return reply?.status === "ok" ? "ok" : "refused";
    } catch (err) {
      return unanswered(err) ? "dead" : "refused";
    }
  }
}

/**
 * Whether a failed forward looks like a stopped backup: never delivered or
 * never answered, or the service gone. A handler's failure (the backup
 * refusing the arguments) is an answer.
 */
function unanswered(err: unknown): boolean {
  return err instanceof RpcError && UNANSWERED.has(err.code);
}

const UNANSWERED: ReadonlySet<RpcErrorCode> = new Set([
  "unreachable",
  "timeout",
  "unknown_service",
]);

function positive(value: number, name: string): number {
  if (!(value > 0) || value === Infinity) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}
