/**
 * `PrimaryBackupServer`: one server of the primary/backup key/value service (after
 * 6.824's pbservice). The view service says which server is the primary
 * and which the backup; the primary serves clients and keeps the backup in
 * step, and the backup takes over when the primary dies.
 *
 * - Every ping interval the server pings the view service, as primary with
 *   the number of the view it acknowledges, and learns the current view.
 * - A primary whose view has a backup copies its whole state (data and
 *   deduplication table) to it in pages, and only then acknowledges the
 *   view (the view service waits for that before any further change).
 * - It answers clients only once the view service has recorded that
 *   acknowledgement (the ping that carried it came back): had it answered
 *   in a view it then died in unacknowledged, the view service could never
 *   leave that view, and the up-to-date backup would never be promoted.
 * - A server serves and acknowledges a view in which it is primary only
 *   when it holds the state: it was the primary of the previous view, or
 *   that view's backup brought up to date, or the view is the very first
 *   (view 1, made by its own first ping). A restarted server holds nothing
 *   and would lose acknowledged writes by serving: it waits instead.
 * - The primary serves Get, Put and Append one at a time, forwarding each
 *   (Gets too) to the backup, which applies it before the primary does and
 *   replies. The backup accepts a forward only from the primary of the view
 *   it is in, so a primary cut off from the view service cannot answer once
 *   its backup has moved on: no stale reads, no lost writes.
 * - Writes carry a client session id and number: the deduplication table,
 *   part of the state forwarded and copied, applies each once across
 *   retries and failovers.
 *
 * The view service is a single point of failure, as in the lab: a view
 * service that restarts numbers its views from 1 again, and servers that
 * knew later views ignore it (restart them too). Where the service stalls
 * rather than risk the data (restart the servers, or the view service, to
 * go on): a primary that restarts in the moment between being made the
 * first primary and its acknowledgement being recorded; a backup that
 * pings the view service but cannot be reached by the primary (the primary
 * cannot bring it up to date, so it never acknowledges that view). And
 * where it stalls for good, as the course's design does: the view service
 * writes the backup off (cut off from it, paused, or its pings lost) just
 * before the primary crashes, and makes a view led by that primary, which
 * comes back empty and can never acknowledge it, while the old backup,
 * which holds every write, is never promoted (two failures at once, as
 * the view service sees them; tests/pb_random_test.ts injects one at a
 * time). The deduplication table keeps one entry per client session, as
 * the Raft key/value service does; it travels with every state transfer.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock, Timer } from "../net/clock.ts";
import { ArgumentsError, RpcError } from "../net/errors.ts";
import type { Transport } from "../net/transport.ts";
import {
  parsePbGet,
  parsePbWrite,
  PB_KV_LIMITS,
  PB_KV_SERVICE,
  type PbGetReply,
  type PbKvLimits,
  type PbKvReply,
} from "./kv_protocol.ts";
import {
  type BackupReply,
  type FromPrimary,
  parseBackupReply,
  parseForward,
  parseTransfer,
} from "./kv_replication.ts";
import { PageAssembler, PbStore } from "./kv_store.ts";
import { PING_INTERVAL_MS, type View, ViewClerk } from "./view.ts";
import { defaultClock } from "../net/env.ts";

/**
 * Options of a {@linkcode PrimaryBackupServer}.
 *
 * @example
 * ```ts ignore
 * import type { PrimaryBackupServerOptions } from "@distkit/distkit/pb";
 * import { TcpTransport } from "@distkit/distkit/net";
 *
 * const options: PrimaryBackupServerOptions = {
 *   transport: new TcpTransport({ peers: { "127.0.0.1:7100": "127.0.0.1:7100" } }),
 *   viewService: "127.0.0.1:7100",
 * };
 * ```
 */
export interface PrimaryBackupServerOptions {
  /** How to reach the view service and the other servers, by name. */
  transport: Transport;
  /** The view service's name for `transport`. */
  viewService: string;
  /** Time source for pings and retries. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /** How often to ping the view service; the view service's. Default {@linkcode PING_INTERVAL_MS}. */
  pingIntervalMs?: number;
  /** Deadline of one call to the view service or the backup. Default 1,000 ms. */
  callTimeoutMs?: number;
  /**
   * How long the primary keeps trying to reach its backup for one request
   * or one page before it gives up (and, when a write may have reached the
   * backup, copies its whole state to the backup again before serving
   * another). Default 10 ping intervals.
   */
  backupRetryMs?: number;
  /** Largest page of a state transfer, in bytes of keys and values (a larger entry goes alone). Default 1 MiB. */
  pageBytes?: number;
  /** Key and value limits; every server and clerk of a service should use the same. */
  limits?: Partial<PbKvLimits>;
}

/**
 * A server's part in its current view.
 *
 * @example
 * ```ts
 * import type { PrimaryBackupRole } from "@distkit/distkit/pb";
 *
 * const role: PrimaryBackupRole = "backup";
 * ```
 */
export type PrimaryBackupRole = "primary" | "backup" | "idle";

/**
 * What a {@linkcode PrimaryBackupServer} knows and does, for monitoring and tests.
 *
 * @example
 * ```ts
 * import type { PrimaryBackupStatus } from "@distkit/distkit/pb";
 *
 * function line(s: PrimaryBackupStatus): string {
 *   return `view ${s.view.num}: ${s.role}${s.ready ? "" : " (not ready)"}, ${s.keys} keys`;
 * }
 * ```
 */
export interface PrimaryBackupStatus {
  /** The latest view the server learned. */
  view: View;
  /** Its part in that view. */
  role: PrimaryBackupRole;
  /**
   * A primary: it holds the view's state and its backup, if any, is up to
   * date, so it serves clients. A backup: it holds the primary's state. An
   * idle server: false.
   */
  ready: boolean;
  /** The latest view this server acknowledged as its primary (0: none). */
  acknowledged: number;
  /** Keys in its store. */
  keys: number;
}

/** A transfer being received, page by page. */
interface Staging {
  transfer: number;
  /** The index of the page expected next. */
  next: number;
  pages: PageAssembler;
}

/** The reply of a server that does not serve clients now. */
type WrongServer = { status: "wrong-server"; reason: string };

/** How a request to the backup ended: `refused` means it surely did not apply there. */
type BackupOutcome = "ok" | "refused" | "unsure";

const NO_VIEW: View = Object.freeze({ num: 0, primary: "", backup: "" });

/**
 * One server of the primary/backup key/value service. Register
 * {@linkcode PrimaryBackupServer.methods} on an `RpcServer` under
 * {@linkcode PB_KV_SERVICE}, reachable by the name `me`; the server pings
 * the view service from its construction until {@linkcode PrimaryBackupServer.close}.
 *
 * @example
 * ```ts
 * import { PB_KV_SERVICE, PrimaryBackupClerk, PrimaryBackupServer, ViewServer } from "@distkit/distkit/pb";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, net }) => {
 *   const vs = new ViewServer({ clock });
 *   const vsRpc = new RpcServer();
 *   vsRpc.addService("View", vs.methods());
 *   net.addServer("vs", vsRpc);
 *   const rpc = new RpcServer();
 *   const kv = new PrimaryBackupServer("s1", { transport: net.transportFor("s1"), viewService: "vs", clock });
 *   rpc.addService(PB_KV_SERVICE, kv.methods());
 *   net.addServer("s1", rpc);
 *   const clerk = new PrimaryBackupClerk(net.transportFor("c1"), { viewService: "vs", clock, id: "c1" });
 *   await clerk.put("x", "1");
 *   assert.equal(await clerk.get("x"), "1");
 *   kv.close();
 *   vs.close();
 * }, { seed: 1 });
 * ```
 */
export class PrimaryBackupServer {
  readonly #me: string;
  readonly #transport: Transport;
  readonly #vs: ViewClerk;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #callTimeoutMs: number;
  readonly #backupRetryMs: number;
  readonly #pageBytes: number;
  readonly #limits: PbKvLimits;
  readonly #stop = new AbortController();
  #timer: Timer | undefined;
  #closed = false;

  /** The latest view learned from the view service. */
  #view: View = NO_VIEW;
  /**
   * Whether the view service had no view when this server first asked: only
   * then may it lead view 1 with an empty store (a restarted server that
   * finds itself primary of view 1 lost what its earlier self acknowledged).
   * Undefined until known.
   */
  #first: boolean | undefined;
  /** The view whose state the store holds (0: none, as after a start). */
  #stateNum = 0;
  /** As primary, the view in which it brought its backup up to date. */
  #backupSynced = 0;
  /** The number sent in the latest ping. */
  #pinged = 0;
  /** The latest view acknowledged as its primary. */
  #acknowledged = 0;
  #store = new PbStore();
  /** Client requests and transfers, as primary, one at a time. */
  #lock: Promise<unknown> = Promise.resolve();
  #syncing = false;
  /** An acknowledging ping is under way outside the interval. */
  #acking = false;
  /** Pings under way. */
  #pinging = 0;
  /** Transfers started as primary: each has its number, so a backup ignores stragglers. */
  #transfers = 0;
  /** As primary: the transfer that last brought the backup up to date. */
  #syncedTransfer = 0;
  /** As backup: the transfer being received. */
  #staging: Staging | undefined;
  /** As backup: the latest transfer completed, and in which view. */
  #received = { view: 0, transfer: 0 };

  /**
   * Creates the server, with an empty store, and starts pinging.
   *
   * @param me This server's name, as the view service, the clerks and the
   * other servers reach it (over TCP, its `host:port`).
   * @throws {RangeError} for an empty name or a limit that is not positive.
   */
  constructor(me: string, options: PrimaryBackupServerOptions) {
    if (me === "") throw new RangeError("a server's name must not be empty");
    this.#me = me;
    this.#transport = options.transport;
    this.#clock = options.clock ?? defaultClock("PrimaryBackupServer");
    this.#intervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#callTimeoutMs = options.callTimeoutMs ?? 1000;
    this.#backupRetryMs = options.backupRetryMs ?? 10 * this.#intervalMs;
    this.#pageBytes = options.pageBytes ?? 1024 * 1024;
    this.#limits = { ...PB_KV_LIMITS, ...options.limits };
    const positive = {
      pingIntervalMs: this.#intervalMs,
      callTimeoutMs: this.#callTimeoutMs,
      backupRetryMs: this.#backupRetryMs,
      pageBytes: this.#pageBytes,
      maxKeyBytes: this.#limits.maxKeyBytes,
      maxValueBytes: this.#limits.maxValueBytes,
    };
    for (const [name, value] of Object.entries(positive)) {
      if (!(value > 0)) throw new RangeError(`${name} must be above 0, got ${value}`);
    }
    this.#vs = new ViewClerk(this.#transport.connect(options.viewService), {
      timeoutMs: this.#callTimeoutMs,
    });
    this.#schedule(0);
  }

  /** This server's name. */
  get me(): string {
    return this.#me;
  }

  /** What the server knows and does. */
  status(): PrimaryBackupStatus {
    const view = this.#view;
    const role = view.primary === this.#me
      ? "primary"
      : view.backup === this.#me
      ? "backup"
      : "idle";
    const ready = role === "primary"
      ? this.#serving()
      : role === "backup" && this.#stateNum === view.num;
    return { view, role, ready, acknowledged: this.#acknowledged, keys: this.#store.size };
  }

  /**
   * A copy of the store's data, whatever the server's role: to compare
   * primary and backup, and for inspection. Clients read through a clerk.
   */
  data(): Map<string, string> {
    return this.#store.copy();
  }

  /**
   * The RPC methods, to register under {@linkcode PB_KV_SERVICE}: `Get` and
   * `Write` for clerks, `Forward` and `Transfer` for the primary.
   */
  methods(): Record<"Get" | "Write" | "Forward" | "Transfer", (args: unknown) => unknown> {
    return {
      Get: (args) => this.#get(args),
      Write: (args) => this.#write(args),
      Forward: (args) => this.#forward(args),
      Transfer: (args) => this.#transfer(args),
    };
  }

  /**
   * Stops pinging and serving; calls to the backup in flight are abandoned.
   * The store is kept only in memory: a server started again starts empty.
   */
  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#stop.abort();
  }

  // ---- pinging the view service ----

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimer(ms, () => {
      // Pings go out every interval, whatever became of the last one: a
      // slow reply must not make the view service think this server died.
      // Except before it knows a view: a ping of 0 overtaken by a later one
      // would look to the view service like a restart.
      this.#schedule(this.#intervalMs);
      if (this.#view.num === 0 && this.#pinging > 0) return;
      // An invariant broken here is a bug: let it surface, unhandled.
      void this.#ping();
    });
  }

  async #ping(): Promise<void> {
    this.#pinging++;
    try {
      if (this.#first === undefined) {
        const first = (await this.#vs.get()).num === 0;
        this.#first ??= first;
      }
      const num = this.#pingNumber();
      const acking = this.#ready();
      this.#pinged = num;
      const view = await this.#vs.ping(this.#me, num);
      if (this.#closed) return;
      if (acking) this.#acknowledged = Math.max(this.#acknowledged, num);
      // A reply that a later one overtook carries an older view: ignored.
      this.#adopt(view);
      this.#ackSoon();
    } catch (err) {
      // The view service is unreachable (or answered nonsense): keep
      // serving in the view we know, and ping again next interval.
      if (!(err instanceof RpcError || err instanceof TypeError)) throw err;
    } finally {
      this.#pinging--;
    }
    if (!this.#closed) this.#startSync();
  }

  /**
   * What to ping with: a primary, the view it acknowledges (this one once
   * it serves it, else the number it pinged with before); anyone else, the
   * view it knows (0 after a start, which tells the view service a server of
   * its view restarted).
   */
  #pingNumber(): number {
    const view = this.#view;
    if (view.primary !== this.#me) return view.num;
    return this.#ready() ? view.num : this.#pinged;
  }

  #adopt(view: View): void {
    const current = this.#view;
    // An overtaken reply, or a restarted view service (see the module's doc).
    if (view.num < current.num) return;
    if (view.num === current.num) {
      invariant(
        view.primary === current.primary && view.backup === current.backup,
        `view ${view.num} changed from ${JSON.stringify(current)} to ${JSON.stringify(view)}`,
      );
      return;
    }
    this.#view = view;
    this.#staging = undefined;
    // It leads with the state of the previous view (as its primary, or as
    // its backup brought up to date), or in the very first view with none.
    const mayLead = view.num === 1 ? this.#first === true : this.#stateNum === view.num - 1;
    if (view.primary === this.#me && mayLead) this.#stateNum = view.num;
    this.#checkInvariants();
  }

  // ---- as primary ----

  /** Whether it may acknowledge its view: primary, holding the view's state, its backup up to date. */
  #ready(): boolean {
    const view = this.#view;
    return !this.#closed && view.primary === this.#me && this.#stateNum === view.num &&
      (view.backup === "" || this.#backupSynced === view.num);
  }

  /**
   * Whether it serves clients: ready, and the view service has recorded its
   * acknowledgement. A primary that answered clients in a view it had not
   * acknowledged, and then died, would leave the view service stuck in that
   * view for good, its up-to-date backup never promoted.
   */
  #serving(): boolean {
    return this.#ready() && this.#acknowledged === this.#view.num;
  }

  /** Pings at once when ready to acknowledge, rather than at the next interval. */
  #ackSoon(): void {
    if (this.#acking || !this.#ready() || this.#acknowledged >= this.#view.num) return;
    this.#acking = true;
    void this.#ping().finally(() => this.#acking = false);
  }

  /** Why it does not serve clients now, or undefined when it does. */
  #notServing(): WrongServer | undefined {
    if (this.#serving()) return undefined;
    const view = this.#view;
    let reason: string;
    if (this.#closed) reason = `${this.#me} is shutting down`;
    else if (view.primary !== this.#me) {
      reason = `${this.#me} is not the primary of view ${view.num} (${view.primary || "none"} is)`;
    } else if (this.#stateNum !== view.num) {
      reason = `${this.#me} is the primary of view ${view.num} but lost its state in a restart; ` +
        `it waits rather than serve an empty store`;
    } else if (!this.#ready()) reason = `${this.#me} is bringing backup ${view.backup} up to date`;
    else reason = `${this.#me} waits for the view service to record that it leads view ${view.num}`;
    return { status: "wrong-server", reason };
  }

  /** Runs `fn` once every request and transfer queued before it has finished. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  #get(args: unknown): PbGetReply | Promise<PbGetReply> {
    const key = parsePbGet(args, this.#limits);
    return this.#notServing() ?? this.#exclusive(async (): Promise<PbGetReply> => {
      const refusal = this.#notServing();
      if (refusal) return refusal;
      const view = this.#view;
      const value = this.#store.get(key);
      // Only the backup can tell this server it is no longer the primary.
      if (view.backup !== "") {
        const outcome = await this.#toBackup(view, "Forward", {
          get: key,
          transfer: this.#syncedTransfer,
        });
        if (outcome !== "ok") return this.#unconfirmed(view);
      }
      return { status: "ok", value };
    });
  }

  #write(args: unknown): PbKvReply | Promise<PbKvReply> {
    const w = parsePbWrite(args, this.#limits);
    return this.#notServing() ?? this.#exclusive(async (): Promise<PbKvReply> => {
      const refusal = this.#notServing();
      if (refusal) return refusal;
      const view = this.#view;
      // A transfer may replace the store while the forward is out: what was checked is applied.
      const store = this.#store;
      const verdict = store.check(w);
      switch (verdict.kind) {
        case "done":
          return { status: "ok" };
        case "stale":
          throw new ArgumentsError(
            `write ${w.seq} of session ${w.client} is older than one applied since: another ` +
              `clerk uses this id; give every clerk its own id`,
          );
        case "conflict":
          throw new ArgumentsError(
            `write ${w.seq} of session ${w.client} was already a different write: two clerks ` +
              `use one id; give every clerk its own id`,
          );
      }
      if (w.op === "append") {
        const size = store.sizeAfterAppend(w.key, w.value);
        if (size > this.#limits.maxValueBytes) {
          throw new ArgumentsError(
            `append would make the value of ${JSON.stringify(w.key.slice(0, 64))} ${size} ` +
              `bytes; the limit is ${this.#limits.maxValueBytes}`,
          );
        }
      }
      if (view.backup !== "") {
        const outcome = await this.#toBackup(view, "Forward", {
          write: w,
          transfer: this.#syncedTransfer,
        });
        if (outcome === "unsure" && this.#view === view) {
          // It may have applied there and not here: the two may differ
          // until the backup gets the whole state again, before any other request.
          this.#backupSynced = 0;
        }
        if (outcome !== "ok") return this.#unconfirmed(view);
      }
      store.apply(w);
      return { status: "ok" };
    });
  }

  #unconfirmed(view: View): WrongServer {
    return {
      status: "wrong-server",
      reason: `backup ${view.backup} did not confirm that ${this.#me} is still the primary of ` +
        `view ${view.num}`,
    };
  }

  /** Starts bringing the backup up to date, when it is due and not under way. */
  #startSync(): void {
    const view = this.#view;
    if (
      this.#syncing || this.#closed || view.primary !== this.#me || view.backup === "" ||
      this.#stateNum !== view.num || this.#backupSynced === view.num
    ) return;
    this.#syncing = true;
    this.#exclusive(() => this.#sync(view)).finally(() => this.#syncing = false);
  }

  /** Copies the whole state to the backup of `view`, page by page; no request runs meanwhile. */
  async #sync(view: View): Promise<void> {
    if (this.#view !== view || this.#stateNum !== view.num) return;
    const transfer = ++this.#transfers;
    const pages = this.#store.pages(this.#pageBytes);
    let page = pages.next();
    for (let index = 0; !page.done; index++) {
      const next = pages.next();
      const outcome = await this.#toBackup(view, "Transfer", {
        transfer,
        index,
        last: next.done === true,
        ...page.value,
      });
      // The next tick starts over, if still due.
      if (outcome !== "ok") return;
      page = next;
    }
    this.#backupSynced = view.num;
    this.#syncedTransfer = transfer;
    this.#checkInvariants();
    this.#ackSoon();
  }

  /**
   * Sends a request to the backup of `view` until it answers for sure,
   * this server's view changes, or `backupRetryMs` passes: `unsure` then
   * when an attempt may have reached the backup.
   */
  async #toBackup(
    view: View,
    method: "Forward" | "Transfer",
    args: Record<string, unknown>,
  ): Promise<BackupOutcome> {
    const start = this.#clock.now();
    const request = { ...args, view: view.num, primary: this.#me };
    let unsure = false;
    let wait = 5;
    while (true) {
      if (this.#closed || this.#view !== view) return unsure ? "unsure" : "refused";
      let reply: BackupReply | undefined;
      try {
        reply = parseBackupReply(
          await this.#transport.connect(view.backup).call(`${PB_KV_SERVICE}.${method}`, request, {
            timeoutMs: this.#callTimeoutMs,
            signal: this.#stop.signal,
          }),
        );
      } catch (err) {
        // Refused for good (a bad request, an unknown method): it did not apply.
        if (err instanceof RpcError && REFUSALS.has(err.code)) return unsure ? "unsure" : "refused";
        unsure = true;
      }
      if (reply?.status === "ok") return "ok";
      if (reply?.status === "rejected" && reply.view >= view.num) {
        // In a later view the backup no longer takes this server's requests;
        // in this one, it lacks the state.
        if (reply.view === view.num && reply.resync && this.#view === view) this.#backupSynced = 0;
        return unsure ? "unsure" : "refused";
      }
      // Lost, or the backup has not learned this view yet: again.
      if (this.#clock.now() - start >= this.#backupRetryMs) return unsure ? "unsure" : "refused";
      try {
        await delay(wait, { clock: this.#clock, signal: this.#stop.signal });
      } catch {
        return unsure ? "unsure" : "refused";
      }
      wait = Math.min(2 * wait, this.#intervalMs);
    }
  }

  // ---- as backup ----

  /** Why a request from `from` is refused, or undefined when it comes from this view's primary. */
  #refuse(from: FromPrimary): BackupReply | undefined {
    const view = this.#view;
    let reason: string | undefined;
    if (this.#closed) reason = `${this.#me} is shutting down`;
    else if (from.view !== view.num) {
      reason = `${this.#me} is in view ${view.num}, not ${from.view}`;
    } else if (view.backup !== this.#me || view.primary !== from.primary) {
      reason = `in view ${view.num}, ${this.#me} is not the backup of ${from.primary}`;
    }
    return reason === undefined
      ? undefined
      : { status: "rejected", view: view.num, resync: false, reason };
  }

  #forward(args: unknown): BackupReply {
    const f = parseForward(args, this.#limits);
    const refusal = this.#refuse(f);
    if (refusal) return refusal;
    const view = this.#view;
    if (this.#stateNum !== view.num) {
      return {
        status: "rejected",
        view: view.num,
        resync: true,
        reason: `${this.#me} does not hold the state of view ${view.num} (it restarted)`,
      };
    }
    if (f.transfer !== this.#received.transfer) {
      // Sent before the transfer this backup last received: a straggler.
      return {
        status: "rejected",
        view: view.num,
        resync: true,
        reason:
          `a forward of transfer ${f.transfer}, but ${this.#me} holds transfer ${this.#received.transfer}`,
      };
    }
    if (f.write !== undefined) {
      const verdict = this.#store.check(f.write);
      if (verdict.kind === "new") this.#store.apply(f.write);
      else if (verdict.kind !== "done") {
        return {
          status: "rejected",
          view: view.num,
          resync: true,
          reason: `${this.#me}'s deduplication table disagrees with the primary's`,
        };
      }
    }
    return { status: "ok" };
  }

  #transfer(args: unknown): BackupReply {
    const t = parseTransfer(args);
    const refusal = this.#refuse(t);
    if (refusal) return refusal;
    const rejected = (reason: string): BackupReply => ({
      status: "rejected",
      view: t.view,
      resync: false,
      reason,
    });
    const received = this.#received;
    if (received.view === t.view && t.transfer <= received.transfer) {
      // The last page again (its answer was lost), or a straggler.
      return t.transfer === received.transfer && t.last
        ? { status: "ok" }
        : rejected(`transfer ${t.transfer} is over`);
    }
    let staging = this.#staging;
    if (staging?.transfer === t.transfer && t.index === staging.next - 1) return { status: "ok" };
    if (t.index === 0 && (staging === undefined || t.transfer > staging.transfer)) {
      staging = this.#staging = { transfer: t.transfer, next: 0, pages: new PageAssembler() };
    }
    if (staging?.transfer !== t.transfer || t.index !== staging.next) {
      return rejected(
        `page ${t.index} of transfer ${t.transfer} is out of order; expected ` +
          (staging ? `page ${staging.next} of transfer ${staging.transfer}` : "a page 0"),
      );
    }
    staging.pages.add(t.data, t.sessions);
    if (t.last) {
      this.#store = staging.pages.finish();
      this.#stateNum = t.view;
      this.#received = { view: t.view, transfer: t.transfer };
      this.#staging = undefined;
      this.#checkInvariants();
    } else staging.next++;
    return { status: "ok" };
  }

  #checkInvariants(): void {
    const num = this.#view.num;
    invariant(this.#stateNum <= num, `holds the state of view ${this.#stateNum} in view ${num}`);
    invariant(
      this.#backupSynced <= num,
      `synced its backup in view ${this.#backupSynced} > ${num}`,
    );
    invariant(this.#acknowledged <= num, `acknowledged view ${this.#acknowledged} > ${num}`);
  }
}

/** Failures that say the backup did not run the request. */
const REFUSALS: ReadonlySet<string> = new Set(["bad_arguments", "unknown_method"]);

function invariant(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(
      `PrimaryBackupServer invariant broken: ${what}; this is a bug, please report it`,
    );
  }
}
