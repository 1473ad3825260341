/**
 * `LockServer`: one of the two servers of the primary/backup lock service
 * (the course's 2013 lab 1, made production grade).
 *
 * The primary applies each request and forwards it, with its result, to the
 * backup before it answers, so everything a client was told is on both
 * servers. Clients call the primary and, when it does not answer, the
 * backup; the first request the backup gets from a client makes it serve
 * alone, and from then on it refuses the old primary's forwards, which
 * tells that primary to stop answering: the two never diverge.
 *
 * Each server draws a random incarnation id each time it starts, and the
 * primary's forwards carry it. A backup follows one incarnation of the
 * primary, the one whose state it has, and refuses anything from another:
 * a primary that restarted (and so lost every lock) is deposed by its
 * first message, without answering anyone, and clients go on at the
 * backup, which has the locks.
 *
 * A backup serves only state it has. One that starts (or restarts) has
 * none: it is `joining`, answers clients `not-primary`, never takes over,
 * and answers the primary's forwards `behind`. The primary, which is never
 * deposed for that, then sends it its whole state: the locks and the
 * client sessions, taken at one instant, in pages of at most
 * {@linkcode LockServerOptions.maxBatchOps} entries; the requests that come
 * meanwhile wait, and follow as forwards. With the last page the backup is
 * a `backup` again, able to take over. The primary begins with such a
 * transfer, and when idle sends an empty forward every
 * {@linkcode LockServerOptions.probeIntervalMs}, so a backup that restarts
 * is brought up to date within about that time even with no client about.
 *
 * When the backup does not answer (a forward or transfer page failed
 * {@linkcode LockServerOptions.forwardAttempts} times), the primary serves
 * `alone`, and every {@linkcode LockServerOptions.probeIntervalMs} asks
 * whether the backup is back; once it answers, the primary sends it the
 * whole state as above (answers waiting meanwhile), and the pair is whole
 * again, able to survive the primary's failure.
 *
 * The fault model: servers fail by stopping, and may be restarted, empty
 * (nothing is written to disk); clients' requests and replies may be lost;
 * the link between the two servers loses nothing for long. The pair
 * survives the failure of either server, one at a time, and the restart
 * of either; once one has failed, the other serves alone until, for a
 * backup, it is back and brought up to date. Not survived:
 *
 * - a cut between primary and backup while both are alive: the primary
 *   serves alone while the backup keeps its old state, and should the
 *   primary then fail, or restart, the backup serves that old state and
 *   grants again locks the primary granted meanwhile (the primary brings
 *   the backup up to date once it answers again, which ends the danger);
 * - both servers failing before the backup was brought up to date: the
 *   backup waits, `joining`, and serves no one (a primary that restarts
 *   then starts the service afresh, empty);
 * - a primary that starts while its backup is unreachable serves alone,
 *   with what it has: nothing, if it restarted;
 * - after a takeover the pair is not made whole again: a restarted primary
 *   is deposed, and the backup serves alone until both are restarted
 *   (losing the locks).
 *
 * The view service (a later part of the lab) is the cure for these.
 *
 * Client sessions idle for {@linkcode LockServerOptions.sessionIdleMs} are
 * forgotten (see {@linkcode LockTable} for what that gives up).
 *
 * @module
 */
import { delay, retry } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { ArgumentsError, RpcError, type RpcErrorCode } from "../net/errors.ts";
import type { Random } from "../net/random.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import {
  LOCK_SERVICE,
  type LockForwardedOp,
  type LockForwardReply,
  type LockForwardRequest,
  type LockOpKind,
  type LockReply,
  type LockTransferRequest,
  parseLockForward,
  parseLockRequest,
  parseLockTransfer,
} from "./lock_protocol.ts";
import { LockTable } from "./lock_table.ts";
import { defaultClock, defaultId, defaultRandom } from "../net/env.ts";

/**
 * What a {@linkcode LockServer} is doing:
 *
 * - `primary`: serving clients, forwarding to the backup (or sending it
 *   its whole state; the answers wait meanwhile);
 * - `backup`: following the primary's forwards, serving no client yet;
 * - `joining`: a backup without the primary's state (it has just started,
 *   or a transfer of the state is under way): it serves no client, and
 *   does not take over;
 * - `alone`: serving clients without a backup (the primary whose backup
 *   does not answer, checking now and then whether it is back; or the
 *   backup once a client came to it);
 * - `deposed`: the primary whose backup serves alone, or holds another
 *   incarnation's state; it answers no client again;
 * - `stopped`: stopped by {@linkcode LockServer.stop}.
 *
 * @example
 * ```ts
 * import type { LockRole } from "@distkit/distkit/pb";
 *
 * const role: LockRole = "alone";
 * ```
 */
export type LockRole = "primary" | "backup" | "joining" | "alone" | "deposed" | "stopped";

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
  /** Time source for timeouts, backoff and session idleness. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /** Randomness for the backoff jitter. Default: seeded from `SEED` or at random (none inside `simulate`: pass `sim.random.fork()`). */
  random?: Random;
  /**
   * This start's incarnation id, different at every start (a restarted
   * server is a new incarnation to its backup). Default: a fresh UUID;
   * inside `simulate` pass `sim.newId()`.
   */
  incarnation?: string;
  /** Deadline of one forward attempt. Default 1,000 ms. */
  forwardTimeoutMs?: number;
  /**
   * Attempts of a forward before the primary takes the backup to have
   * stopped and serves alone. Default 3.
   */
  forwardAttempts?: number;
  /** Most operations in one forward, and most entries in one page of a state transfer. Default 1,024. */
  maxBatchOps?: number;
  /**
   * How often the primary, while it serves alone, asks whether the backup
   * answers again; and how long it stays idle before an empty forward,
   * which finds a backup that restarted. Default 1,000 ms.
   */
  probeIntervalMs?: number;
  /**
   * A client session idle for this long is forgotten (see
   * {@linkcode LockTableOptions.sessionIdleMs}). Default 600,000 ms.
   */
  sessionIdleMs?: number;
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
  /** This run of the server's random id. */
  incarnation: string;
  /** What it is doing. */
  role: LockRole;
  /**
   * On the primary: whether the backup has its state (no transfer due or
   * under way), so that the pair survives the primary's failure. False on
   * any other server.
   */
  backupReady: boolean;
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
  /** Whole-state transfers completed: sent (on the primary) or taken (on the backup). */
  transfers: number;
  /** Retried requests answered from the session table. */
  retries: number;
}

/**
 * How a forward or a transfer page ended: applied; refused (or failed for
 * good); the backup lacks the state it follows on; or never answered.
 */
type ForwardOutcome = "ok" | "refused" | "behind" | "dead";

/** A transfer under way on a backup: its pages so far, in a table of their own. */
interface Staging {
  incarnation: string;
  batch: number;
  nextPage: number;
  table: LockTable;
}

/**
 * One server of the lock service. It registers the `Lock` service on the
 * RPC server it is given: `Lock.Lock` and `Lock.Unlock` for clerks,
 * `Lock.Forward` and `Lock.Transfer` for the primary, `Lock.Status` for
 * monitoring.
 *
 * @example The primary forwards before it answers
 * ```ts
 * import { LockServer } from "@distkit/distkit/pb";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net, random, newId }) => {
 *   const servers = ["p", "b"].map((id) => {
 *     const server = new RpcServer();
 *     net.addServer(id, server);
 *     const transport = net.transportFor(id);
 *     return new LockServer({
 *       id, primary: "p", backup: "b", transport, server,
 *       clock, random: random.fork(), incarnation: newId(),
 *     });
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
  /**
   * Drawn afresh at each start (`options.incarnation`, else a fresh UUID):
   * not from `random`, which two processes started with one `SEED` share.
   */
  readonly #incarnation: string;
  readonly #server: RpcServer;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #forwardTimeoutMs: number;
  readonly #forwardAttempts: number;
  readonly #maxBatchOps: number;
  readonly #probeIntervalMs: number;
  readonly #sessionIdleMs: number;
  #table: LockTable;
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
  /** The primary: the number of the last batch (forward or transfer) sent. */
  #batch = 0;
  /** The primary: whether the backup must be sent the whole state before any forward. */
  #needTransfer: boolean;
  /** The backup: the primary incarnation whose state it has, once it has one. */
  #following: string | undefined;
  /** The backup: the number of the last batch (forward or transfer) it applied. */
  #lastBatch = 0;
  /** The backup: the transfer it is receiving. */
  #staging: Staging | undefined;
  #forwarded = 0;
  #installed = 0;
  #transfers = 0;
  #retries = 0;
  /**
   * Ends the replication loop's idle wait: set by the loop in the same
   * step as it finds the outbox empty, so an operation queued at any
   * moment is either seen by the loop or wakes it, and is never stranded.
   */
  #wake: (() => void) | undefined;
  /** The primary's replication loop, for {@linkcode LockServer.stop} to wait on. */
  readonly #replicating: Promise<void> = Promise.resolve();
  /** Fires at stop, ending the call in flight, its retries and the probe's wait. */
  readonly #stopping = new AbortController();

  /**
   * Creates the server and registers the `Lock` service on `options.server`.
   * The primary starts at once to send the backup its (empty) state.
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
    this.#probeIntervalMs = positive(options.probeIntervalMs ?? 1000, "probeIntervalMs");
    this.#sessionIdleMs = options.sessionIdleMs ?? 600_000;
    this.#id = id;
    this.#primary = primary;
    this.#server = options.server;
    this.#clock = options.clock ?? defaultClock("LockServer");
    this.#random = options.random ?? defaultRandom("LockServer");
    this.#incarnation = options.incarnation ?? defaultId("LockServer", "incarnation");
    this.#table = this.#newTable();
    this.#role = id === primary ? "primary" : "joining";
    this.#needTransfer = id === primary;
    this.#toBackup = id === primary ? options.transport.connect(backup) : undefined;
    options.server.addService(LOCK_SERVICE, {
      Lock: (args: unknown) => this.#serve("lock", args),
      Unlock: (args: unknown) => this.#serve("unlock", args),
      Forward: (args: unknown) => this.#receiveForward(args),
      Transfer: (args: unknown) => this.#receiveTransfer(args),
      Status: () => this.status(),
    });
    if (id === primary) this.#replicating = this.#replicate();
  }

  /** The server's name. */
  get id(): string {
    return this.#id;
  }

  /** This run of the server's random id, carried in the primary's forwards. */
  get incarnation(): string {
    return this.#incarnation;
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
      incarnation: this.#incarnation,
      role: this.#role,
      backupReady: this.#role === "primary" && !this.#needTransfer,
      held: this.#table.size,
      sessions: this.#table.sessions,
      applied: this.#applied,
      forwarded: this.#forwarded,
      installed: this.#installed,
      transfers: this.#transfers,
      retries: this.#retries,
    };
  }

  /**
   * Stops for good, like a crash: the `Lock` service is removed (callers
   * get `UnknownServiceError`), answers not yet given say `not-primary`,
   * and nothing more is sent (a forward already sent may still arrive).
   * Resolves once the replication loop has ended.
   */
  async stop(): Promise<void> {
    if (this.#role !== "stopped") {
      this.#role = "stopped";
      this.#server.removeService(LOCK_SERVICE);
      this.#outbox = [];
      this.#staging = undefined;
      this.#settleAll(false);
      this.#stopping.abort(new Error(`lock server ${this.#id} stopped`));
      this.#wake?.();
    }
    await this.#replicating;
  }

  async #serve(kind: LockOpKind, args: unknown): Promise<LockReply> {
    const op = { op: kind, ...parseLockRequest(args) };
    // A client only comes to the backup when it could not reach the
    // primary, which (the fault model) has therefore stopped. A joining
    // backup lacks the state, so it must not take over.
    if (this.#role === "backup") this.#role = "alone";
    if (this.#role !== "primary" && this.#role !== "alone") return this.#notPrimary();
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
          this.#wake?.();
        } else this.#safe = this.#applied;
    }
    // Every answer waits until all this server has run so far is on the
    // backup: a retry's first answer may still be on its way there, and an
    // answer computed from an operation the backup lacks could contradict
    // what the backup says once it serves alone.
    const safe = await this.#whenSafe(this.#applied);
    return safe ? { status: "ok", result: outcome.result } : this.#notPrimary();
  }

  /** Why this server takes no forward, or undefined when it may take one from `incarnation`. */
  #refusal(from: string, incarnation: string): LockForwardReply | undefined {
    if (from !== this.#primary) {
      throw new ArgumentsError(
        `forwards come from the primary "${this.#primary}", not "${from}"; check ` +
          `both servers' primary and backup names`,
      );
    }
    if (this.#role !== "backup" && this.#role !== "joining") {
      return {
        status: "refused",
        reason: `${this.#id} is ${this.#role}, not a backup: it ${
          this.#role === "alone" ? "serves clients itself" : "takes no forwards"
        }`,
      };
    }
    if (this.#following !== undefined && incarnation !== this.#following) {
      // Names are addresses: a new incarnation means the one followed is
      // gone, and with it nothing but what this backup holds.
      return {
        status: "refused",
        reason: `${this.#id} holds the state of another run of the primary (${this.#following}, ` +
          `not ${incarnation}): the primary restarted and lost its state; the backup serves`,
      };
    }
    return undefined;
  }

  #receiveForward(args: unknown): LockForwardReply {
    const forward = parseLockForward(args);
    const refusal = this.#refusal(forward.from, forward.incarnation);
    if (refusal) return refusal;
    if (this.#role === "joining") {
      return { status: "behind", reason: `${this.#id} does not have the primary's state yet` };
    }
    // Batches come one at a time: an old number is a retry of one applied already.
    if (forward.batch <= this.#lastBatch) return { status: "ok" };
    if (forward.batch !== this.#lastBatch + 1) {
      return {
        status: "behind",
        reason: `batch ${forward.batch} follows batch ${this.#lastBatch}: one is missing`,
      };
    }
    for (const op of forward.ops) this.#table.install(op);
    this.#lastBatch = forward.batch;
    this.#installed += forward.ops.length;
    return { status: "ok" };
  }

  #receiveTransfer(args: unknown): LockForwardReply {
    const page = parseLockTransfer(args);
    const refusal = this.#refusal(page.from, page.incarnation);
    if (refusal) return refusal;
    const { incarnation, batch } = page;
    // A retry of the last page of a transfer taken already, or older.
    if (incarnation === this.#following && batch <= this.#lastBatch) return { status: "ok" };
    let staging = this.#staging;
    const same = staging?.incarnation === incarnation && staging.batch === batch;
    if (page.page === 0 && !same) {
      if (staging?.incarnation === incarnation && batch < staging.batch) {
        return { status: "behind", reason: `transfer ${batch} was overtaken by ${staging.batch}` };
      }
      // From the first page on, this server's own state is old (the
      // primary sends it only to a backup behind): it must not take over.
      staging = { incarnation, batch, nextPage: 0, table: this.#newTable() };
      this.#staging = staging;
      this.#role = "joining";
    }
    if (staging === undefined || staging.incarnation !== incarnation || staging.batch !== batch) {
      return {
        status: "behind",
        reason: `${this.#id} has no transfer ${batch} under way (it restarted?); start again`,
      };
    }
    if (page.page < staging.nextPage) return { status: "ok" }; // a retry
    if (page.page > staging.nextPage) {
      return {
        status: "behind",
        reason: `page ${page.page} of transfer ${batch} follows page ${staging.nextPage - 1}`,
      };
    }
    staging.table.load(page);
    staging.nextPage++;
    if (page.last) {
      this.#table = staging.table;
      this.#staging = undefined;
      this.#following = incarnation;
      this.#lastBatch = batch;
      this.#transfers++;
      this.#role = "backup";
    }
    return { status: "ok" };
  }

  #notPrimary(): LockReply {
    const why = {
      stopped: "has stopped",
      deposed: "was deposed: the other server serves clients",
      joining: "is a backup that does not have the primary's state yet",
      backup: "is the backup",
      primary: "is the primary",
      alone: "serves alone",
    }[this.#role];
    return { status: "not-primary", reason: `${this.#id} ${why}; ask the other server` };
  }

  #whenSafe(index: number): Promise<boolean> {
    if (this.#role === "alone" || this.#safe >= index) return Promise.resolve(true);
    if (this.#role !== "primary") return Promise.resolve(false);
    return new Promise((settle) => this.#waiters.push({ index, settle }));
  }

  #advance(safe: number): void {
    if (safe < this.#safe || safe > this.#applied) {
      throw new Error(
        `invariant: the safe point moves from ${this.#safe} to ${safe}, ${this.#applied} applied`,
      );
    }
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

  #newTable(): LockTable {
    return new LockTable({ clock: this.#clock, sessionIdleMs: this.#sessionIdleMs });
  }

  /**
   * The primary's one loop, for its whole life: brings the backup up to
   * date when it must, sends the outbox in batches one at a time (an empty
   * one when idle for a probe interval, so a backup that restarted is found
   * and brought up to date without waiting for a client), and while alone
   * checks now and then for the backup. Ends once the server is deposed
   * or stopped.
   */
  async #replicate(): Promise<void> {
    // "behind" answers since the last forward taken: a backup that restarted
    // again during a transfer is sent it again, a few times; past that (a
    // backup that never keeps up) it counts as out of reach, checked now
    // and then, rather than held in a loop with every client waiting.
    let restarts = 0;
    while (true) {
      if (this.#role === "alone") {
        if (!(await this.#backupAnswers())) continue;
        if (this.#role !== "alone") return;
        // From here every answer waits again, for the transfer of all
        // answered so far and the forwards after it.
        this.#role = "primary";
        this.#needTransfer = true;
        restarts = 0;
      }
      if (this.#role !== "primary") return;
      if (this.#needTransfer) {
        const { outcome, index } = await this.#transfer();
        if (this.#role !== "primary") return; // stopped meanwhile
        if (outcome === "ok") {
          this.#needTransfer = false;
          this.#transfers++;
          this.#advance(index);
        } else if (outcome === "behind" && ++restarts <= this.#forwardAttempts) {
          // The backup lost the pages so far (it restarted again): start over.
        } else this.#without(outcome === "refused" ? "refused" : "dead");
        continue;
      }
      if (this.#outbox.length === 0 && !(await this.#idle())) continue;
      if (this.#role !== "primary") return;
      const ops = this.#outbox.splice(0, this.#maxBatchOps);
      const last = this.#applied - this.#outbox.length;
      if (last !== this.#safe + ops.length) {
        throw new Error(
          `invariant: a batch ends at operation ${last}, the safe point is ${this.#safe}`,
        );
      }
      const outcome = await this.#send(
        "Forward",
        {
          from: this.#id,
          incarnation: this.#incarnation,
          batch: ++this.#batch,
          ops,
        } satisfies LockForwardRequest,
      );
      if (this.#role !== "primary") return; // stopped meanwhile
      if (outcome === "ok") {
        this.#forwarded += ops.length;
        this.#advance(last);
        restarts = 0;
      } else if (outcome === "behind" && ++restarts <= this.#forwardAttempts) {
        // The backup restarted: it gets everything, these operations too.
        this.#needTransfer = true;
      } else this.#without(outcome === "refused" ? "refused" : "dead");
    }
  }

  /**
   * Waits for an operation to forward or a probe interval, whichever comes
   * first: true for the interval (time for an empty forward), false when
   * woken. The wake-up is in place before this returns its promise, in the
   * step that found the outbox empty.
   */
  #idle(): Promise<boolean> {
    return new Promise((settle) => {
      const timer = this.#clock.setTimer(this.#probeIntervalMs, () => {
        this.#wake = undefined;
        settle(this.#outbox.length === 0);
      });
      this.#wake = () => {
        timer.cancel();
        this.#wake = undefined;
        settle(false);
      };
    });
  }

  /** The backup refused (deposed: answer no one), or does not answer (alone: answer all). */
  #without(outcome: "refused" | "dead"): void {
    this.#outbox = [];
    this.#needTransfer = true;
    if (outcome === "refused") {
      this.#role = "deposed";
      this.#settleAll(false);
    } else {
      this.#role = "alone";
      this.#advance(this.#applied);
    }
  }

  /**
   * Sends the backup the whole state, in pages. The state is taken at
   * once, with every operation run so far (the outbox's too, which is
   * emptied); returns the number of the last operation it holds.
   */
  async #transfer(): Promise<{ outcome: ForwardOutcome; index: number }> {
    const { locks, sessions } = this.#table.snapshot();
    const index = this.#applied;
    this.#outbox = [];
    const batch = ++this.#batch;
    const size = this.#maxBatchOps;
    const pages = Math.max(1, Math.ceil((locks.length + sessions.length) / size));
    for (let page = 0; page < pages; page++) {
      // Locks fill the first pages, sessions the rest.
      const from = page * size;
      const to = from + size;
      const outcome = await this.#send(
        "Transfer",
        {
          from: this.#id,
          incarnation: this.#incarnation,
          batch,
          page,
          last: page === pages - 1,
          locks: locks.slice(from, to),
          sessions: sessions.slice(
            Math.max(0, from - locks.length),
            Math.max(0, to - locks.length),
          ),
        } satisfies LockTransferRequest,
      );
      if (outcome !== "ok" || this.#role !== "primary") return { outcome, index };
    }
    return { outcome: "ok", index };
  }

  /**
   * Waits a probe interval, then asks the backup for its status once:
   * whether it answered. Cheap, so the primary keeps answering alone while
   * the backup stays away.
   */
  async #backupAnswers(): Promise<boolean> {
    try {
      await delay(this.#probeIntervalMs, { clock: this.#clock, signal: this.#stopping.signal });
      await this.#toBackup!.call(`${LOCK_SERVICE}.Status`, undefined, {
        timeoutMs: this.#forwardTimeoutMs,
        signal: this.#stopping.signal,
      });
      return true;
    } catch {
      return false;
    }
  }

  async #send(
    method: "Forward" | "Transfer",
    args: LockForwardRequest | LockTransferRequest,
  ): Promise<ForwardOutcome> {
    try {
      const reply = await retry(
        () =>
          this.#toBackup!.call<LockForwardReply>(`${LOCK_SERVICE}.${method}`, args, {
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
      if (reply?.status === "behind") return "behind";
      // Anything else but a plain ok (a refusal, a reply of another
      // version) means the backup did not take the batch, while it may
      // serve clients: answering them alone could diverge from it.
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
