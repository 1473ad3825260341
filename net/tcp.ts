/**
 * The real network transport: RPC over TCP with length-prefixed MessagePack
 * frames.
 *
 * Every connection opens with a handshake before any call: the client names
 * the cluster it belongs to (`cluster`), and when the server has a shared
 * secret (`secret`), each end proves to the other that it knows it
 * (HMAC-SHA256 over both ends' fresh nonces; the secret never travels). A
 * connection that fails the handshake is refused with a reason and closed;
 * calls on it reject with {@linkcode RefusedError}.
 *
 * - {@linkcode serveTcp} serves an {@linkcode RpcServer} on a TCP port. Each
 *   connection carries any number of concurrent calls; bad input gets a
 *   failure answer or a closed connection, never a crash.
 * - {@linkcode TcpClient} calls one server over one lazily opened connection,
 *   multiplexing concurrent calls by id, with deadlines, abort signals and
 *   reconnection with exponential backoff.
 * - {@linkcode TcpTransport} hands out one cached {@linkcode TcpClient} per
 *   named peer.
 *
 * @module
 */
import { parseAddress } from "./address.ts";
import { type Clock, realClock } from "./clock.ts";
import { Codec, DEFAULT_MAX_MESSAGE_BYTES } from "./codec.ts";
import { deadline, delay } from "./async.ts";
import {
  answer,
  type AnswerEnvelope,
  decodeEnvelope,
  encodeAnswer,
  encodeEnvelope,
  type Envelope,
  settle,
  unreadable,
} from "./envelope.ts";
import {
  AbortedError,
  ClosedError,
  CodecError,
  ProtocolError,
  RefusedError,
  RpcError,
  TimeoutError,
  UnreachableError,
} from "./errors.ts";
import { formatAddr, FramedConnection } from "./frame.ts";
import {
  checkCluster,
  checkSecret,
  decodeHello,
  decodeProof,
  decodeServerMessage,
  describeCluster,
  encodeHello,
  encodeProof,
  encodeServerMessage,
  HANDSHAKE_MAX_FRAME_BYTES,
  type Hello,
  httpLookalike,
  importSecret,
  type MemberHello,
  proofOf,
  randomNonce,
  timingSafeEqual,
} from "./handshake.ts";
import type { Random } from "./random.ts";
import type { RpcServer } from "./rpc_server.ts";
import type { CallOptions, ClientEnd, Transport } from "./transport.ts";

export type { MemberHello } from "./handshake.ts";

/**
 * The default deadline of a TCP call, in milliseconds (see
 * {@linkcode TcpClientOptions.timeoutMs}).
 *
 * @example
 * ```ts
 * import { DEFAULT_TCP_TIMEOUT_MS } from "@distkit/distkit/net";
 *
 * DEFAULT_TCP_TIMEOUT_MS; // 10000
 * ```
 */
export const DEFAULT_TCP_TIMEOUT_MS: number = 10_000;

/**
 * How long, by default, a TCP server waits for a new connection to finish
 * its handshake before it hangs up (see
 * {@linkcode ServeTcpOptions.handshakeTimeoutMs}), in milliseconds.
 *
 * @example
 * ```ts
 * import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from "@distkit/distkit/net";
 *
 * DEFAULT_HANDSHAKE_TIMEOUT_MS; // 5000
 * ```
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS: number = 5_000;

/** Answers queued for one connection before the server stops reading its requests. */
const SERVER_BACKLOG_BYTES = 1024 * 1024;

/** Largest request id; ids wrap around to 1 after it (0 is reserved). */
const MAX_ID = 0xffff_ffff;

/**
 * A host and port.
 *
 * @example
 * ```ts
 * import type { TcpAddr } from "@distkit/distkit/net";
 *
 * const addr: TcpAddr = { hostname: "127.0.0.1", port: 7000 };
 * ```
 */
export interface TcpAddr {
  /** The host name or IP address. */
  hostname: string;
  /** The TCP port. */
  port: number;
}

/**
 * Who may connect: the cluster id and the optional shared secret, the same
 * on {@linkcode serveTcp}, {@linkcode TcpClient} and {@linkcode TcpTransport}.
 *
 * A client is let in only when it names the server's cluster, and, when the
 * server has a secret, proves that it knows it; a client with a secret lets
 * a server in only when the server proves the same. Both ends must have the
 * same secret, or none.
 *
 * The secret authenticates the connection when it opens; it does not
 * encrypt or sign the calls that follow, so anyone who can read or change
 * the traffic on the network can still read or change calls. Run over a
 * network you trust (or a VPN or TLS tunnel). Anyone who records a handshake
 * can test guesses of the secret offline, so use a long random one (say 32
 * random bytes), not a password.
 *
 * @example
 * ```ts
 * import type { ClusterOptions } from "@distkit/distkit/net";
 *
 * const options: ClusterOptions = {
 *   cluster: "orders-prod",
 *   secret: Deno.env.get("DISTKIT_SECRET") ?? crypto.getRandomValues(new Uint8Array(32)),
 * };
 * ```
 */
export interface ClusterOptions {
  /**
   * The cluster id: a server serves only clients that give the same one. It
   * is not secret (a refusal names it). At most 256 characters. Default
   * `""` (the unnamed cluster).
   */
  cluster?: string;
  /**
   * The shared secret (a UTF-8 string or bytes; not empty). Default: none,
   * so connections are not authenticated.
   */
  secret?: string | Uint8Array;
  /**
   * Set on a cluster member (a node): it says who it is in the handshake,
   * and checks who the other end is. Default: none (a client, or a server
   * that does not check).
   */
  member?: MemberOptions;
}

/**
 * How a cluster member identifies itself and checks the other end in the
 * handshake (see `rsm/identity.ts`, which implements it for the KV nodes).
 *
 * @example
 * ```ts
 * import type { MemberOptions } from "@distkit/distkit/net";
 *
 * const known = new Map([["2", "c0ffee"]]);
 * const member: MemberOptions = {
 *   node: "1",
 *   incarnation: "5eed",
 *   knownIncarnation: (node) => known.get(node),
 *   check: (peer) => peer === undefined || known.get(peer.node) === peer.incarnation
 *     ? undefined
 *     : "another incarnation",
 * };
 * ```
 */
export interface MemberOptions {
  /** This node's id. */
  node: string;
  /** The incarnation of this node's data folder. */
  incarnation: string;
  /** The incarnation this node knows `node` by, if any (sent to that node). */
  knownIncarnation(node: string): string | undefined;
  /**
   * Checks the other end: `peer` is what it said of itself (undefined: it is
   * not a member, for example a client), `expected` the node a client meant
   * to reach (its `peer` option; on the server side, undefined). Returns
   * why to refuse it, or undefined to let the handshake go on. Runs before
   * any call on the connection.
   */
  check(
    peer: MemberHello | undefined,
    expected: string | undefined,
  ): string | undefined | Promise<string | undefined>;
}

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
 * - a handler that throws or never returns affects only its own call.
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
  /** `hello`: waiting for it; `proof`: challenged; `checking`: busy; `open`: serving. */
  phase: "hello" | "proof" | "checking" | "open";
  hello: Hello | undefined;
  serverNonce: Uint8Array | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
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
    this.#accepting = this.#acceptLoop();
  }

  get connections(): number {
    return this.#conns.size;
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
    while (this.#checks.size > 0) await Promise.all(this.#checks);
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
      this.#adopt(conn);
    }
  }

  #adopt(conn: Deno.TcpConn): void {
    const peer = formatAddr(conn.remoteAddr);
    const session: Session = {
      framed: undefined as unknown as FramedConnection,
      peer,
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
      onFrame: (payload) =>
        session.phase === "open"
          ? this.#onFrame(framed, peer, payload)
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
        ),
      onClose: () => {
        clearTimeout(session.timer);
        this.#conns.delete(framed);
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
        this.#refuse(session, messageOf(err));
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
        this.#refuse(session, messageOf(err));
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
        this.#open(session, mac, {
          node: member.node,
          incarnation: member.incarnation,
          peerIncarnation: client ? member.knownIncarnation(client.node) ?? null : null,
        });
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
    session.phase = "open";
    session.framed.maxFrameBytes = this.#maxFrameBytes;
    session.framed.send(encodeServerMessage({ kind: "welcome", mac, member }));
  }

  /** Tells the client why it is refused, then hangs up once that is written. */
  #refuse(session: Session, reason: string): void {
    const { framed } = session;
    if (framed.isClosed) return;
    clearTimeout(session.timer);
    framed.send(encodeServerMessage({ kind: "refuse", reason }));
    framed.finish(new Error(`refused in the handshake: ${reason}`));
    try {
      this.#onRefused?.(session.peer, reason);
    } catch {
      // The callback's failure is not the connection's.
    }
  }

  #onFrame(framed: FramedConnection, peer: string, payload: Uint8Array): void {
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
    answer(this.#server, envelope, { peer }).then(
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

/**
 * How long a {@linkcode TcpClient} waits before reconnecting after a failed
 * connection attempt: `baseMs` after the first failure, doubling with each
 * further failure up to `maxMs`. With a `random`, each wait is drawn from
 * [wait/2, wait].
 *
 * @example
 * ```ts
 * import type { BackoffOptions } from "@distkit/distkit/net";
 *
 * const backoff: BackoffOptions = { baseMs: 20, maxMs: 1000 };
 * ```
 */
export interface BackoffOptions {
  /** The wait after the first failure, in milliseconds. Default 50. */
  baseMs?: number;
  /** The longest wait, in milliseconds. Default 2,000. */
  maxMs?: number;
  /**
   * Calls made while the client waits fail at once with
   * {@linkcode UnreachableError} instead of waiting for the next attempt:
   * for a caller with other servers to try (a KV clerk), which should not be
   * held up by one that is down. Default false.
   */
  failFast?: boolean;
}

/**
 * Options for {@linkcode TcpClient}.
 *
 * @example
 * ```ts
 * import { Random, type TcpClientOptions } from "@distkit/distkit/net";
 *
 * const options: TcpClientOptions = {
 *   timeoutMs: 2_000,
 *   backoff: { baseMs: 20, maxMs: 500 },
 *   random: new Random(7),
 *   cluster: "blue",
 *   secret: "a long random string shared by the cluster",
 * };
 * ```
 */
export interface TcpClientOptions extends ClusterOptions {
  /** The peer's name in errors and in `ClientEnd.peer`. Default: the address. */
  peer?: string;
  /**
   * The deadline of a call without its own `timeoutMs`, in milliseconds;
   * `Infinity` waits for ever. A connection attempt (connecting and the
   * handshake) that takes longer is abandoned and counts as a failed one.
   * Default 10,000.
   */
  timeoutMs?: number;
  /** The largest frame sent or accepted, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /** The clock deadlines and backoff are timed on. Default: the real clock. */
  clock?: Clock;
  /** Jitter for the reconnect backoff. Default: none. */
  random?: Random;
  /**
   * How long to wait before reconnecting after a failed attempt; after a
   * refused one, the client waits `backoff.maxMs`.
   */
  backoff?: BackoffOptions;
}

interface Link {
  framed: FramedConnection;
  /** Calls sent on this connection and not yet answered, by id. */
  pending: Map<number, CallState>;
}

interface CallState {
  id: number;
  method: string;
  done: boolean;
  link: Link | undefined;
  /** Created only when the call has to wait (backoff); aborted when it ends. */
  controller: AbortController | undefined;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Calls one TCP server (see {@linkcode serveTcp}) over one connection.
 *
 * The connection opens on the first call and carries any number of
 * concurrent calls, matched to their answers by id. Calls reject with:
 *
 * - {@linkcode UnreachableError} when the server cannot be reached (the OS
 *   error is the `cause`), does not finish the handshake in time, or the
 *   connection is lost before the answer arrives (the handler may or may not
 *   have run); the next call reconnects;
 * - {@linkcode RefusedError} when the handshake fails: the server serves
 *   another cluster, or the shared secrets do not match (see
 *   {@linkcode ClusterOptions}); no call ran;
 * - {@linkcode TimeoutError} when the deadline passes (a late answer is
 *   ignored), {@linkcode AbortedError} when the call's signal fires;
 * - {@linkcode ClosedError} once {@linkcode TcpClient.close} was called;
 * - the typed failure the server reported (`RemoteError`,
 *   `UnknownServiceError`, `BadArgumentsError`, ...);
 * - {@linkcode CodecError} or {@linkcode ProtocolError} when the server sends
 *   something that is not a valid answer; the connection is then closed.
 *
 * After a failed connection attempt, the client waits `backoff.baseMs`
 * before the next one, doubling up to `backoff.maxMs`; a call made in that
 * window waits for it to end and then tries once, or fails at once with
 * {@linkcode UnreachableError} when its deadline would pass first (or
 * always, with `backoff.failFast`). A
 * successful connection resets the backoff. A connection attempt lasts at
 * most the client's `timeoutMs`, and {@linkcode TcpClient.close} ends one in
 * progress at once.
 *
 * Every connection starts with the handshake, and calls go out only once it
 * has succeeded. A refusal is not retried in a loop: for `backoff.maxMs`
 * after it (2 s by default) the client makes no new attempt, and calls fail
 * at once with the same {@linkcode RefusedError}; then the next call tries
 * again, so a server whose options were fixed is reached without a new
 * client.
 *
 * @example
 * ```ts
 * import { RpcServer, serveTcp, TcpClient, TimeoutError } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("KV", { Get: ({ key }: { key: string }) => `value of ${key}` });
 * const server = serveTcp(rpc);
 * const client = new TcpClient(server.address, { timeoutMs: 1_000 });
 * const values = await Promise.all(["a", "b", "c"].map((key) => client.call("KV.Get", { key })));
 * assert.deepEqual(values, ["value of a", "value of b", "value of c"]);
 * await client.close();
 * await server.close();
 * ```
 */
export class TcpClient implements ClientEnd {
  /** The peer's name (the address unless the `peer` option was given). */
  readonly peer: string;
  /** The server's address, `"host:port"`. */
  readonly address: string;
  #hostname: string;
  #port: number;
  #codec: Codec;
  #maxFrameBytes: number;
  #timeoutMs: number;
  #clock: Clock;
  #random: Random | undefined;
  #baseMs: number;
  #maxMs: number;
  #link: Link | undefined;
  #connecting: Promise<Link> | undefined;
  readonly #failFast: boolean;
  /** Aborts the connection attempt in progress (on close, or when it takes too long). */
  #connectAbort: AbortController | undefined;
  #failures = 0;
  #retryAt = 0;
  #lastConnectError: unknown;
  /** The refusal that ended the last attempt, while the client waits after it. */
  #refusal: RefusedError | undefined;
  #cluster: string;
  #secret: Uint8Array | undefined;
  #key: Promise<CryptoKey> | undefined;
  #member: MemberOptions | undefined;
  #nextId = 1;
  #calls = new Set<CallState>();
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * Creates a client; nothing is opened until the first call.
   *
   * @param address The server's `"host:port"` (`"[::1]:7000"` for IPv6).
   * @param options Deadlines, limits, backoff, clock, jitter, cluster and secret.
   * @throws {TypeError} when the address is not `host:port`, or an option has the wrong type.
   * @throws {RangeError} when an option is out of range.
   */
  constructor(address: string, options: TcpClientOptions = {}) {
    const { hostname, port } = parseAddress(address);
    this.#hostname = hostname;
    this.#port = port;
    this.address = formatAddr({ hostname, port });
    this.peer = options.peer ?? this.address;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TCP_TIMEOUT_MS;
    checkTimeout(this.#timeoutMs, "timeoutMs");
    this.#maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes);
    this.#codec = new Codec({ maxMessageBytes: this.#maxFrameBytes });
    this.#clock = options.clock ?? realClock;
    this.#random = options.random;
    this.#baseMs = options.backoff?.baseMs ?? 50;
    this.#maxMs = options.backoff?.maxMs ?? 2000;
    this.#failFast = options.backoff?.failFast ?? false;
    if (!(this.#baseMs >= 0) || !(this.#maxMs >= this.#baseMs) || !Number.isFinite(this.#maxMs)) {
      throw new RangeError(
        `backoff needs 0 <= baseMs <= maxMs < Infinity, got baseMs ${this.#baseMs} and maxMs ${this.#maxMs}`,
      );
    }
    this.#cluster = checkCluster(options.cluster);
    this.#secret = checkSecret(options.secret);
    this.#member = options.member;
  }

  /** The cluster this client belongs to (`""`: the unnamed cluster). */
  get cluster(): string {
    return this.#cluster;
  }

  /** Whether a connection is open right now. */
  get connected(): boolean {
    return this.#link !== undefined;
  }

  /** How many calls are waiting for an answer (or for a connection). */
  get pendingCalls(): number {
    return this.#calls.size;
  }

  /**
   * Calls `method` (`"Service.Method"`) on the server with `args` and
   * resolves with the answer; see {@linkcode TcpClient} for the errors.
   *
   * @param method The full method name, `"Service.Method"`.
   * @param args The arguments; anything MessagePack can carry.
   * @param options A deadline overriding the client's, and an abort signal.
   */
  call<T = unknown>(method: string, args?: unknown, options: CallOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#what()));
    if (typeof method !== "string") {
      return Promise.reject(
        new TypeError(`method must be a "Service.Method" string, got ${typeof method}`),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    try {
      checkTimeout(timeoutMs, "CallOptions.timeoutMs");
    } catch (err) {
      return Promise.reject(err);
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new AbortedError(method, { cause: signal.reason }));
    const id = this.#allocateId();
    let payload: Uint8Array;
    try {
      payload = encodeEnvelope(this.#codec, { kind: "request", id, method, args });
    } catch (err) {
      return Promise.reject(err); // CodecError or FrameTooLargeError
    }
    const state: CallState = {
      id,
      method,
      done: false,
      link: undefined,
      controller: undefined,
      resolve: () => {},
      reject: () => {},
    };
    const work = new Promise<unknown>((resolve, reject) => {
      state.resolve = resolve;
      state.reject = reject;
    });
    this.#calls.add(state);
    const deadlineAt = this.#clock.now() + timeoutMs;
    this.#start(state, payload, deadlineAt);
    return deadline(work, {
      timeoutMs: Number.isFinite(timeoutMs) ? timeoutMs : undefined,
      signal,
      clock: this.#clock,
      onTimeout: () => {
        const err = new TimeoutError(method, timeoutMs);
        this.#reject(state, err);
        return err;
      },
      onAbort: (reason) => {
        const err = new AbortedError(method, { cause: reason });
        this.#reject(state, err);
        return err;
      },
    }) as Promise<T>;
  }

  /**
   * Closes the client: calls in progress reject with {@linkcode ClosedError},
   * and so does every later call. Resolves once the connection (and any
   * connection attempt in progress) is closed. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const err = new ClosedError(this.#what());
    for (const state of [...this.#calls]) this.#reject(state, err);
    const connecting = this.#connecting;
    // A connection attempt to a host that does not answer can hang for minutes.
    this.#connectAbort?.abort(err);
    this.#closing = (async () => {
      await connecting?.catch(() => {});
      await this.#link?.framed.close(err);
    })();
    return this.#closing;
  }

  #what(): string {
    return `TCP client for ${this.peer}`;
  }

  #allocateId(): number {
    const pending = this.#link?.pending;
    let id = this.#nextId;
    while (pending?.has(id)) id = id >= MAX_ID ? 1 : id + 1;
    this.#nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }

  async #start(state: CallState, payload: Uint8Array, deadlineAt: number): Promise<void> {
    try {
      const link = this.#link ?? await this.#linkFor(state, deadlineAt);
      if (state.done) return;
      if (link.framed.isClosed) {
        throw new UnreachableError(
          this.peer,
          `the connection to ${this.address} was lost before the request was sent; try again`,
        );
      }
      state.link = link;
      link.pending.set(state.id, state);
      link.framed.send(payload);
    } catch (err) {
      this.#reject(state, err);
    }
  }

  async #linkFor(state: CallState, deadlineAt: number): Promise<Link> {
    let waited = false;
    while (true) {
      if (this.#closed) throw new ClosedError(this.#what());
      if (this.#link) return this.#link;
      if (this.#connecting) return await this.#connecting;
      const wait = this.#retryAt - this.#clock.now();
      if (wait > 0 && this.#refusal) {
        const { reason, refusedBy } = this.#refusal;
        throw new RefusedError(this.peer, this.address, reason, refusedBy, {
          cause: this.#refusal,
        });
      }
      if (wait > 0) {
        const why = `the last connection attempt to ${this.address} failed ` +
          `(${messageOf(this.#lastConnectError)})`;
        if (waited || this.#failFast) {
          throw new UnreachableError(
            this.peer,
            `${why}; the client is backing off, try again later`,
            {
              cause: this.#lastConnectError,
            },
          );
        }
        if (deadlineAt - this.#clock.now() < wait) {
          throw new UnreachableError(
            this.peer,
            `${why}; the next attempt is in ${Math.ceil(wait)} ms, after this call's deadline`,
            { cause: this.#lastConnectError },
          );
        }
        state.controller ??= new AbortController();
        await delay(wait, { clock: this.#clock, signal: state.controller.signal });
        waited = true;
        continue;
      }
      return await this.#connect();
    }
  }

  #connect(): Promise<Link> {
    const abort = new AbortController();
    this.#connectAbort = abort;
    // An attempt that outlasts a call's deadline is abandoned, so that a host
    // that stopped answering cannot stall the client until the OS gives up.
    const limit = Number.isFinite(this.#timeoutMs)
      ? this.#clock.setTimer(this.#timeoutMs, () => {
        abort.abort(new Error(`no answer within ${this.#timeoutMs} ms (timeoutMs)`));
      })
      : undefined;
    const attempt = (async (): Promise<Link> => {
      try {
        let conn: Deno.TcpConn;
        try {
          conn = await Deno.connect({
            hostname: this.#hostname,
            port: this.#port,
            transport: "tcp",
            signal: abort.signal,
          });
        } catch (caught) {
          if (this.#closed) throw new ClosedError(this.#what());
          const err = abort.signal.aborted ? abort.signal.reason : caught;
          const wait = this.#failed(err);
          throw new UnreachableError(
            this.peer,
            `cannot connect to ${this.address} (${messageOf(err)}); check that the server is ` +
              `running there; the next attempt waits ${Math.ceil(wait)} ms`,
            { cause: err },
          );
        }
        if (this.#closed) {
          conn.close();
          throw new ClosedError(this.#what());
        }
        let link: Link;
        try {
          link = await this.#handshake(conn, abort.signal);
        } catch (caught) {
          if (this.#closed) throw new ClosedError(this.#what());
          if (caught instanceof RefusedError) {
            // Retrying at once would be refused again: wait as long as the
            // backoff ever does.
            const window = this.#maxMs;
            const wait = this.#random ? window / 2 + this.#random.next() * (window / 2) : window;
            this.#retryAt = this.#clock.now() + wait;
            this.#lastConnectError = caught;
            this.#refusal = caught;
            throw caught;
          }
          const err = abort.signal.aborted ? abort.signal.reason : caught;
          const wait = this.#failed(err);
          throw new UnreachableError(
            this.peer,
            `the handshake with ${this.address} failed (${messageOf(err)}); check that a ` +
              `distkit server is running there; the next attempt waits ${Math.ceil(wait)} ms`,
            { cause: err },
          );
        }
        this.#failures = 0;
        this.#retryAt = 0;
        this.#lastConnectError = undefined;
        this.#refusal = undefined;
        return link;
      } finally {
        limit?.cancel();
        this.#connecting = undefined;
        this.#connectAbort = undefined;
      }
    })();
    this.#connecting = attempt;
    return attempt;
  }

  /** Counts a failed attempt and returns how long to wait before the next one. */
  #failed(err: unknown): number {
    this.#failures++;
    const window = Math.min(this.#maxMs, this.#baseMs * 2 ** (this.#failures - 1));
    const wait = this.#random ? window / 2 + this.#random.next() * (window / 2) : window;
    this.#retryAt = this.#clock.now() + wait;
    this.#lastConnectError = err;
    this.#refusal = undefined;
    return wait;
  }

  /**
   * Runs the client's side of the handshake on a new connection and resolves
   * with the link (adopted as `#link`) once the server has let this client
   * in. Rejects with a {@linkcode RefusedError} when either end refuses the
   * other, or with why the connection was lost (or `signal` fired) before
   * the handshake ended; the connection is closed by then.
   */
  async #handshake(conn: Deno.TcpConn, signal: AbortSignal): Promise<Link> {
    const link: Link = { framed: undefined as unknown as FramedConnection, pending: new Map() };
    const done = Promise.withResolvers<void>();
    let phase: "hello" | "proof" | "checking" | "open" = "hello";
    let busy: Promise<void> = Promise.resolve();
    let serverProof: Uint8Array | undefined;
    const nonce = randomNonce();
    const secret = this.#secret;
    const fail = (err: unknown) => {
      done.reject(err);
      link.framed.close(err);
    };
    const refuse = (reason: string) =>
      fail(new RefusedError(this.peer, this.address, reason, "client"));
    const member = this.#member;
    const open = () => {
      phase = "open";
      link.framed.maxFrameBytes = this.#maxFrameBytes;
      // Adopted at once, so that a close from now on finds it (onClose).
      this.#link = link;
      done.resolve();
    };
    /** Runs a step that awaits Web Crypto; closing waits for it. */
    const later = (step: () => Promise<void>) => {
      phase = "checking";
      busy = step().catch((err) => refuse(`the handshake failed here (${messageOf(err)})`));
    };
    const onHandshakeFrame = (payload: Uint8Array) => {
      if (phase === "checking") {
        refuse("it sent a frame before this client finished the handshake");
        return;
      }
      let message;
      try {
        message = decodeServerMessage(payload);
      } catch (err) {
        refuse(
          `it did not answer the hello with a distkit handshake (${messageOf(err)}); ` +
            `check that a distkit server of the same version runs there`,
        );
        return;
      }
      if (message.kind === "refuse") {
        fail(new RefusedError(this.peer, this.address, message.reason, "server"));
        return;
      }
      if (phase === "hello" && message.kind === "challenge") {
        if (secret === undefined) {
          refuse(
            "it asks for the cluster's shared secret, and this client has none; " +
              "give the client the same secret option as the server",
          );
          return;
        }
        const serverNonce = message.nonce;
        later(async () => {
          this.#key ??= importSecret(secret);
          const key = await this.#key;
          const mac = await proofOf(key, "client", this.#cluster, nonce, serverNonce);
          // What the server's welcome must carry.
          serverProof = await proofOf(key, "server", this.#cluster, nonce, serverNonce);
          if (link.framed.isClosed) return;
          phase = "proof";
          link.framed.send(encodeProof(mac));
        });
        return;
      }
      /** Opens once the server's member identity is checked (when this client is a member). */
      const admit = (server: MemberHello | undefined) => {
        if (member === undefined) {
          open();
          return;
        }
        later(async () => {
          const problem = await member.check(server, this.peer);
          if (link.framed.isClosed) return;
          if (problem !== undefined) refuse(problem);
          else open();
        });
      };
      if (phase === "hello" && message.kind === "welcome") {
        if (secret !== undefined) {
          refuse(
            "it let this client in without checking the shared secret, so it does not have " +
              "it; give the server the same secret option as the client (or neither one)",
          );
          return;
        }
        admit(message.member);
        return;
      }
      if (phase === "proof" && message.kind === "welcome") {
        const mac = message.mac;
        if (mac === null) {
          refuse(
            "it did not prove that it knows the shared secret; give the server the same " +
              "secret option as the client",
          );
          return;
        }
        if (!timingSafeEqual(serverProof!, mac)) {
          refuse(
            "its proof of the shared secret is wrong, so it has another secret; " +
              "give the client and the server the same secret option",
          );
          return;
        }
        admit(message.member);
        return;
      }
      refuse(`it sent a ${message.kind} message out of turn in the handshake`);
    };
    link.framed = new FramedConnection(conn, {
      maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES,
      onFrame: (payload) =>
        phase === "open" ? this.#onFrame(link, payload) : onHandshakeFrame(payload),
      // Nothing to tell the server: fail the pending calls at once.
      onFrameTooLarge: (err) =>
        phase === "open" ? link.framed.close(err) : refuse(
          httpLookalike(err.size) === "response"
            ? "this looks like an HTTP server; distkit clients use the node's TCP port"
            : `it announced a frame of ${err.size} bytes during the handshake, where frames ` +
              `are at most ${HANDSHAKE_MAX_FRAME_BYTES} bytes; check that a distkit server of ` +
              `the same version runs there`,
        ),
      onClose: (reason) =>
        phase === "open"
          ? this.#onClose(link, reason)
          : done.reject(reason ?? new Error("the connection closed during the handshake")),
    });
    const onAbort = () => fail(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      link.framed.send(
        encodeHello({
          cluster: this.#cluster,
          nonce,
          hasSecret: secret !== undefined,
          member: member && {
            node: member.node,
            incarnation: member.incarnation,
            peerIncarnation: member.knownIncarnation(this.peer) ?? null,
          },
        }),
      );
      await done.promise;
      return link;
    } catch (err) {
      await link.framed.close(err);
      await busy;
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  #onFrame(link: Link, payload: Uint8Array): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(this.#codec, payload);
    } catch (err) {
      const end = "the connection was closed; the next call reconnects";
      link.framed.close(
        err instanceof CodecError
          ? new CodecError(
            `the answer from ${this.address} cannot be decoded (${err.message}); ${end}`,
            {
              cause: err,
            },
          )
          : err instanceof ProtocolError
          ? new ProtocolError(
            `${this.address} sent a frame that is not an answer (${err.message}); ${end}`,
          )
          : err,
      );
      return;
    }
    if (envelope.kind === "request") {
      link.framed.close(
        new ProtocolError(
          `${this.address} sent a request to a client, which only accepts answers; the connection was closed`,
        ),
      );
      return;
    }
    if (envelope.kind === "failure" && envelope.id === 0) {
      const { code, message } = envelope.failure;
      link.framed.close(
        new UnreachableError(
          this.peer,
          `the server could not read a frame from this client (${code}: ${message}); ` +
            `the connection was closed`,
        ),
      );
      return;
    }
    const state = link.pending.get(envelope.id);
    if (state === undefined) return; // The call already timed out or was aborted.
    let value: unknown;
    try {
      value = settle(state.method, envelope);
    } catch (err) {
      this.#reject(state, err);
      return;
    }
    this.#resolve(state, value);
  }

  #onClose(link: Link, reason: unknown): void {
    if (this.#link === link) this.#link = undefined;
    if (link.pending.size === 0) return;
    const err = reason instanceof RpcError ? reason : new UnreachableError(
      this.peer,
      `connection lost (${messageOf(reason)}); the call may or may not have run, ` +
        `and the next call reconnects`,
      { cause: reason },
    );
    for (const state of [...link.pending.values()]) this.#reject(state, err);
  }

  #end(state: CallState): boolean {
    if (state.done) return false;
    state.done = true;
    this.#calls.delete(state);
    state.link?.pending.delete(state.id);
    state.controller?.abort();
    return true;
  }

  #resolve(state: CallState, value: unknown): void {
    if (this.#end(state)) state.resolve(value);
  }

  #reject(state: CallState, err: unknown): void {
    if (this.#end(state)) state.reject(err);
  }
}

/**
 * Options for {@linkcode TcpTransport}: the peers, plus the options every
 * {@linkcode TcpClient} it makes shares.
 *
 * @example
 * ```ts
 * import type { TcpTransportOptions } from "@distkit/distkit/net";
 *
 * const options: TcpTransportOptions = {
 *   peers: { "kv-1": "127.0.0.1:7001", "kv-2": "127.0.0.1:7002" },
 *   timeoutMs: 1_000,
 *   cluster: "kv-prod",
 *   secret: Deno.env.get("DISTKIT_SECRET"),
 * };
 * ```
 */
export interface TcpTransportOptions extends Omit<TcpClientOptions, "peer"> {
  /** Peer name to `"host:port"`. */
  peers: Record<string, string>;
}

/**
 * A {@linkcode Transport} over TCP: `connect(name)` returns the one
 * {@linkcode TcpClient} for that peer, made on first use.
 *
 * @example
 * ```ts
 * import { RpcServer, serveTcp, TcpTransport } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("Health", { Ping: () => "pong" });
 * const server = serveTcp(rpc);
 * const transport = new TcpTransport({ peers: { a: server.address } });
 * assert.equal(await transport.connect("a").call("Health.Ping"), "pong");
 * assert.equal(transport.connect("a"), transport.connect("a"));
 * await transport.close();
 * await server.close();
 * ```
 */
export class TcpTransport implements Transport {
  #peers = new Map<string, string>();
  #clients = new Map<string, TcpClient>();
  #options: Omit<TcpClientOptions, "peer">;
  #closed = false;

  /**
   * Creates a transport; no connection opens until a client makes a call.
   *
   * @param options The peers and the client options.
   * @throws {TypeError} when a peer's address is not `host:port`.
   */
  constructor(options: TcpTransportOptions) {
    const { peers, ...clientOptions } = options;
    for (const [name, address] of Object.entries(peers)) {
      parseAddress(address, { peer: name });
      this.#peers.set(name, address);
    }
    this.#options = clientOptions;
  }

  /** The names of the known peers. */
  get peers(): string[] {
    return [...this.#peers.keys()];
  }

  /**
   * The client for `peer`, created on first use and cached.
   *
   * @throws {Error} when `peer` is not in the `peers` option.
   * @throws {ClosedError} after {@linkcode TcpTransport.close}.
   */
  connect(peer: string): TcpClient {
    if (this.#closed) throw new ClosedError("TCP transport");
    let client = this.#clients.get(peer);
    if (client) return client;
    const address = this.#peers.get(peer);
    if (address === undefined) {
      const known = this.#peers.size === 0 ? "none" : [...this.#peers.keys()].join(", ");
      throw new Error(
        `unknown peer "${peer}" (known peers: ${known}); add it to the peers option of TcpTransport`,
      );
    }
    client = new TcpClient(address, { ...this.#options, peer });
    this.#clients.set(peer, client);
    return client;
  }

  /** Closes every client; later `connect` calls throw {@linkcode ClosedError}. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#clients.values()].map((client) => client.close()));
  }
}

/**
 * A transport whose peer names are their TCP addresses (`host:port`).
 *
 * @example
 * ```ts
 * import { AddressTransport } from "@distkit/distkit/net";
 *
 * const transport = new AddressTransport({ timeoutMs: 1000 });
 * transport.connect("127.0.0.1:7001"); // connects lazily, on the first call
 * await transport.close();
 * ```
 */
export class AddressTransport implements Transport {
  readonly #options: Omit<TcpClientOptions, "peer">;
  readonly #clients = new Map<string, TcpClient>();
  #closed = false;

  /** Creates the transport; every connection uses `options` (timeout, cluster id, secret...). */
  constructor(options: Omit<TcpClientOptions, "peer"> = {}) {
    this.#options = options;
  }

  /**
   * The connection to the node at `address`.
   *
   * @throws {RangeError} when `address` is not host:port.
   * @throws {ClosedError} after {@linkcode AddressTransport.close}.
   */
  connect(address: string): TcpClient {
    if (this.#closed) throw new ClosedError("TCP transport");
    let client = this.#clients.get(address);
    if (!client) {
      parseAddress(address);
      client = new TcpClient(address, this.#options);
      this.#clients.set(address, client);
    }
    return client;
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
  }
}

function checkMaxFrameBytes(value: number | undefined): number {
  const max = value ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(max) || max < 1 || max > 0xffff_ffff) {
    throw new RangeError(
      `maxFrameBytes must be an integer from 1 to 4294967295 (a 4-byte length prefix), got ${max}`,
    );
  }
  return max;
}

function checkTimeout(timeoutMs: number, name: string): void {
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds, got ${timeoutMs}`);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
