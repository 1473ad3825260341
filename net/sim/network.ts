/**
 * A simulated, fault-injecting network with the semantics of the course's
 * labrpc, plus named partitions and per-link rules. Deterministic: all time
 * comes from a {@linkcode Clock} and every random choice from a
 * {@linkcode Random}, so a seed replays a run exactly.
 *
 * @module
 */
import { deadline, delay } from "../async.ts";
import type { Clock } from "../clock.ts";
import { type Codec, defaultCodec } from "../codec.ts";
import { AbortedError, ClosedError, TimeoutError, UnreachableError } from "../errors.ts";
import { answer, decodeEnvelope, encodeAnswer, encodeRequest, settle } from "../envelope.ts";
import type { Random } from "../random.ts";
import type { RpcServer } from "../rpc_server.ts";
import type { CallOptions, ClientEnd, Transport } from "../transport.ts";

/**
 * Options for {@linkcode SimNetwork}.
 *
 * @example
 * ```ts
 * import { Random, type SimNetworkOptions, VirtualClock } from "@distkit/distkit/net";
 *
 * const options: SimNetworkOptions = { clock: new VirtualClock(), random: new Random(1), trace: true };
 * ```
 */
export interface SimNetworkOptions {
  /** Where delays and timeouts are timed; use a `VirtualClock` for simulation. */
  clock: Clock;
  /** Every random fault decision is drawn from it. */
  random: Random;
  /** Encodes arguments and replies (they are always serialized). Default: 64 MiB limit. */
  codec?: Codec;
  /** Record every event in {@linkcode SimNetwork.trace}. Default false. */
  trace?: boolean;
}

/**
 * Faults for calls from one node to another (see {@linkcode SimNetwork.setLinkRule}).
 *
 * @example
 * ```ts
 * import type { LinkRule } from "@distkit/distkit/net";
 *
 * const flaky: LinkRule = { dropRequests: 0.2, delayMs: [5, 50], duplicate: 0.05 };
 * ```
 */
export interface LinkRule {
  /** Probability that a request is lost before it reaches the handler. */
  dropRequests?: number;
  /** Probability that a reply is lost after the handler ran. */
  dropReplies?: number;
  /** Extra request delay, drawn uniformly from [min, max] milliseconds. */
  delayMs?: readonly [number, number];
  /** Probability that the request is delivered twice (the second reply is discarded). */
  duplicate?: number;
}

/**
 * One recorded network event, for traces and debugging.
 *
 * @example
 * ```ts
 * import type { SimEvent } from "@distkit/distkit/net";
 *
 * function show(e: SimEvent) {
 *   return `${e.at} ${e.kind} ${e.end} -> ${e.server ?? "-"} ${e.method}`;
 * }
 * ```
 */
export interface SimEvent {
  /** Virtual (or real) time of the event. */
  at: number;
  /** What happened. */
  kind: "send" | "deliver" | "reply" | "fail" | "drop-request" | "drop-reply" | "duplicate";
  /** The end that made the call. */
  end: string;
  /** The server it was routed to, when it had one. */
  server?: string;
  /** The method called. */
  method: string;
}

/**
 * Options for {@linkcode SimNetwork.makeEnd}.
 *
 * @example
 * ```ts
 * import type { EndOptions } from "@distkit/distkit/net";
 *
 * const options: EndOptions = { owner: "raft-0" };
 * ```
 */
export interface EndOptions {
  /**
   * The node that makes calls through this end. Partitions and link rules
   * apply to ends with an owner; an end without one is an outside client.
   */
  owner?: string;
}

interface ServerEntry {
  name: string;
  server: RpcServer;
  delivered: number;
  /** Trips when the server is deleted or replaced. */
  killed: Tripwire;
}

interface EndState {
  name: string;
  owner?: string;
  server?: string;
  enabled: boolean;
  /** Trips when the end is disabled or reconnected; then replaced by a fresh one. */
  cut: Tripwire;
}

/** Throws a clear error for a rule that would fail every call it applies to. */
function checkRule(rule: LinkRule): void {
  for (const field of ["dropRequests", "dropReplies", "duplicate"] as const) {
    const p = rule[field];
    if (p !== undefined && !(p >= 0 && p <= 1)) {
      throw new RangeError(`LinkRule.${field} is a probability from 0 to 1, got ${p}`);
    }
  }
  if (rule.delayMs !== undefined) {
    const [min, max] = rule.delayMs;
    if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 0 && min <= max)) {
      throw new RangeError(
        `LinkRule.delayMs must be [min, max] in whole milliseconds with 0 <= min <= max, ` +
          `got [${min}, ${max}]`,
      );
    }
  }
}

/**
 * A one-shot alarm for the calls in flight on an end or to a server. It does
 * what an `AbortController` plus `AbortSignal.any` per call would, at a
 * fraction of the cost, and holds on to nothing once a call is over.
 */
class Tripwire {
  tripped = false;
  #listeners = new Set<() => void>();

  /** Calls every listener, in the order they were added, once. */
  trip(): void {
    if (this.tripped) return;
    this.tripped = true;
    const listeners = this.#listeners;
    this.#listeners = new Set();
    for (const listener of listeners) listener();
  }

  /** Adds a listener; returns the function that removes it. */
  watch(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Settles like `work`, or rejects with `failure()` as soon as one of `wires` trips. */
function untilTripped<T>(
  work: Promise<T>,
  wires: readonly Tripwire[],
  failure: () => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const trip = () => {
      stop();
      reject(failure());
    };
    const unwatch = wires.map((wire) => wire.watch(trip));
    const stop = () => unwatch.forEach((remove) => remove());
    work.then(
      (value) => {
        stop();
        resolve(value);
      },
      (err) => {
        stop();
        reject(err);
      },
    );
    if (wires.some((wire) => wire.tripped)) trip();
  });
}

/**
 * The simulated network. Servers host an {@linkcode RpcServer} under a name;
 * clients make ends with {@linkcode SimNetwork.makeEnd}, connect them to a
 * server and enable them. An end starts disabled; calls through a disabled or
 * unconnected end, to a removed server, or across a partition are never
 * delivered and fail after a delay, with `notSent` true (`RpcError.notSent`);
 * a request dropped on the way does not say so, since a real client cannot
 * tell that from a lost reply. A request that cannot be encoded (over the
 * codec's limit, a value MessagePack cannot carry) fails at once with a
 * `FrameTooLargeError` or `CodecError` that has `notSent` true.
 *
 * Fault model (labrpc): in unreliable mode each request waits 0–26 ms, then
 * 10 % are dropped; after the handler ran, 10 % of replies are dropped. With
 * long reordering, 2/3 of replies are delayed 200–2,200 ms (skewed low).
 * Undeliverable calls fail after 0–7,000 ms with long delays on, else 0–100 ms.
 * A deleted or replaced server never delivers a positive reply, even when its
 * handler finishes later; calls in flight to it fail at once.
 *
 * @example A round trip in virtual time
 * ```ts
 * import { Random, RpcServer, SimNetwork, VirtualClock } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const clock = new VirtualClock();
 * const net = new SimNetwork({ clock, random: new Random(7) });
 * const server = new RpcServer();
 * server.addService("Echo", { Say: (s: string) => s.toUpperCase() });
 * net.addServer("s1", server);
 * const end = net.makeEnd("c1");
 * net.connect("c1", "s1");
 * net.enable("c1", true);
 * const reply = await clock.run(() => end.call("Echo.Say", "hi"));
 * assert.equal(reply, "HI");
 * assert.equal(net.count("s1"), 1);
 * ```
 */
export class SimNetwork {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #codec: Codec;
  readonly #tracing: boolean;
  #reliable = true;
  #longReordering = false;
  #longDelays = false;
  #latency: readonly [number, number] | undefined;
  #servers = new Map<string, ServerEntry>();
  #ends = new Map<string, EndState>();
  #groups: Map<string, number> | undefined;
  #rules = new Map<string, LinkRule>();
  #closed = false;
  #totalCalls = 0;
  #totalBytes = 0;
  /** A running hash of every event: kind, virtual time, end, server, method and bytes. */
  #traceHash = 0x811c9dc5;
  /** Every event so far, when created with `trace: true`. */
  readonly trace: SimEvent[] = [];

  /**
   * Creates a network with no servers and no ends.
   *
   * @param options Clock, randomness, codec and tracing.
   */
  constructor(options: SimNetworkOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#codec = options.codec ?? defaultCodec;
    this.#tracing = options.trace ?? false;
  }

  /** Creates a disabled, unconnected end; end names are unique. */
  makeEnd(name: string, options: EndOptions = {}): SimEnd {
    if (this.#ends.has(name)) {
      throw new Error(`an end named "${name}" already exists; end names must be unique`);
    }
    this.#ends.set(name, {
      name,
      owner: options.owner,
      enabled: false,
      cut: new Tripwire(),
    });
    return new SimEnd(this, name);
  }

  /** Hosts `server` under `name`, replacing (and killing) any server of that name. */
  addServer(name: string, server: RpcServer): void {
    this.#servers.get(name)?.killed.trip();
    this.#servers.set(name, { name, server, delivered: 0, killed: new Tripwire() });
  }

  /** Removes a server: its in-flight calls fail now and it never replies again. */
  deleteServer(name: string): void {
    this.#servers.get(name)?.killed.trip();
    this.#servers.delete(name);
  }

  /** Routes an end to a server (by name; the server may be added later). */
  connect(endName: string, serverName: string): void {
    const end = this.#end(endName);
    if (end.server !== serverName) this.#cut(end);
    end.server = serverName;
  }

  /** Enables or disables an end; disabling fails its calls in flight. */
  enable(endName: string, enabled: boolean): void {
    const end = this.#end(endName);
    if (end.enabled && !enabled) this.#cut(end);
    end.enabled = enabled;
  }

  /** Reliable (default) or labrpc's unreliable mode. */
  setReliable(reliable: boolean): void {
    this.#reliable = reliable;
  }

  /** Delays 2/3 of replies by 200–2,200 ms when on. */
  setLongReordering(on: boolean): void {
    this.#longReordering = on;
  }

  /** Undeliverable calls fail after 0–7,000 ms instead of 0–100 ms when on. */
  setLongDelays(on: boolean): void {
    this.#longDelays = on;
  }

  /**
   * Gives every delivered call a latency drawn uniformly from [min, max]
   * milliseconds (fractions allowed), on top of any other delay; `undefined`
   * (the default) means none, as in labrpc's reliable mode. A service whose
   * clients loop until a deadline needs some latency in virtual time, or
   * they would run without end at one instant.
   */
  setLatency(range: readonly [number, number] | undefined): void {
    if (range !== undefined && !(range[0] >= 0 && range[0] <= range[1])) {
      throw new RangeError(
        `latency must be [min, max] milliseconds with 0 <= min <= max, got [${range}]`,
      );
    }
    this.#latency = range;
  }

  /**
   * Splits the nodes into groups that cannot reach each other. A call is
   * blocked when both the end's owner and the server are named in some group
   * and the groups differ; ends without owners and unnamed nodes are not
   * restricted. A new partition replaces the previous one.
   */
  partition(...groups: readonly (readonly string[])[]): void {
    const map = new Map<string, number>();
    groups.forEach((group, i) => {
      for (const node of group) {
        if (map.has(node)) {
          throw new Error(
            `node "${node}" appears in two partition groups; list each node in at most one`,
          );
        }
        map.set(node, i);
      }
    });
    this.#groups = map;
    for (const end of this.#ends.values()) {
      if (end.server !== undefined && !this.#sameSide(end.owner, end.server)) this.#cut(end);
    }
  }

  /** Removes the partition. */
  heal(): void {
    this.#groups = undefined;
  }

  /**
   * Sets the faults for calls from node `from` to server `to`; `"*"` matches
   * any node. The most specific rule wins (exact, then from-any, then to-any).
   * Pass `undefined` to remove a rule.
   */
  setLinkRule(from: string, to: string, rule: LinkRule | undefined): void {
    if (rule !== undefined) checkRule(rule);
    const key = `${from}\u0000${to}`;
    if (rule === undefined) this.#rules.delete(key);
    else this.#rules.set(key, rule);
  }

  /** Calls delivered to the server's handlers since it was added. */
  count(serverName: string): number {
    return this.#servers.get(serverName)?.delivered ?? 0;
  }

  /** Calls made through all ends, delivered or not. */
  get totalCalls(): number {
    return this.#totalCalls;
  }

  /** Request bytes at send plus reply bytes at delivery, over all calls. */
  get totalBytes(): number {
    return this.#totalBytes;
  }

  /**
   * A running hash of every event so far (sends and replies with their
   * length and first and last 32 bytes, deliveries, drops, failures, each
   * with its virtual time): the same seed gives the same hash, so two runs
   * of one seed compare by it.
   */
  get traceHash(): number {
    return this.#traceHash >>> 0;
  }

  /** Fails every later call with `ClosedError`. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#servers.values()) entry.killed.trip();
    for (const end of this.#ends.values()) this.#cut(end);
  }

  /**
   * A {@linkcode Transport} for `node`: one enabled end per peer, named
   * `node->peer` (`node->peer#2`, ... for later transports of the same node,
   * such as a restarted instance, so the old instance's ends stay distinct).
   */
  transportFor(node: string): Transport {
    const ends = new Map<string, SimEnd>();
    return {
      connect: (peer: string) => {
        let end = ends.get(peer);
        if (end !== undefined) return end;
        // A later transport for the same node (a restart) gets fresh end names.
        let name = `${node}->${peer}`;
        for (let k = 2; this.#ends.has(name); k++) name = `${node}->${peer}#${k}`;
        end = this.makeEnd(name, { owner: node });
        this.connect(name, peer);
        this.enable(name, true);
        ends.set(peer, end);
        return end;
      },
    };
  }

  #end(name: string): EndState {
    const end = this.#ends.get(name);
    if (end === undefined) throw new Error(`no end named "${name}"; create it with makeEnd`);
    return end;
  }

  #cut(end: EndState): void {
    end.cut.trip();
    end.cut = new Tripwire();
  }

  #sameSide(owner: string | undefined, server: string): boolean {
    if (this.#groups === undefined || owner === undefined) return true;
    const a = this.#groups.get(owner);
    const b = this.#groups.get(server);
    return a === undefined || b === undefined || a === b;
  }

  #rule(owner: string | undefined, server: string): LinkRule | undefined {
    if (owner === undefined || this.#rules.size === 0) return undefined;
    return this.#rules.get(`${owner}\u0000${server}`) ??
      this.#rules.get(`*\u0000${server}`) ??
      this.#rules.get(`${owner}\u0000*`) ??
      this.#rules.get(`*\u0000*`);
  }

  #record(
    kind: SimEvent["kind"],
    end: EndState,
    method: string,
    server?: string,
    bytes?: Uint8Array,
  ): void {
    let h = mixString(mixWord(this.#traceHash, this.#clock.now() * 1000), kind);
    h = mixString(mixString(mixString(h, end.name), server ?? ""), method);
    if (bytes !== undefined) h = mixBytes(mixWord(h, bytes.length), bytes);
    this.#traceHash = h;
    if (this.#tracing) {
      this.trace.push({ at: this.#clock.now(), kind, end: end.name, server, method });
    }
  }

  /**
   * @internal Used by {@linkcode SimEnd.call}; sets `call.routed` once the
   * request may reach a handler (a request without a route never does).
   */
  async deliver(
    endName: string,
    method: string,
    args: unknown,
    call: { routed: boolean } = { routed: false },
  ): Promise<unknown> {
    if (this.#closed) throw new ClosedError("the simulated network", { notSent: true });
    const end = this.#end(endName);
    // Fails (notSent) before anything is counted or routed, as a real client would.
    const request = encodeRequest(this.#codec, { kind: "request", id: 0, method, args });
    this.#totalCalls++;
    this.#totalBytes += request.length;
    this.#record("send", end, method, end.server, request);

    // Like labrpc, the route is read once, when the call is made.
    const entry = end.server === undefined ? undefined : this.#servers.get(end.server);
    const cut = end.cut;
    if (entry === undefined || !end.enabled || !this.#sameSide(end.owner, entry.name)) {
      return await this.#fail(end, method, this.#noRoute(end, entry));
    }
    // From here on it may be delivered, even after the caller gave up (or
    // dropped on the way, which its caller can never tell from a lost reply).
    call.routed = true;
    const rule = this.#rule(end.owner, entry.name);
    if (this.#latency) {
      const [min, max] = this.#latency;
      await delay(min + this.#random.next() * (max - min), { clock: this.#clock });
    }
    if (!this.#reliable) await delay(this.#random.int(27), { clock: this.#clock });
    if (rule?.delayMs) {
      await delay(this.#random.between(rule.delayMs[0], rule.delayMs[1]), { clock: this.#clock });
    }
    const dropRequest = (!this.#reliable && this.#random.int(1000) < 100) ||
      (rule?.dropRequests !== undefined && this.#random.chance(rule.dropRequests));
    if (dropRequest) {
      this.#record("drop-request", end, method, entry.name);
      throw new UnreachableError(entry.name, "request dropped by the simulated network");
    }
    if (rule?.duplicate !== undefined && this.#random.chance(rule.duplicate)) {
      this.#record("duplicate", end, method, entry.name);
      this.#execute(entry, request).catch(() => {});
    }

    this.#record("deliver", end, method, entry.name);
    let reply: Uint8Array;
    try {
      reply = await untilTripped(
        this.#execute(entry, request),
        [cut, entry.killed],
        () => new UnreachableError(entry.name, "server killed or end cut during the call"),
      );
    } catch (err) {
      this.#record("fail", end, method, entry.name);
      throw err;
    }
    // labrpc's last isServerDead check: the server may have been killed, or the
    // end cut, after the handler returned but before this continuation ran.
    if (cut.tripped || entry.killed.tripped) {
      this.#record("fail", end, method, entry.name);
      throw new UnreachableError(entry.name, "server killed or end cut during the call");
    }
    const dropReply = (!this.#reliable && this.#random.int(1000) < 100) ||
      (rule?.dropReplies !== undefined && this.#random.chance(rule.dropReplies));
    if (dropReply) {
      this.#record("drop-reply", end, method, entry.name);
      throw new UnreachableError(entry.name, "reply dropped by the simulated network");
    }
    if (this.#longReordering && this.#random.int(900) < 600) {
      await delay(200 + this.#random.int(1 + this.#random.int(2000)), { clock: this.#clock });
    }
    this.#totalBytes += reply.length;
    this.#record("reply", end, method, entry.name, reply);
    const answerEnvelope = decodeEnvelope(this.#codec, reply);
    if (answerEnvelope.kind === "request") throw new Error("unreachable: a reply was a request");
    return settle(method, answerEnvelope);
  }

  /** Runs the request on the server; only bytes cross, never shared objects. */
  async #execute(entry: ServerEntry, request: Uint8Array): Promise<Uint8Array> {
    const envelope = decodeEnvelope(this.#codec, request);
    if (envelope.kind !== "request") throw new Error("unreachable: a request was an answer");
    entry.delivered++;
    return encodeAnswer(this.#codec, await answer(entry.server, envelope));
  }

  /** Why a call through `end` cannot be delivered, and what to do about it. */
  #noRoute(end: EndState, entry: ServerEntry | undefined): string {
    if (end.server === undefined) {
      return `end "${end.name}" is not connected to a server; call connect("${end.name}", server)`;
    }
    if (!end.enabled) {
      return `end "${end.name}" is disabled; call enable("${end.name}", true)`;
    }
    if (entry === undefined) {
      return `no server named "${end.server}" (never added, or deleted); add it with addServer`;
    }
    return `"${end.owner}" and "${entry.name}" are in different partition groups; heal() or ` +
      `partition() them onto one side`;
  }

  /** Fails a call that had no route: it was certainly never delivered. */
  async #fail(end: EndState, method: string, reason: string): Promise<never> {
    const ms = this.#random.int(this.#longDelays ? 7000 : 100);
    await delay(ms, { clock: this.#clock });
    this.#record("fail", end, method, end.server);
    throw new UnreachableError(end.server ?? end.name, reason, { notSent: true });
  }

  /** @internal The clock calls are timed on. */
  get clock(): Clock {
    return this.#clock;
  }

  /** @internal The server an end is connected to, or the end's own name. */
  targetOf(endName: string): string {
    return this.#end(endName).server ?? endName;
  }
}

/**
 * A client end of the {@linkcode SimNetwork}, made by
 * {@linkcode SimNetwork.makeEnd}.
 *
 * @example
 * ```ts
 * import { Random, SimNetwork, UnreachableError, VirtualClock } from "@distkit/distkit/net";
 *
 * const clock = new VirtualClock();
 * const net = new SimNetwork({ clock, random: new Random(1) });
 * const end = net.makeEnd("lonely"); // disabled and unconnected
 * const err = await clock.run(() => end.call("Any.Thing").catch((e) => e));
 * err instanceof UnreachableError; // true
 * ```
 */
export class SimEnd implements ClientEnd {
  readonly #net: SimNetwork;
  /** The end's name. */
  readonly name: string;

  /** Use {@linkcode SimNetwork.makeEnd}. */
  constructor(net: SimNetwork, name: string) {
    this.#net = net;
    this.name = name;
  }

  /** The server this end is connected to (its own name while unconnected). */
  get peer(): string {
    return this.#net.targetOf(this.name);
  }

  /**
   * Calls `method` on the server this end is connected to. A failure has
   * `notSent` true only when the call had no route when it was made (see
   * {@linkcode SimNetwork}), its request could not be encoded, or the end's
   * network or the caller's signal had already ended it: such a call never
   * reaches a handler.
   */
  call<T = unknown>(method: string, args?: unknown, options: CallOptions = {}): Promise<T> {
    if (options.signal?.aborted) {
      return Promise.reject(
        new AbortedError(method, { cause: options.signal.reason, notSent: true }),
      );
    }
    const call = { routed: false };
    const work = this.#net.deliver(this.name, method, args, call) as Promise<T>;
    return deadline(work, {
      clock: this.#net.clock,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      onTimeout: () => new TimeoutError(method, options.timeoutMs!, { notSent: !call.routed }),
      onAbort: (reason) => new AbortedError(method, { cause: reason, notSent: !call.routed }),
    });
  }
}

/** One FNV-1a step over a 32-bit word (fractions of a number are dropped). */
function mixWord(h: number, word: number): number {
  return Math.imul(h ^ (word | 0), 0x01000193);
}

function mixString(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0xff, 0x01000193);
}

/**
 * Mixes a message's first and last 32 bytes (all of a shorter one): hashing
 * every byte of every message cost a third of a Raft simulation's time, and
 * a run that diverges shows it in lengths and timing soon enough.
 */
function mixBytes(h: number, bytes: Uint8Array): number {
  const n = bytes.length;
  const head = Math.min(n, 32);
  for (let i = 0; i < head; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  for (let i = Math.max(head, n - 32); i < n; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h;
}
