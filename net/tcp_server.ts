/**
 * The TCP server: {@linkcode serveTcp} serves an {@linkcode RpcServer} on a
 * TCP port, running the server's side of the handshake on every connection.
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";
import { Codec } from "./codec.ts";
import { delay } from "./async.ts";
import {
  answer,
  type AnswerEnvelope,
  decodeEnvelope,
  encodeAnswer,
  encodeEnvelope,
  type Envelope,
  unreadable,
} from "./envelope.ts";
import { ProtocolError } from "./errors.ts";
import { EventSummary } from "./event_summary.ts";
import {
  ByteBudget,
  encodeFrames,
  formatAddr,
  type FrameBudgetError,
  FramedConnection,
  FrameTimeoutError,
} from "./frame.ts";
import {
  checkCluster,
  checkSecret,
  decodeHello,
  decodeProof,
  describeCluster,
  encodeServerMessage,
  HANDSHAKE_MAX_FRAME_BYTES,
  type Hello,
  httpLookalike,
  importSecret,
  type MemberHello,
  memberHello,
  proofOf,
  randomNonce,
  timingSafeEqual,
} from "./handshake.ts";
import type { Logger } from "./logger.ts";
import type { RpcServer } from "./rpc_server.ts";
import {
  AddressCounts,
  checkCount,
  checkDelay,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  HandshakeThrottle,
  type HandshakeThrottleOptions,
  type TcpServerStats,
} from "./tcp_limits.ts";
import {
  checkMaxFrameBytes,
  type ClusterOptions,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type MemberOptions,
  messageOf,
  type TcpAddr,
} from "./tcp_options.ts";

const SERVER_BACKLOG_BYTES = 1024 * 1024;

/**
 * Options for {@linkcode serveTcp}.
 *
 * @example
 * ```ts
 * import type { ServeTcpOptions } from "@distkit/distkit/net";
 *
 * const options: ServeTcpOptions = {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   maxFrameBytes: 1 << 20,
 *   cluster: "blue",
 *   secret: "a long random string shared by the cluster",
 *   onRefused: (peer, reason) => console.warn(`refused ${peer}: ${reason}`),
 * };
 * ```
 */
export interface ServeTcpOptions extends ClusterOptions {
  /** The address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The port to listen on; 0 picks a free one. Default 0. */
  port?: number;
  /** The largest frame accepted or sent, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * How long a new connection may take to finish its handshake, in
   * milliseconds; a connection that is silent or slow for longer is refused
   * and closed. Default 5,000.
   */
  handshakeTimeoutMs?: number;
  /**
   * Called for each connection refused in the handshake, with the client's
   * address and the reason sent to it (in which "it" is this server).
   */
  onRefused?: (peer: string, reason: string) => void;
  /**
   * Called with a member's node id when the last open connection from that
   * member closes (it crashed, stopped, or hung up), while this server keeps
   * running: a Raft follower takes it as a sign that its leader is gone.
   * Only for a server with `member` set (the node id was checked in the
   * handshake).
   */
  onMemberGone?: (node: string) => void;
  /**
   * After the handshake, a frame must arrive whole within this many
   * milliseconds of its first byte, or the connection is closed (a failure
   * with id 0 says why). Default 30,000 ({@linkcode DEFAULT_FRAME_TIMEOUT_MS}).
   */
  frameTimeoutMs?: number;
  /**
   * Connections open at once, handshakes included; one more is sent a
   * refusal and closed unread. Default 1,024.
   */
  maxConnections?: number;
  /** Connections open at once from one client IP address. Default 256. */
  maxConnectionsPerAddress?: number;
  /**
   * Bytes that frames over 64 KiB still arriving may hold between all
   * connections (each takes its announced length when its header arrives);
   * a frame that does not fit closes its connection. Default 4 ×
   * `maxFrameBytes`. One connection buffers at most one frame
   * (`maxFrameBytes`) plus 1 MiB of answers its client has not read.
   */
  largeFrameBudgetBytes?: number;
  /**
   * Backoff for addresses that fail handshakes (a wrong secret, a malformed
   * hello or proof): after a few failures, new connections from the address
   * are refused unread for a time that doubles with each further failure
   * (see {@linkcode HandshakeThrottle}). Default: 5 free failures, then 1 s
   * doubling up to 60 s. `false`: no backoff (for a fuzzer's own server).
   */
  throttle?: HandshakeThrottleOptions | false;
  /**
   * Where one summary line per interval goes, counting refused connections
   * and closed ones by reason (never a line per event). Default: none.
   */
  logger?: Logger;
  /** How often the summary line is written, in milliseconds. Default 10,000. */
  summaryIntervalMs?: number;
  /** The clock the throttle and the summary run on. Default: the real clock. */
  clock?: Clock;
}

/**
 * A running TCP server, as returned by {@linkcode serveTcp}.
 *
 * @example
 * ```ts
 * import { RpcServer, serveTcp, type TcpServer } from "@distkit/distkit/net";
 *
 * const rpc = new RpcServer();
 * rpc.addService("Echo", { Say: (args: unknown) => args });
 * const server: TcpServer = serveTcp(rpc);
 * console.log(`listening on ${server.address}`);
 * await server.close();
 * ```
 */
export interface TcpServer {
  /** The cluster it serves (`""`: the unnamed cluster). */
  readonly cluster: string;
  /** The address the server listens on (the real port when 0 was asked for). */
  readonly addr: TcpAddr;
  /** The same address as `"host:port"`, ready for {@linkcode TcpClient}. */
  readonly address: string;
  /** How many client connections are open, handshakes in progress included. */
  readonly connections: number;
  /** What was refused or cut off since the server started, by reason. */
  stats(): TcpServerStats;
  /** Closes the connections member `node` made, so its next one is checked again (a retired folder). */
  closeMember(node: string, reason: string): Promise<void>;
  /**
   * Stops listening, closes every connection, and resolves once all sockets
   * are closed. Handlers still running finish on their own; their answers
   * are dropped. Safe to call more than once.
   */
  close(): Promise<void>;
}

/**
 * Serves `server` over TCP.
 *
 * Every connection starts with the handshake (see {@linkcode ClusterOptions}):
 * a client of another cluster, without the shared secret or with another
 * one, or that says anything but a hello, is sent the reason and
 * disconnected, as is one that has not finished the handshake within
 * `handshakeTimeoutMs`. Until then its frames are limited to 4 KiB.
 *
 * After the handshake, every connection is independent: requests on it are
 * dispatched concurrently, and their answers go back as they complete, in
 * any order. Bad input never brings the server down:
 *
 * - a frame header announcing more than `maxFrameBytes`: a failure with id 0
 *   and code `frame_too_large` is sent, then that connection is closed;
 * - a frame that is not MessagePack or not a request envelope: a failure
 *   (carrying the request id when it can be read, otherwise id 0) is sent
 *   and the connection stays open;
 * - an unknown service or method, or arguments of the wrong shape: the
 *   call's failure answer (see {@linkcode RpcServer.dispatch});
 * - a handler that throws or never returns affects only its own call;
 * - a frame not received whole within `frameTimeoutMs` of its first byte,
 *   or a large one that does not fit `largeFrameBudgetBytes`: a failure with
 *   id 0 says why, then that connection is closed and its memory released.
 *
 * Before anything is read, a connection is sent a refusal and closed when
 * `maxConnections` are open, when `maxConnectionsPerAddress` are open from
 * its address, or while its address backs off after failed handshakes
 * (`throttle`). {@linkcode TcpServer.stats} counts each kind, and with a
 * `logger` one summary line per interval reports them.
 *
 * @example Serve, call, shut down
 * ```ts
 * import { RpcServer, serveTcp, TcpClient } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("Math", { Add: ({ a, b }: { a: number; b: number }) => a + b });
 * const server = serveTcp(rpc, { port: 0 });
 * const client = new TcpClient(server.address);
 * assert.equal(await client.call("Math.Add", { a: 2, b: 3 }), 5);
 * await client.close();
 * await server.close();
 * ```
 *
 * @example A cluster with a shared secret
 * ```ts
 * import { RefusedError, RpcServer, serveTcp, TcpClient } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("Health", { Ping: () => "pong" });
 * const secret = crypto.getRandomValues(new Uint8Array(32));
 * const server = serveTcp(rpc, { cluster: "blue", secret });
 * const member = new TcpClient(server.address, { cluster: "blue", secret });
 * assert.equal(await member.call("Health.Ping"), "pong");
 * const stranger = new TcpClient(server.address, { cluster: "green", secret });
 * await assert.rejects(stranger.call("Health.Ping"), RefusedError);
 * await Promise.all([member.close(), stranger.close()]);
 * await server.close();
 * ```
 *
 * @param server The services to serve.
 * @param options Where to listen, who may connect, and the limits.
 * @throws {Error} when the address cannot be listened on (in use, not local).
 * @throws {TypeError | RangeError} when an option is malformed.
 */
export function serveTcp(server: RpcServer, options: ServeTcpOptions = {}): TcpServer {
  return new TcpServerImpl(server, options);
}

/** A server's view of one connection. */
interface Session {
  framed: FramedConnection;
  peer: string;
  /** The client's IP address, which connection counts and the throttle go by. */
  host: string;
  /** `hello`: waiting for it; `proof`: challenged; `checking`: busy; `open`: serving. */
  phase: "hello" | "proof" | "checking" | "open";
  hello: Hello | undefined;
  serverNonce: Uint8Array | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The member node this connection came from (checked): in `memberConns`, `CallContext.member`. */
  member?: string;
}

class TcpServerImpl implements TcpServer {
  readonly addr: TcpAddr;
  readonly address: string;
  readonly cluster: string;
  #server: RpcServer;
  #codec: Codec;
  #maxFrameBytes: number;
  #secret: Uint8Array | undefined;
  #key: Promise<CryptoKey> | undefined;
  #handshakeTimeoutMs: number;
  #onRefused: ((peer: string, reason: string) => void) | undefined;
  #member: MemberOptions | undefined;
  #onMemberGone: ((node: string) => void) | undefined;
  /** Open connections by the member node that made them. */
  #memberConns = new Map<string, Set<FramedConnection>>();
  #frameTimeoutMs: number;
  #maxConnections: number;
  #maxPerAddress: number;
  #budget: ByteBudget;
  #throttle: HandshakeThrottle | undefined;
  #perAddress = new AddressCounts();
  #summary: EventSummary | undefined;
  #stats: Omit<TcpServerStats, "connections" | "largeFrameBytes"> = {
    handshakesRefused: 0,
    handshakesFailed: 0,
    throttled: 0,
    overMaxConnections: 0,
    overMaxPerAddress: 0,
    frameTimeouts: 0,
    frameBudgetRefusals: 0,
  };
  /** Connections refused unread, until their refusal is written and they are closed. */
  #turnedAway = new Set<Promise<void>>();
  #listener: Deno.TcpListener;
  #conns = new Set<FramedConnection>();
  /** Handshake steps waiting on Web Crypto. */
  #checks = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #stop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(server: RpcServer, options: ServeTcpOptions) {
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 0;
    this.#maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
    this.#codec = new Codec({ maxMessageBytes: this.#maxFrameBytes });
    this.#server = server;
    this.cluster = checkCluster(options.cluster);
    this.#secret = checkSecret(options.secret);
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (
      !(this.#handshakeTimeoutMs > 0) || !Number.isFinite(this.#handshakeTimeoutMs) ||
      this.#handshakeTimeoutMs > 0x7fff_ffff
    ) {
      throw new RangeError(
        `handshakeTimeoutMs must be a positive finite number of milliseconds, got ${this.#handshakeTimeoutMs}`,
      );
    }
    this.#onRefused = options.onRefused;
    this.#member = options.member;
    this.#onMemberGone = options.onMemberGone;
    this.#frameTimeoutMs = checkDelay(
      options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS,
      "frameTimeoutMs",
    );
    this.#maxConnections = checkCount(
      options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      "maxConnections",
    );
    this.#maxPerAddress = checkCount(
      options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
      "maxConnectionsPerAddress",
    );
    this.#budget = new ByteBudget(options.largeFrameBudgetBytes ?? 4 * this.#maxFrameBytes);
    const clock = options.clock ?? realClock;
    this.#throttle = options.throttle === false
      ? undefined
      : new HandshakeThrottle({ clock, ...options.throttle });
    const logger = options.logger;
    if (options.summaryIntervalMs !== undefined) {
      checkDelay(options.summaryIntervalMs, "summaryIntervalMs");
    }
    try {
      this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    } catch (err) {
      throw new Error(
        `cannot listen on ${formatAddr({ hostname, port })}: ${messageOf(err)}; ` +
          `pick another port or stop whatever holds it`,
        { cause: err },
      );
    }
    const addr = this.#listener.addr;
    this.addr = { hostname: addr.hostname, port: addr.port };
    this.address = formatAddr(this.addr);
    if (logger !== undefined) {
      this.#summary = new EventSummary({
        log: (line) => logger.log("warn", line, { listener: this.address }),
        prefix: `tcp ${this.address}: `,
        intervalMs: options.summaryIntervalMs,
        clock,
      });
    }
    this.#accepting = this.#acceptLoop();
  }

  get connections(): number {
    return this.#conns.size;
  }

  stats(): TcpServerStats {
    return {
      connections: this.#conns.size,
      largeFrameBytes: this.#budget.limit - this.#budget.available,
      ...this.#stats,
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    await Promise.all([...this.#conns].map((conn) => conn.close()));
    while (this.#turnedAway.size > 0) await Promise.all(this.#turnedAway);
    while (this.#checks.size > 0) await Promise.all(this.#checks);
    this.#summary?.close();
    await this.#key?.catch(() => {});
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#stop.signal.aborted || err instanceof Deno.errors.BadResource) return;
        // A transient failure (a connection reset before it was accepted, out
        // of file descriptors): pause briefly rather than spin.
        try {
          await delay(10, { signal: this.#stop.signal });
        } catch {
          return;
        }
        continue;
      }
      if (this.#stop.signal.aborted) {
        conn.close();
        return;
      }
      if (!this.#admitConnection(conn)) continue;
      this.#adopt(conn);
    }
  }

  /**
   * Checks the connection limits and the throttle before anything is read:
   * a connection over a limit is sent the reason and closed, holding no
   * more than its socket for as long as that write takes.
   */
  #admitConnection(conn: Deno.TcpConn): boolean {
    const host = conn.remoteAddr.hostname;
    let reason: string | undefined;
    let kind: "throttled" | "overMaxConnections" | "overMaxPerAddress" | undefined;
    if (this.#conns.size >= this.#maxConnections) {
      kind = "overMaxConnections";
      reason = `it has ${this.#maxConnections} connections open (maxConnections); ` +
        `try again later`;
    } else if (this.#perAddress.get(host) >= this.#maxPerAddress) {
      kind = "overMaxPerAddress";
      reason = `it has ${this.#maxPerAddress} connections open from ${host} ` +
        `(maxConnectionsPerAddress); close some or try again later`;
    } else if ((this.#throttle?.waitFor(host) ?? 0) > 0) {
      kind = "throttled";
      reason = `too many failed handshakes came from ${host}; connections from it are ` +
        `refused for a while that doubles with each further failure; check the client's ` +
        `cluster and secret options`;
    }
    if (kind === undefined || reason === undefined) return true;
    this.#stats[kind]++;
    this.#summary?.count(`connection refused unread (${kind})`);
    const peer = formatAddr(conn.remoteAddr);
    const refusal = (async () => {
      try {
        // A new socket's send buffer is empty: a frame this small is written at once.
        await conn.write(encodeFrames([encodeServerMessage({ kind: "refuse", reason })]));
      } catch {
        // The client is gone: nothing to tell it.
      } finally {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    })();
    this.#turnedAway.add(refusal);
    refusal.finally(() => this.#turnedAway.delete(refusal));
    try {
      this.#onRefused?.(peer, reason);
    } catch {
      // The callback's failure is not the connection's.
    }
    return false;
  }

  #adopt(conn: Deno.TcpConn): void {
    const peer = formatAddr(conn.remoteAddr);
    const host = conn.remoteAddr.hostname;
    this.#perAddress.add(host);
    const session: Session = {
      framed: undefined as unknown as FramedConnection,
      peer,
      host,
      phase: "hello",
      hello: undefined,
      serverNonce: undefined,
      timer: undefined,
    };
    const framed: FramedConnection = new FramedConnection(conn, {
      // Small frames until the client has said who it is.
      maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES,
      // A client that sends requests but never reads the answers stops being
      // read once 1 MiB of answers waits for it, instead of growing memory.
      pauseReadingAboveBytes: SERVER_BACKLOG_BYTES,
      frameTimeoutMs: this.#frameTimeoutMs,
      budget: this.#budget,
      onReadLimit: (err) => this.#onReadLimit(session, err),
      onFrame: (payload) =>
        session.phase === "open"
          ? this.#onFrame(framed, { peer, member: session.member }, payload)
          : this.#onHandshakeFrame(session, payload),
      onFrameTooLarge: (err) =>
        session.phase === "open" ? this.#send(framed, unreadable(err, 0)) : this.#refuse(
          session,
          httpLookalike(err.size) === "request"
            ? "this looks like an HTTP client; this port speaks distkit's TCP protocol " +
              "(a node's HTTP API listens on its own port)"
            : `the client announced a frame of ${err.size} bytes during the handshake, where ` +
              `frames are at most ${HANDSHAKE_MAX_FRAME_BYTES} bytes; only a distkit client ` +
              `of the same version can call this server`,
          // An HTTP client at the wrong port is a mistake, not a guess.
          httpLookalike(err.size) === "request" ? undefined : "failed",
        ),
      onClose: () => {
        clearTimeout(session.timer);
        if (this.#conns.delete(framed)) this.#perAddress.remove(host);
        if (session.member !== undefined) this.#memberClosed(session.member, framed);
      },
    });
    session.framed = framed;
    this.#conns.add(framed);
    if (framed.isClosed) return;
    session.timer = setTimeout(() => {
      const what = session.phase === "hello" ? "no hello" : "no proof of the shared secret";
      this.#refuse(
        session,
        `it got ${what} within ${this.#handshakeTimeoutMs} ms (handshakeTimeoutMs); ` +
          `only a distkit client of the same version can call this server`,
      );
    }, this.#handshakeTimeoutMs);
  }

  #onHandshakeFrame(session: Session, payload: Uint8Array): void {
    if (session.phase === "hello") {
      let hello: Hello;
      try {
        hello = decodeHello(payload);
      } catch (err) {
        this.#refuse(session, messageOf(err), "failed");
        return;
      }
      const problem = this.#checkHello(hello);
      if (problem !== undefined) {
        this.#refuse(session, problem);
        return;
      }
      session.hello = hello;
      if (this.#secret === undefined) {
        this.#admit(session, null);
        return;
      }
      session.serverNonce = randomNonce();
      session.phase = "proof";
      session.framed.send(encodeServerMessage({ kind: "challenge", nonce: session.serverNonce }));
      return;
    }
    if (session.phase === "proof") {
      let mac: Uint8Array;
      try {
        mac = decodeProof(payload);
      } catch (err) {
        this.#refuse(session, messageOf(err), "failed");
        return;
      }
      session.phase = "checking";
      const check = this.#checkProof(session, mac);
      this.#checks.add(check);
      check.finally(() => this.#checks.delete(check));
      return;
    }
    this.#refuse(
      session,
      "the client sent a frame before the handshake finished; a client must wait for the welcome",
      "failed",
    );
  }

  /** Why a hello is refused, or undefined when it may go on. */
  #checkHello(hello: Hello): string | undefined {
    if (hello.cluster !== this.cluster) {
      const theirs = hello.cluster === ""
        ? `the unnamed cluster ("")`
        : JSON.stringify(hello.cluster);
      return `it serves ${describeCluster(this.cluster)}, not ${theirs}; ` +
        `give the client and the server the same cluster option`;
    }
    if (this.#secret !== undefined && !hello.hasSecret) {
      return "it requires the cluster's shared secret, and this client has none; " +
        "give the client the same secret option as the server";
    }
    if (this.#secret === undefined && hello.hasSecret) {
      return "it has no shared secret, and this client has one; " +
        "give the server the same secret option as the client (or neither one)";
    }
    return undefined;
  }

  async #checkProof(session: Session, mac: Uint8Array): Promise<void> {
    const hello = session.hello!;
    const serverNonce = session.serverNonce!;
    try {
      this.#key ??= importSecret(this.#secret!);
      const key = await this.#key;
      const expected = await proofOf(key, "client", this.cluster, hello.nonce, serverNonce);
      if (session.framed.isClosed) return;
      if (!timingSafeEqual(expected, mac)) {
        this.#refuse(
          session,
          "the shared secret does not match; give the client and the server the same secret option",
          "failed",
        );
        return;
      }
      const proof = await proofOf(key, "server", this.cluster, hello.nonce, serverNonce);
      if (session.framed.isClosed) return;
      this.#admit(session, proof);
    } catch (err) {
      this.#refuse(session, `it could not check the proof (${messageOf(err)})`);
    }
  }

  /** Checks the client's member identity (when this server is a member), then opens. */
  #admit(session: Session, mac: Uint8Array | null): void {
    const member = this.#member;
    if (member === undefined) {
      this.#open(session, mac);
      return;
    }
    session.phase = "checking";
    const client = session.hello!.member;
    const check = (async () => {
      try {
        const problem = await member.check(client, undefined);
        if (session.framed.isClosed) return;
        if (problem !== undefined) {
          this.#refuse(session, problem);
          return;
        }
        const welcome = memberHello(member, client?.node ?? null);
        // An older client (a node or a clerk) reads the three fields it sent, or none.
        const older = client === undefined || client.peerNode === undefined;
        this.#open(session, mac, older ? { ...welcome, peerNode: undefined } : welcome);
      } catch (err) {
        this.#refuse(session, `it could not check who the client is (${messageOf(err)})`);
      }
    })();
    this.#checks.add(check);
    check.finally(() => this.#checks.delete(check));
  }

  /** Ends the handshake: from now on the connection carries calls. */
  #open(session: Session, mac: Uint8Array | null, member?: MemberHello): void {
    clearTimeout(session.timer);
    // It knows the secret (or there is none to guess): its address starts afresh.
    this.#throttle?.succeeded(session.host);
    session.phase = "open";
    const node = this.#member === undefined ? undefined : session.hello?.member?.node;
    if (node !== undefined && !session.framed.isClosed) {
      session.member = node;
      let open = this.#memberConns.get(node);
      if (open === undefined) this.#memberConns.set(node, open = new Set());
      open.add(session.framed);
    }
    session.framed.maxFrameBytes = this.#maxFrameBytes;
    session.framed.send(encodeServerMessage({ kind: "welcome", mac, member }));
  }

  closeMember(node: string, reason: string): Promise<void> {
    const open = [...(this.#memberConns.get(node) ?? [])];
    return Promise.all(open.map((framed) => framed.close(new Error(reason)))).then(() => {});
  }

  /** One connection from member `node` closed: the last one tells `onMemberGone`. */
  #memberClosed(node: string, framed: FramedConnection): void {
    const open = this.#memberConns.get(node);
    open?.delete(framed);
    if (open !== undefined && open.size > 0) return;
    this.#memberConns.delete(node);
    if (this.#closing !== undefined || this.#onMemberGone === undefined) return;
    try {
      this.#onMemberGone(node);
    } catch {
      // The listener's failure is its own; the connection is closed either way.
    }
  }

  /**
   * Tells the client why it is refused, then hangs up once that is written.
   * A `"failed"` refusal (a wrong secret, a malformed handshake: what a
   * guesser or a stranger does, not a misconfigured member) counts toward
   * the address's backoff.
   */
  #refuse(session: Session, reason: string, failed?: "failed"): void {
    const { framed } = session;
    if (framed.isClosed) return;
    clearTimeout(session.timer);
    this.#stats.handshakesRefused++;
    if (failed === undefined) {
      this.#summary?.count("handshake refused");
    } else {
      this.#stats.handshakesFailed++;
      this.#throttle?.failed(session.host);
      this.#summary?.count("handshake failed (wrong secret or malformed)");
    }
    framed.send(encodeServerMessage({ kind: "refuse", reason }));
    framed.finish(new Error(`refused in the handshake: ${reason}`));
    try {
      this.#onRefused?.(session.peer, reason);
    } catch {
      // The callback's failure is not the connection's.
    }
  }

  /** A frame missed its deadline or did not fit the budget: say so, then the connection closes. */
  #onReadLimit(session: Session, err: FrameTimeoutError | FrameBudgetError): void {
    const timedOut = err instanceof FrameTimeoutError;
    this.#stats[timedOut ? "frameTimeouts" : "frameBudgetRefusals"]++;
    this.#summary?.count(
      timedOut ? "connection closed (frame deadline)" : "connection closed (large-frame budget)",
    );
    if (session.phase === "open") {
      this.#send(session.framed, unreadable(new ProtocolError(err.message), 0));
    }
  }

  #onFrame(
    framed: FramedConnection,
    context: { peer: string; member: string | undefined },
    payload: Uint8Array,
  ): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(this.#codec, payload);
    } catch (err) {
      this.#send(framed, unreadable(err, requestIdOf(payload)));
      return;
    }
    if (envelope.kind !== "request") {
      const problem = new ProtocolError(
        `a server accepts only requests, but got a ${envelope.kind} envelope (id ${envelope.id})`,
      );
      this.#send(framed, unreadable(problem, 0));
      return;
    }
    const { peer, member } = context;
    answer(this.#server, envelope, member === undefined ? { peer } : { peer, member }).then(
      (result) => this.#send(framed, result),
      (err) => this.#send(framed, unreadable(err, envelope.id)),
    );
  }

  #send(framed: FramedConnection, envelope: AnswerEnvelope): void {
    if (framed.isClosed) return; // The answer has nowhere to go.
    let bytes: Uint8Array;
    try {
      bytes = encodeAnswer(this.#codec, envelope);
    } catch {
      // Even the failure could not be encoded (say, a giant error message).
      bytes = encodeEnvelope(this.#codec, {
        kind: "failure",
        id: envelope.id,
        failure: {
          code: "remote",
          remoteName: "Error",
          message: "the answer could not be encoded",
        },
      });
    }
    framed.send(bytes);
  }
}

/**
 * Reads the id of a request straight from its first bytes (`[0, id, ...]`
 * as a MessagePack array of 4), so a request whose arguments cannot be
 * decoded still gets an answer its caller can match. Returns 0 when the
 * bytes do not start like a request.
 */
function requestIdOf(bytes: Uint8Array): number {
  if (bytes.length < 3 || bytes[0] !== 0x94 || bytes[1] !== 0x00) return 0;
  const tag = bytes[2];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tag <= 0x7f) return tag;
  if (tag === 0xcc && bytes.length >= 4) return view.getUint8(3);
  if (tag === 0xcd && bytes.length >= 5) return view.getUint16(3);
  if (tag === 0xce && bytes.length >= 7) return view.getUint32(3);
  return 0;
}
