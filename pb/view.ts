/**
 * The view service of primary/backup replication: it watches servers ping,
 * and decides which is the primary and which the backup, in numbered views.
 *
 * The rules, after 6.824's viewservice:
 * - the first server to ping is the primary of view 1;
 * - a server is dead once it has missed `deadPings` pings; a member of the
 *   view that pings with view 0 after its view was acknowledged, or after
 *   it had pinged a view number, has restarted (lost its state): a dead or
 *   restarted primary is replaced by its backup, a dead or restarted backup
 *   by an idle server, and an idle server becomes the backup when there is
 *   none;
 * - the service never moves past a view until that view's primary has
 *   acknowledged it (pinged with its number), since that primary may still
 *   be bringing the backup up to date;
 * - only the backup (which holds the state) can be promoted: a server that
 *   was never a backup cannot become primary, nor can a primary that
 *   restarted before acknowledging its view; the service waits rather than
 *   lose the data.
 *
 * {@linkcode ViewService} is the decision logic alone (pings and ticks in,
 * views out; no I/O, no timers); {@linkcode ViewServer} serves it over RPC
 * with a ticker, and {@linkcode ViewClerk} calls it.
 *
 * @module
 */
import type { Clock, Timer } from "../net/clock.ts";
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import type { ClientEnd } from "../net/transport.ts";
import { defaultClock } from "../net/env.ts";

/**
 * A view: its number, its primary and its backup ("" for none).
 *
 * @example
 * ```ts
 * import type { View } from "@distkit/distkit/pb";
 *
 * const view: View = { num: 2, primary: "s1", backup: "s2" };
 * ```
 */
export interface View {
  /** The view's number; 0 before any server has pinged. */
  num: number;
  /** The primary's name, or "". */
  primary: string;
  /** The backup's name, or "". */
  backup: string;
}

/** How often servers ping, by default: 100 ms. */
export const PING_INTERVAL_MS = 100;

/** How many pings a server may miss before it is dead, by default: 5. */
export const DEAD_PINGS = 5;

/**
 * Options of {@linkcode ViewService} and {@linkcode ViewServer}.
 *
 * @example
 * ```ts
 * import type { ViewServiceOptions } from "@distkit/distkit/pb";
 *
 * const options: ViewServiceOptions = { pingIntervalMs: 100, deadPings: 5 };
 * ```
 */
export interface ViewServiceOptions {
  /** How often servers ping. Default {@linkcode PING_INTERVAL_MS}. */
  pingIntervalMs?: number;
  /** Missed pings after which a server is dead. Default {@linkcode DEAD_PINGS}. */
  deadPings?: number;
}

/** The longest server name a view server takes. */
const MAX_SERVER_NAME = 256;

/** The view before any server has pinged. */
const NO_VIEW: View = Object.freeze({ num: 0, primary: "", backup: "" });

/**
 * The view service's decisions: feed it pings and ticks with the time, read
 * the view. Deterministic, with no I/O or timers of its own.
 *
 * @example
 * ```ts
 * import { ViewService } from "./view.ts";
 * import assert from "node:assert/strict";
 *
 * const vs = new ViewService();
 * assert.deepEqual(vs.ping("s1", 0, 0), { num: 1, primary: "s1", backup: "" });
 * vs.ping("s1", 1, 100); // s1 acknowledges view 1
 * assert.deepEqual(vs.ping("s2", 0, 100), { num: 2, primary: "s1", backup: "s2" });
 * ```
 */
export class ViewService {
  readonly #deadAfterMs: number;
  #view: View = NO_VIEW;
  /** Whether the primary has pinged with the current view's number. */
  #acked = true;
  /** When each server last pinged (servers in the order they first pinged). */
  readonly #lastPing = new Map<string, number>();
  /** Servers of the current view that pinged with 0: they lost their state. */
  readonly #restarted = new Set<string>();
  /** The view number each server last pinged with. */
  readonly #lastNum = new Map<string, number>();

  /**
   * Creates a view service at view 0.
   *
   * @throws {RangeError} for a ping interval or dead-ping count that is not positive.
   */
  constructor(options: ViewServiceOptions = {}) {
    const interval = options.pingIntervalMs ?? PING_INTERVAL_MS;
    const deadPings = options.deadPings ?? DEAD_PINGS;
    if (!(interval > 0) || !Number.isSafeInteger(deadPings) || deadPings < 1) {
      throw new RangeError(
        `pingIntervalMs must be above 0 and deadPings a positive integer, got ${interval} and ` +
          `${deadPings}`,
      );
    }
    this.#deadAfterMs = interval * deadPings;
  }

  /** The current view. */
  get view(): View {
    return this.#view;
  }

  /** Whether the current view's primary has acknowledged it. */
  get acked(): boolean {
    return this.#acked;
  }

  /**
   * Server `server` pinged at `nowMs`, saying it is in view `num` (0 when it
   * has just started). Returns the view it should now be in.
   *
   * @throws {RangeError} for an empty name or a view number below 0.
   */
  ping(server: string, num: number, nowMs: number): View {
    if (server === "") throw new RangeError("a server's name must not be empty");
    if (!Number.isSafeInteger(num) || num < 0) {
      throw new RangeError(`a view number is an integer from 0, got ${num}`);
    }
    const before = this.#lastNum.get(server) ?? 0;
    this.#lastNum.set(server, num);
    this.#lastPing.set(server, nowMs);
    const view = this.#view;
    if (view.num === 0) {
      this.#change({ primary: server, backup: "" });
      return this.#view;
    }
    if (num === 0 && (server === view.primary || server === view.backup)) {
      // A member that had pinged a view number, or whose view was acknowledged
      // (so the backup was brought up to date), forgot it: it restarted and
      // lost its state. A 0 from a member that never pinged one is a server
      // yet to learn its new role.
      if (this.#acked || before > 0) this.#restarted.add(server);
    }
    // A restarted primary holds no data: its acknowledgement does not count,
    // and the service waits rather than go on without the data.
    if (server === view.primary && num === view.num && !this.#restarted.has(server)) {
      this.#acked = true;
    }
    this.#advance(nowMs);
    return this.#view;
  }

  /** Time passed: notices dead servers. Call it every ping interval. */
  tick(nowMs: number): void {
    this.#advance(nowMs);
    // Forget servers long gone, so the table does not grow with every name ever seen.
    for (const [server, last] of this.#lastPing) {
      if (nowMs - last > 10 * this.#deadAfterMs) {
        this.#lastPing.delete(server);
        this.#lastNum.delete(server);
      }
    }
  }

  /** Moves to the next view if the current one is acknowledged and should change. */
  #advance(nowMs: number): void {
    if (!this.#acked) return;
    const { primary, backup } = this.#view;
    const alive = (s: string) => s !== "" && !this.#restarted.has(s) && this.#pinging(s, nowMs);
    if (!alive(primary)) {
      // Only the backup has the data; without one, wait for the primary.
      if (alive(backup)) this.#change({ primary: backup, backup: this.#idle(nowMs, backup) });
    } else if (!alive(backup)) {
      // A restarted backup may be chosen again, in a new view: the primary
      // brings a backup up to date at every view change.
      const next = this.#idle(nowMs, primary);
      if (next !== backup || this.#restarted.has(backup)) this.#change({ primary, backup: next });
    }
  }

  /** Whether `server` has pinged within the dead-server limit. */
  #pinging(server: string, nowMs: number): boolean {
    return nowMs - (this.#lastPing.get(server) ?? -Infinity) <= this.#deadAfterMs;
  }

  /** A live server that is not in the new view's primary's place, or "". */
  #idle(nowMs: number, primary: string): string {
    for (const server of this.#lastPing.keys()) {
      if (server === primary || !this.#pinging(server, nowMs)) continue;
      // A restarted server lost its state, but as a new backup it gets the primary's.
      if (server === this.#view.primary || server === this.#view.backup) {
        if (!this.#restarted.has(server)) continue;
      }
      return server;
    }
    return "";
  }

  #change(next: { primary: string; backup: string }): void {
    const view = Object.freeze({ num: this.#view.num + 1, ...next });
    assertView(view);
    this.#view = view;
    this.#acked = false;
    // A restarted server in the new view has been given its new role.
    this.#restarted.clear();
  }
}

/** The invariants of a view, checked at every change. */
function assertView(view: View): void {
  if (view.primary === "" || view.primary === view.backup) {
    throw new Error(`view service invariant broken: view ${JSON.stringify(view)}`);
  }
}

/**
 * Checks that `value` is a {@linkcode View} (as a reply from the network).
 *
 * @throws {TypeError} saying what is wrong.
 *
 * @example
 * ```ts
 * import { parseView } from "./view.ts";
 *
 * parseView({ num: 1, primary: "s1", backup: "" }).primary; // "s1"
 * ```
 */
export function parseView(value: unknown): View {
  const v = value as Partial<View> | null;
  if (
    typeof v !== "object" || v === null || !Number.isSafeInteger(v.num) || v.num! < 0 ||
    typeof v.primary !== "string" || typeof v.backup !== "string"
  ) {
    throw new TypeError(`expected a view {num, primary, backup}, got ${JSON.stringify(value)}`);
  }
  return { num: v.num!, primary: v.primary, backup: v.backup };
}

/**
 * Options of {@linkcode ViewServer}.
 *
 * @example
 * ```ts
 * import type { ViewServerOptions } from "@distkit/distkit/pb";
 *
 * const options: ViewServerOptions = { pingIntervalMs: 100 };
 * ```
 */
export interface ViewServerOptions extends ViewServiceOptions {
  /** Time source. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
}

/**
 * The view service as an RPC service (`View.Ping`, `View.Get`), ticking on
 * its clock every ping interval. Add {@linkcode ViewServer.methods} to an
 * `RpcServer` under the name `View`.
 *
 * @example
 * ```ts
 * import { ViewServer } from "@distkit/distkit/pb";
 * import { RpcServer } from "@distkit/distkit/net";
 *
 * const vs = new ViewServer();
 * const server = new RpcServer();
 * server.addService("View", vs.methods());
 * await server.dispatch("View.Ping", { server: "s1", num: 0 }); // { num: 1, primary: "s1", ... }
 * vs.close();
 * ```
 */
export class ViewServer {
  readonly #service: ViewService;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  #timer: Timer | undefined;

  /** Creates the service and starts its ticker. */
  constructor(options: ViewServerOptions = {}) {
    this.#service = new ViewService(options);
    this.#clock = options.clock ?? defaultClock("ViewServer");
    this.#intervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#schedule();
  }

  /** The current view. */
  get view(): View {
    return this.#service.view;
  }

  /** The RPC methods: `Ping({server, num})` and `Get()`, each answering the view. */
  methods(): { Ping(args: unknown): View; Get(args: unknown): View } {
    return {
      Ping: (args: unknown) => {
        const { server, num } = expectShape<{ server: string; num: number }>(args, {
          server: "string",
          num: "integer",
        });
        if (server === "" || server.length > MAX_SERVER_NAME) {
          throw new ArgumentsError(
            `a server's name must be 1 to ${MAX_SERVER_NAME} characters, got ${server.length}`,
          );
        }
        if (num < 0) throw new ArgumentsError(`a view number is an integer from 0, got ${num}`);
        return this.#service.ping(server, num, this.#clock.now());
      },
      Get: () => this.#service.view,
    };
  }

  /** Stops the ticker (the view then changes only on pings). */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimer(this.#intervalMs, () => {
      this.#service.tick(this.#clock.now());
      this.#schedule();
    });
  }
}

/**
 * A handle on the view service for a server (which pings) or a client
 * (which asks for the view).
 *
 * @example
 * ```ts ignore
 * import { ViewClerk } from "@distkit/distkit/pb";
 * import { TcpClient } from "@distkit/distkit/net";
 *
 * const clerk = new ViewClerk(new TcpClient("127.0.0.1:7100"));
 * const view = await clerk.get();
 * ```
 */
export class ViewClerk {
  readonly #end: ClientEnd;
  readonly #timeoutMs: number;

  /**
   * Creates a clerk that calls the view service at `end`.
   *
   * @param options.timeoutMs How long a call may take. Default 1,000 ms.
   */
  constructor(end: ClientEnd, options: { timeoutMs?: number } = {}) {
    this.#end = end;
    this.#timeoutMs = options.timeoutMs ?? 1000;
  }

  /**
   * Pings as server `server`, in view `num` (0 after a start): says it is
   * alive and, as primary, acknowledges view `num`. Resolves with the view.
   *
   * @throws {RpcError} when the view service cannot be reached.
   */
  async ping(server: string, num: number): Promise<View> {
    const reply = await this.#end.call("View.Ping", { server, num }, {
      timeoutMs: this.#timeoutMs,
    });
    return parseView(reply);
  }

  /**
   * The current view.
   *
   * @throws {RpcError} when the view service cannot be reached.
   */
  async get(): Promise<View> {
    return parseView(await this.#end.call("View.Get", {}, { timeoutMs: this.#timeoutMs }));
  }
}
