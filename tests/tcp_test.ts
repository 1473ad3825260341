/**
 * The TCP transport against real listeners on 127.0.0.1: calls, concurrency,
 * deadlines, reconnection, and every kind of bad input on the wire, both
 * after a valid handshake and in place of one. (Cluster ids and shared
 * secrets: tcp_auth_test.ts.)
 */
import assert from "node:assert/strict";
import { Encoder } from "@msgpack/msgpack";
import { deadline, delay } from "../net/async.ts";
import { Codec, defaultCodec } from "../net/codec.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../net/envelope.ts";
import {
  AbortedError,
  BadArgumentsError,
  ClosedError,
  CodecError,
  FrameTooLargeError,
  ProtocolError,
  RemoteError,
  RpcError,
  TimeoutError,
  UnknownMethodError,
  UnknownServiceError,
  UnreachableError,
} from "../net/errors.ts";
import { encodeFrames, FrameDecoder } from "../net/frame.ts";
import {
  decodeHello,
  decodeServerMessage,
  encodeHello,
  encodeProof,
  encodeServerMessage,
  HANDSHAKE_MAX_FRAME_BYTES,
  importSecret,
  MAC_BYTES,
  NONCE_BYTES,
  proofOf,
  randomNonce,
  type ServerMessage,
} from "../net/handshake.ts";
import { FakeServer, rejectsWith, waitFor } from "./tcp_helpers.ts";
import { Random, seedFromEnv } from "../net/random.ts";
import { expectShape, RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient, type TcpServer, TcpTransport } from "../net/tcp.ts";

// ---------------------------------------------------------------------------
// Helpers

/** Handlers that wait on a gate; the test opens every gate before it ends. */
class Gates {
  #open = new Set<() => void>();
  /** A promise that resolves when the test calls `releaseAll`. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#open.add(resolve));
  }
  get waiting(): number {
    return this.#open.size;
  }
  releaseAll(): void {
    for (const resolve of this.#open) resolve();
    this.#open.clear();
  }
}

function makeServer(gates = new Gates()): RpcServer {
  const rpc = new RpcServer();
  rpc.addService("Echo", {
    Say: (args: unknown) => args,
    Fail: ({ message }: { message: string }) => {
      throw new Error(message);
    },
    FailType: () => {
      throw new TypeError("not a number");
    },
    Shape: (args: unknown) => {
      const { key, n } = expectShape<{ key: string; n: number }>(args, {
        key: "string",
        n: "integer",
      });
      return key.repeat(n);
    },
    Hang: async (args: unknown) => {
      await gates.wait();
      return args;
    },
    Big: ({ size }: { size: number }) => "x".repeat(size),
    Peer: (_args: unknown, context: { peer?: string }) => context.peer,
  });
  return rpc;
}

function portOf(server: TcpServer): number {
  return server.addr.port;
}

/** A valid hello frame, for a server with no secret. */
function helloFrame(cluster = ""): Uint8Array {
  return frame(encodeHello({ cluster, nonce: randomNonce(), hasSecret: false }));
}

/**
 * A raw socket speaking frames by hand, for sending bad input. By default it
 * says a valid hello and waits for the welcome first, so what follows
 * reaches the frame parser of an open connection.
 */
class RawPeer {
  readonly conn: Deno.TcpConn;
  /**
   * The server's handshake messages: any challenge, then the welcome or the
   * refusal (or what could not be decoded).
   */
  readonly handshake: (ServerMessage | Error)[] = [];
  /** The envelopes after the handshake (or what could not be decoded). */
  readonly frames: (Envelope | Error)[] = [];
  eof = false;
  #read = 0;
  #shaken = 0;
  #reader: Promise<void>;
  #waiters: (() => void)[] = [];

  static async open(port: number, options: { hello?: boolean } = {}): Promise<RawPeer> {
    const peer = new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
    if (options.hello ?? true) {
      await peer.write(helloFrame());
      assert.deepEqual(await peer.nextHandshake(), { kind: "welcome", mac: null });
    }
    return peer;
  }

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    conn.setNoDelay(true);
    this.#reader = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder();
    const buffer = new Uint8Array(64 * 1024);
    let shaking = true;
    try {
      while (true) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        for (const frame of decoder.push(buffer.subarray(0, n))) {
          if (shaking) {
            let message: ServerMessage | Error;
            try {
              message = decodeServerMessage(frame);
            } catch (err) {
              message = err as Error;
            }
            this.handshake.push(message);
            shaking = !(message instanceof Error) && message.kind === "challenge";
            continue;
          }
          try {
            this.frames.push(decodeEnvelope(defaultCodec, frame));
          } catch (err) {
            this.frames.push(err as Error);
          }
        }
        this.#notify();
      }
    } catch {
      // Reset by the server, or closed by us.
    } finally {
      this.eof = true;
      this.#notify();
    }
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Writes all of `bytes`; throws when the connection is gone. */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** The server's next handshake message, or "eof" once it closed the connection. */
  async nextHandshake(timeoutMs = 3000): Promise<ServerMessage | "eof"> {
    const start = performance.now();
    while (true) {
      if (this.#shaken < this.handshake.length) {
        const message = this.handshake[this.#shaken++];
        if (message instanceof Error) throw message;
        return message;
      }
      if (this.eof) return "eof";
      const left = timeoutMs - (performance.now() - start);
      await deadline(new Promise<void>((resolve) => this.#waiters.push(resolve)), {
        timeoutMs: Math.max(0, left),
        onTimeout: () => new Error(`no handshake message from the server within ${timeoutMs} ms`),
      });
    }
  }

  /** The next envelope from the server, or "eof" once it closed the connection. */
  async next(timeoutMs = 3000): Promise<Envelope | "eof"> {
    while (true) {
      if (this.#read < this.frames.length) {
        const frame = this.frames[this.#read++];
        if (frame instanceof Error) throw frame;
        return frame;
      }
      if (this.eof) return "eof";
      await deadline(new Promise<void>((resolve) => this.#waiters.push(resolve)), {
        timeoutMs,
        onTimeout: () => new Error(`no frame from the server within ${timeoutMs} ms`),
      });
    }
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#reader;
  }
}

function request(id: number, method: string, args: unknown): Uint8Array {
  return encodeEnvelope(defaultCodec, { kind: "request", id, method, args });
}

function frame(payload: Uint8Array): Uint8Array {
  return encodeFrames([payload]);
}

function assertFailure(
  envelope: Envelope | "eof",
  id: number,
  code: string,
): void {
  assert.notEqual(envelope, "eof", "expected a failure, but the server closed the connection");
  const e = envelope as Envelope;
  assert.equal(e.kind, "failure", `expected a failure, got ${JSON.stringify(e)}`);
  if (e.kind !== "failure") return;
  assert.equal(e.id, id);
  assert.equal(e.failure.code, code, `failure: ${JSON.stringify(e.failure)}`);
}

/** A port nothing listens on (it was free a moment ago). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

// ---------------------------------------------------------------------------
// Calls

Deno.test("tcp: a basic call round-trips values", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(client.connected, false, "the connection opens lazily");
    const value = { a: 1, s: "x", list: [1, "two", null], bytes: new Uint8Array([1, 2, 3]) };
    assert.deepEqual(await client.call("Echo.Say", value), value);
    assert.equal(await client.call("Echo.Say"), null);
    assert.equal(client.connected, true);
    assert.equal(server.connections, 1);
    const peer = await client.call<string>("Echo.Peer");
    assert.match(peer, /^127\.0\.0\.1:\d+$/);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: 500 concurrent calls share one connection and all get their own answer", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => client.call("Echo.Say", { i, text: `call ${i}` })),
    );
    results.forEach((result, i) => assert.deepEqual(result, { i, text: `call ${i}` }));
    assert.equal(server.connections, 1);
    assert.equal(client.pendingCalls, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: many clients at once", async () => {
  const server = serveTcp(makeServer());
  const clients = Array.from({ length: 20 }, () => new TcpClient(server.address));
  try {
    await Promise.all(clients.map(async (client, c) => {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => client.call("Echo.Say", [c, i])),
      );
      results.forEach((result, i) => assert.deepEqual(result, [c, i]));
    }));
    assert.equal(server.connections, 20);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  }
});

Deno.test("tcp: sequential calls do not stall (no-delay and one write per batch)", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    await client.call("Echo.Say", 0);
    const start = performance.now();
    for (let i = 0; i < 200; i++) assert.equal(await client.call("Echo.Say", i), i);
    const elapsed = performance.now() - start;
    // A 40 ms delayed-ACK stall per call would take 8 s.
    assert.ok(elapsed < 2000, `200 sequential calls took ${elapsed.toFixed(0)} ms`);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: handler errors come back as RemoteError", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    await rejectsWith(client.call("Echo.Fail", { message: "boom" }), RemoteError, (err) => {
      assert.equal(err.code, "remote");
      assert.equal(err.remoteName, "Error");
      assert.equal(err.remoteMessage, "boom");
    });
    await rejectsWith(client.call("Echo.FailType"), RemoteError, (err) => {
      assert.equal(err.remoteName, "TypeError");
      assert.match(err.message, /Echo\.FailType failed on the server: TypeError: not a number/);
    });
    assert.equal(await client.call("Echo.Say", "still fine"), "still fine");
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: unknown service and unknown method", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    await rejectsWith(client.call("Nope.Say"), UnknownServiceError, (err) => {
      assert.equal(err.code, "unknown_service");
      assert.match(err.message, /"Nope"/);
    });
    await rejectsWith(client.call("Echo.Nope"), UnknownMethodError);
    await rejectsWith(client.call("NoDot"), UnknownServiceError);
    await rejectsWith(client.call("Echo.toString"), UnknownMethodError);
    await rejectsWith(client.call("Echo.constructor"), UnknownMethodError);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: wrong argument shapes give BadArgumentsError", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  try {
    assert.equal(await client.call("Echo.Shape", { key: "ab", n: 2 }), "abab");
    await rejectsWith(client.call("Echo.Shape", { key: 1, n: 2 }), BadArgumentsError, (err) => {
      assert.match(err.message, /field "key" must be string, got number/);
    });
    await rejectsWith(client.call("Echo.Shape", { key: "a" }), BadArgumentsError, (err) => {
      assert.match(err.message, /missing field "n"/);
    });
    await rejectsWith(client.call("Echo.Shape", [1, 2]), BadArgumentsError);
    await rejectsWith(client.call("Echo.Shape", null), BadArgumentsError);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: answers and requests over the size limit fail cleanly", async () => {
  const server = serveTcp(makeServer(), { maxFrameBytes: 4096 });
  const client = new TcpClient(server.address, { maxFrameBytes: 4096 });
  try {
    await rejectsWith(client.call("Echo.Big", { size: 10_000 }), RpcError, (err) => {
      assert.equal(err.code, "frame_too_large");
    });
    // The request is refused before it is sent.
    await rejectsWith(client.call("Echo.Say", "y".repeat(10_000)), FrameTooLargeError);
    await rejectsWith(client.call("Echo.Say", { f: () => 1 }), CodecError);
    assert.equal(await client.call("Echo.Big", { size: 100 }), "x".repeat(100));
    assert.equal(server.connections, 1);
  } finally {
    await client.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Deadlines, aborts, close

Deno.test("tcp: a deadline expires with TimeoutError and the connection keeps working", async () => {
  const gates = new Gates();
  const server = serveTcp(makeServer(gates));
  const client = new TcpClient(server.address);
  try {
    await client.call("Echo.Say", "warm up");
    const start = performance.now();
    await rejectsWith(client.call("Echo.Hang", "late", { timeoutMs: 100 }), TimeoutError, (err) => {
      assert.equal(err.timeoutMs, 100);
      assert.match(err.message, /Echo\.Hang timed out after 100 ms/);
    });
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 95 && elapsed < 1500, `timed out after ${elapsed.toFixed(0)} ms`);
    assert.equal(client.pendingCalls, 0, "the timed-out call is forgotten");
    // The hung handler does not block other calls on the same connection.
    assert.equal(await client.call("Echo.Say", "after"), "after");
    assert.equal(server.connections, 1);
    assert.equal(client.connected, true);
    // The late answer arrives and is ignored.
    await waitFor(() => gates.waiting === 1, "the hung handler");
    gates.releaseAll();
    assert.equal(await client.call("Echo.Say", "still"), "still");
    // The client-wide default deadline applies too.
    const short = new TcpClient(server.address, { timeoutMs: 50 });
    try {
      await rejectsWith(short.call("Echo.Hang"), TimeoutError);
    } finally {
      await short.close();
    }
  } finally {
    gates.releaseAll();
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: an abort signal rejects the call with AbortedError", async () => {
  const gates = new Gates();
  const server = serveTcp(makeServer(gates));
  const client = new TcpClient(server.address);
  try {
    const controller = new AbortController();
    const call = client.call("Echo.Hang", 1, { signal: controller.signal });
    await waitFor(() => gates.waiting === 1, "the handler to start");
    controller.abort(new Error("user gave up"));
    await rejectsWith(call, AbortedError, (err) => {
      assert.equal(err.code, "aborted");
      assert.equal((err.cause as Error).message, "user gave up");
    });
    assert.equal(client.pendingCalls, 0);
    const already = AbortSignal.abort();
    await rejectsWith(client.call("Echo.Say", 1, { signal: already }), AbortedError);
    assert.equal(await client.call("Echo.Say", 2), 2);
  } finally {
    gates.releaseAll();
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: close rejects pending and later calls with ClosedError", async () => {
  const gates = new Gates();
  const server = serveTcp(makeServer(gates));
  const client = new TcpClient(server.address);
  try {
    const pending = client.call("Echo.Hang", 1);
    await waitFor(() => gates.waiting === 1, "the handler to start");
    const closing = client.close();
    await rejectsWith(pending, ClosedError);
    await closing;
    await client.close(); // idempotent
    await rejectsWith(client.call("Echo.Say", 1), ClosedError, (err) => {
      assert.match(err.message, /create a new one/);
    });
    assert.equal(client.connected, false);
    await waitFor(() => server.connections === 0, "the server to see the close");
  } finally {
    gates.releaseAll();
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: closing the server rejects calls in flight with UnreachableError", async () => {
  const gates = new Gates();
  const server = serveTcp(makeServer(gates));
  const client = new TcpClient(server.address, { backoff: { baseMs: 10, maxMs: 50 } });
  try {
    const pending = client.call("Echo.Hang", 1);
    await waitFor(() => gates.waiting === 1, "the handler to start");
    await server.close();
    await rejectsWith(pending, UnreachableError, (err) => {
      assert.match(err.message, /connection lost/);
    });
    assert.equal(server.connections, 0);
  } finally {
    gates.releaseAll();
    await client.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Connecting and reconnecting

Deno.test("tcp: connection refused gives UnreachableError, then backoff", async () => {
  const port = freePort();
  const client = new TcpClient(`127.0.0.1:${port}`, { backoff: { baseMs: 200, maxMs: 400 } });
  try {
    await rejectsWith(client.call("Echo.Say", 1), UnreachableError, (err) => {
      assert.equal(err.code, "unreachable");
      assert.ok(err.cause instanceof Deno.errors.ConnectionRefused, `cause: ${err.cause}`);
      assert.match(err.message, /cannot connect to 127\.0\.0\.1:\d+/);
    });
    // In the backoff window, a call whose deadline ends first fails at once:
    // the message is the one of the path that does not wait (however slow the machine).
    await rejectsWith(client.call("Echo.Say", 1, { timeoutMs: 20 }), UnreachableError, (err) => {
      assert.match(err.message, /after this call's deadline/);
    });
    // A call with time to spare waits for the window, then tries once more.
    const waited = performance.now();
    await rejectsWith(client.call("Echo.Say", 1, { timeoutMs: 5000 }), UnreachableError);
    const elapsed = performance.now() - waited;
    assert.ok(elapsed >= 100 && elapsed < 3000, `retried after ${elapsed.toFixed(0)} ms`);
  } finally {
    await client.close();
  }
});

Deno.test("tcp: with backoff.failFast, a call in the backoff window fails at once", async () => {
  const port = freePort();
  const client = new TcpClient(`127.0.0.1:${port}`, {
    backoff: { baseMs: 300, maxMs: 300, failFast: true },
  });
  let server: TcpServer | undefined;
  try {
    await rejectsWith(client.call("Echo.Say", 1), UnreachableError, (err) => {
      assert.ok(err.cause instanceof Deno.errors.ConnectionRefused, `cause: ${err.cause}`);
    });
    // Time to spare does not make it wait for the next attempt: the message
    // is the one of the path that does not wait (however slow the machine).
    await rejectsWith(client.call("Echo.Say", 1, { timeoutMs: 5000 }), UnreachableError, (err) => {
      assert.match(err.message, /backing off/);
    });
    // Once the window is over, a call tries again.
    server = serveTcp(makeServer(new Gates()), { port });
    await delay(350);
    assert.equal(await client.call("Echo.Say", "up"), "up");
  } finally {
    await client.close();
    await server?.close();
  }
});

/**
 * A listener whose accept queue is full, so a further connection attempt
 * hangs (its SYN is dropped) instead of being refused. Undefined where the
 * OS refuses instead, or the queue does not fill within 4,000 connections.
 */
async function unansweredListener(): Promise<
  { port: number; close: () => void } | undefined
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.TcpConn[] = [];
  const close = () => {
    for (const conn of conns) conn.close();
    listener.close();
  };
  for (let i = 0; i < 4000; i++) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 200);
    try {
      conns.push(
        await Deno.connect({
          hostname: "127.0.0.1",
          port: listener.addr.port,
          signal: abort.signal,
        }),
      );
    } catch {
      if (abort.signal.aborted) return { port: listener.addr.port, close };
      break; // refused: this OS does not leave the attempt hanging
    } finally {
      clearTimeout(timer);
    }
  }
  close();
  return undefined;
}

Deno.test("tcp: a connection attempt that gets no answer is abandoned, and close is prompt", async () => {
  const silent = await unansweredListener();
  if (silent === undefined) {
    console.log("  skipped: this OS refuses connections to a full accept queue");
    return;
  }
  const address = `127.0.0.1:${silent.port}`;
  const client = new TcpClient(address, { timeoutMs: 300, backoff: { baseMs: 10, maxMs: 10 } });
  const patient = new TcpClient(address, { timeoutMs: 60_000 });
  try {
    await rejectsWith(client.call("Echo.Say", 1), TimeoutError);
    // The attempt outlived the client's deadline: it was abandoned as a failed
    // attempt, so the next call makes a new one instead of waiting on it.
    await rejectsWith(client.call("Echo.Say", 1, { timeoutMs: 5000 }), UnreachableError, (err) => {
      assert.match(err.message, /cannot connect .*no answer within 300 ms/);
    });
    // Closing a client ends its connection attempt at once, instead of
    // waiting for the OS to give up on it (minutes).
    const pending = rejectsWith(patient.call("Echo.Say", 1), ClosedError);
    const closing = performance.now();
    await patient.close();
    assert.ok(performance.now() - closing < 1000, "close waited for the connection attempt");
    await pending;
  } finally {
    await client.close();
    await patient.close();
    silent.close();
  }
});

Deno.test("tcp: a bad address is refused up front", () => {
  assert.throws(() => new TcpClient("localhost"), TypeError);
  assert.throws(() => new TcpClient("127.0.0.1:99999"), TypeError);
  assert.throws(() => new TcpClient(":80"), TypeError);
  assert.throws(() => new TcpClient("::1:80"), /brackets/);
  assert.equal(new TcpClient("[::1]:80").address, "[::1]:80");
  assert.throws(() => new TcpClient("127.0.0.1:80", { timeoutMs: -1 }), RangeError);
});

Deno.test("tcp: listening on a port in use fails with a clear error", async () => {
  const server = serveTcp(makeServer());
  try {
    assert.throws(
      () => serveTcp(makeServer(), { port: portOf(server) }),
      (err: Error) => {
        assert.match(err.message, /cannot listen on 127\.0\.0\.1:\d+: .*pick another port/);
        assert.ok(err.cause instanceof Deno.errors.AddrInUse);
        return true;
      },
    );
    assert.throws(() => serveTcp(makeServer(), { maxFrameBytes: 0 }), /maxFrameBytes/);
  } finally {
    await server.close();
  }
});

Deno.test("tcp: the client reconnects after the server restarts on the same port", async () => {
  const gates = new Gates();
  let server = serveTcp(makeServer(gates));
  const port = portOf(server);
  const client = new TcpClient(server.address, { backoff: { baseMs: 10, maxMs: 100 } });
  try {
    assert.equal(await client.call("Echo.Say", "before"), "before");
    await server.close();
    // Down: the client sees the connection go, and reconnecting is refused.
    await waitFor(() => !client.connected, "the client to notice the lost connection");
    await rejectsWith(client.call("Echo.Say", "down"), UnreachableError, (err) => {
      assert.ok(err.cause instanceof Deno.errors.ConnectionRefused, `cause: ${err.cause}`);
    });
    assert.equal(client.connected, false);

    server = serveTcp(makeServer(gates), { port });
    assert.equal(portOf(server), port);
    // Back up: within the backoff bound, a call gets through again.
    const start = performance.now();
    let answer: unknown;
    while (answer === undefined) {
      try {
        answer = await client.call("Echo.Say", "after", { timeoutMs: 1000 });
      } catch (err) {
        if (!(err instanceof UnreachableError)) throw err;
        if (performance.now() - start > 3000) throw err;
      }
    }
    assert.equal(answer, "after");
    assert.ok(performance.now() - start < 3000);
    assert.equal(client.connected, true);
    assert.equal(server.connections, 1);
    // And it stays up.
    assert.deepEqual(
      await Promise.all([1, 2, 3].map((i) => client.call("Echo.Say", i))),
      [1, 2, 3],
    );
  } finally {
    gates.releaseAll();
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: TcpTransport gives one client per peer", async () => {
  const a = serveTcp(makeServer());
  const b = serveTcp(makeServer());
  const transport = new TcpTransport({ peers: { a: a.address, b: b.address }, timeoutMs: 2000 });
  try {
    const end = transport.connect("a");
    assert.equal(end, transport.connect("a"));
    assert.equal(end.peer, "a");
    assert.deepEqual(transport.peers, ["a", "b"]);
    assert.equal(await end.call("Echo.Say", "hi a"), "hi a");
    assert.equal(await transport.connect("b").call("Echo.Say", "hi b"), "hi b");
    assert.throws(() => transport.connect("c"), /unknown peer "c" \(known peers: a, b\)/);
    assert.throws(() => transport.connect("toString"), /unknown peer/);
    assert.throws(() => new TcpTransport({ peers: { x: "nowhere" } }), /peer "x"/);
  } finally {
    await transport.close();
    await a.close();
    await b.close();
  }
  assert.throws(() => transport.connect("a"), ClosedError);
});

// ---------------------------------------------------------------------------
// Bad input from clients

Deno.test("tcp: an oversized frame header closes that connection only", async () => {
  const server = serveTcp(makeServer(), { maxFrameBytes: 1024 });
  const client = new TcpClient(server.address);
  const raw = await RawPeer.open(portOf(server));
  try {
    assert.equal(await client.call("Echo.Say", 1), 1);
    await raw.write(frame(request(7, "Echo.Say", "fine")));
    assert.deepEqual(await raw.next(), { kind: "reply", id: 7, value: "fine" });
    await raw.write(new Uint8Array([0, 0, 0x04, 0x01])); // 1025 bytes announced
    assertFailure(await raw.next(), 0, "frame_too_large");
    assert.equal(await raw.next(), "eof");
    await waitFor(() => server.connections === 1, "the server to drop the bad connection");
    assert.equal(await client.call("Echo.Say", 2), 2);
  } finally {
    await raw.close();
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: garbage in a frame gets a failure and the connection stays open", async () => {
  const server = serveTcp(makeServer());
  const raw = await RawPeer.open(portOf(server));
  try {
    // Not MessagePack at all (0xc1 is never used).
    await raw.write(frame(new Uint8Array([0xc1, 0xc1, 0xc1])));
    assertFailure(await raw.next(), 0, "codec");
    // MessagePack, but not an envelope.
    await raw.write(frame(defaultCodec.encode("hello")));
    assertFailure(await raw.next(), 0, "protocol");
    // An empty frame.
    await raw.write(frame(new Uint8Array(0)));
    assertFailure(await raw.next(), 0, "codec");
    // A request whose method is not a string: the id is readable.
    await raw.write(frame(defaultCodec.encode([0, 5, 42, {}])));
    assertFailure(await raw.next(), 5, "protocol");
    // A truncated request inside a whole frame: answered with its id.
    const whole = request(300, "Echo.Say", { text: "a fairly long argument" });
    await raw.write(frame(whole.subarray(0, whole.length - 5)));
    assertFailure(await raw.next(), 300, "codec");
    // Trailing bytes after the envelope.
    await raw.write(frame(new Uint8Array([...request(9, "Echo.Say", 1), 0x00])));
    assertFailure(await raw.next(), 9, "codec");
    // A reply or a failure sent to the server is a protocol violation.
    await raw.write(frame(encodeEnvelope(defaultCodec, { kind: "reply", id: 3, value: 1 })));
    assertFailure(await raw.next(), 0, "protocol");
    await raw.write(frame(defaultCodec.encode([2, 4, "remote", "Error", "x"])));
    assertFailure(await raw.next(), 0, "protocol");
    // Unknown method over the raw socket.
    await raw.write(frame(request(11, "Echo.Nope", null)));
    assertFailure(await raw.next(), 11, "unknown_method");
    // After all that, the same connection still serves.
    await raw.write(frame(request(12, "Echo.Say", "ok")));
    assert.deepEqual(await raw.next(), { kind: "reply", id: 12, value: "ok" });
    assert.equal(server.connections, 1);
  } finally {
    await raw.close();
    await server.close();
  }
});

Deno.test("tcp: many requests in one write are all answered", async () => {
  const server = serveTcp(makeServer());
  const raw = await RawPeer.open(portOf(server));
  try {
    const ids = Array.from({ length: 100 }, (_, i) => i + 1);
    await raw.write(encodeFrames(ids.map((id) => request(id, "Echo.Say", id * 2))));
    const seen = new Map<number, unknown>();
    for (const _ of ids) {
      const answer = await raw.next();
      assert.notEqual(answer, "eof");
      const e = answer as Envelope;
      assert.equal(e.kind, "reply");
      if (e.kind === "reply") seen.set(e.id, e.value);
    }
    for (const id of ids) assert.equal(seen.get(id), id * 2);
  } finally {
    await raw.close();
    await server.close();
  }
});

Deno.test("tcp: truncated frames and raw garbage close the connection, not the server", async () => {
  const server = serveTcp(makeServer(), { maxFrameBytes: 64 * 1024 });
  const client = new TcpClient(server.address);
  const peers: RawPeer[] = [];
  try {
    // A header announcing 100 bytes, then 10 bytes, then end of stream.
    const truncated = await RawPeer.open(portOf(server));
    peers.push(truncated);
    await truncated.write(new Uint8Array([0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    await truncated.conn.closeWrite();
    assert.equal(await truncated.next(), "eof");

    // Half a header, then end of stream.
    const half = await RawPeer.open(portOf(server));
    peers.push(half);
    await half.write(new Uint8Array([0, 0]));
    await half.conn.closeWrite();
    assert.equal(await half.next(), "eof");

    // Text where frames belong: "GET / HTTP/1.1" reads as a huge length.
    const http = await RawPeer.open(portOf(server));
    peers.push(http);
    await http.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assertFailure(await http.next(), 0, "frame_too_large");
    assert.equal(await http.next(), "eof");

    // A connection that opens and closes at once.
    const quick = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
    quick.close();

    await waitFor(() => server.connections <= 1, "the server to drop the bad connections");
    assert.equal(await client.call("Echo.Say", "alive"), "alive");
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: a __proto__ key is refused and Object.prototype stays clean", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  const raw = await RawPeer.open(portOf(server));
  try {
    const evil = JSON.parse('{"__proto__": {"polluted": true}, "key": "k"}');
    await rejectsWith(client.call("Echo.Say", evil), CodecError, (err) => {
      assert.match(err.message, /__proto__/);
    });
    // By hand, nested, over a raw socket.
    const payload = new Encoder().encode([0, 77, "Echo.Say", {
      a: JSON.parse('{"__proto__": {"polluted": true}}'),
    }]);
    await raw.write(frame(payload));
    assertFailure(await raw.next(), 77, "codec");
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
    assert.equal(
      await client.call("Echo.Say", { key: "k" }).then((v) => JSON.stringify(v)),
      '{"key":"k"}',
    );
  } finally {
    await raw.close();
    await client.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Bad input from servers

/**
 * A fake server: it welcomes the client's hello, then for each request it
 * reads, it writes whatever `respond` returns (garbage, usually).
 */
function evilServer(respond: (id: number) => Uint8Array): FakeServer {
  return new FakeServer((index, payload) => {
    if (index > 0) return { raw: respond(decodeEnvelope(defaultCodec, payload).id) };
    decodeHello(payload);
    return [encodeServerMessage({ kind: "welcome", mac: null })];
  });
}

Deno.test("tcp: a server sending garbage gets typed errors and a closed connection", async () => {
  const codec = new Codec();
  const cases: [string, (id: number) => Uint8Array, abstract new (...a: never[]) => Error][] = [
    ["not MessagePack", () => frame(new Uint8Array([0xc1, 0xff])), CodecError],
    ["not an envelope", () => frame(codec.encode({ hello: "world" })), ProtocolError],
    ["a request", (id) => frame(codec.encode([0, id, "Evil.Call", {}])), ProtocolError],
    [
      "an unknown failure code",
      (id) => frame(codec.encode([2, id, "weird", "E", "m"])),
      ProtocolError,
    ],
    [
      "a frame over the limit",
      () => new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]),
      FrameTooLargeError,
    ],
    [
      "a __proto__ key",
      (id) => frame(new Encoder().encode([1, id, JSON.parse('{"__proto__":{"x":1}}')])),
      CodecError,
    ],
    [
      "a failure with id 0",
      () => frame(codec.encode([2, 0, "protocol", "E", "bad"])),
      UnreachableError,
    ],
  ];
  for (const [name, respond, type] of cases) {
    const evil = evilServer(respond);
    const client = new TcpClient(evil.address, { maxFrameBytes: 1024 * 1024, timeoutMs: 3000 });
    try {
      const err = await rejectsWith(client.call("Echo.Say", 1), type);
      assert.ok(err instanceof RpcError, `${name}: ${err.name} is an RpcError`);
      assert.equal(client.connected, false, `${name}: the connection was closed`);
      assert.equal(client.pendingCalls, 0);
    } catch (err) {
      throw new Error(`case "${name}" failed: ${(err as Error).message}`, { cause: err });
    } finally {
      await client.close();
      await evil.close();
    }
  }
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

Deno.test("tcp: answers for unknown ids are ignored", async () => {
  const codec = new Codec();
  // Answers id + 1000 first (nobody asked), then the real one.
  const evil = evilServer((id) =>
    encodeFrames([codec.encode([1, id + 1000, "stray"]), codec.encode([1, id, "real"])])
  );
  const client = new TcpClient(evil.address);
  try {
    assert.equal(await client.call("Echo.Say", 1), "real");
    assert.equal(client.connected, true);
  } finally {
    await client.close();
    await evil.close();
  }
});

// ---------------------------------------------------------------------------
// Fuzz

/** Random MessagePack-able values of every shape, up to `depth` levels deep. */
function randomValue(random: Random, depth = 2): unknown {
  switch (random.int(depth > 0 ? 10 : 7)) {
    case 0:
      return null;
    case 1:
      return random.chance(0.5);
    case 2:
      return random.int(1 << 30) - (1 << 29);
    case 3:
      return random.next() * 1e6;
    case 4:
      return random.pick(["", "Echo.Say", "Echo.Shape", "x".repeat(random.int(50)), "ü€😀"]);
    case 5:
      return new Uint8Array(random.int(20)).map(() => random.int(256));
    case 6:
      return random.pick([0, 1, 2, -1, 2 ** 32, 2 ** 53, 0.5]);
    case 7:
    case 8:
      return Array.from({ length: random.int(6) }, () => randomValue(random, depth - 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = random.int(5); i > 0; i--) {
        out[random.pick(["key", "n", "a", "", "constructor", "toString"])] = randomValue(
          random,
          depth - 1,
        );
      }
      return out;
    }
  }
}

function validRequest(random: Random): Uint8Array {
  const id = random.chance(0.5) ? random.int(128) : random.int(2 ** 32);
  const method = random.pick(["Echo.Say", "Echo.Shape", "Echo.Fail", "Echo.Nope", "Nope.Say"]);
  const args = method === "Echo.Shape" && random.chance(0.5)
    ? { key: "k", n: random.int(3) }
    : method === "Echo.Fail"
    ? { message: "fuzz" }
    : randomValue(random);
  return request(id, method, args);
}

/**
 * One whole frame with bad (or, now and then, good) contents. The frame
 * boundary is intact, so the server must answer it and keep the connection.
 */
function fuzzFrame(random: Random): { bytes: Uint8Array; kind: string } {
  const kind = random.pick(["valid", "bitflip", "bitflip", "truncate", "shape", "shape", "random"]);
  switch (kind) {
    case "valid":
      return { kind, bytes: frame(validRequest(random)) };
    case "bitflip": {
      const payload = validRequest(random).slice();
      for (let i = random.between(1, 4); i > 0; i--) {
        payload[random.int(payload.length)] ^= 1 << random.int(8);
      }
      return { kind, bytes: frame(payload) };
    }
    case "truncate": {
      const payload = validRequest(random);
      return { kind, bytes: frame(payload.subarray(0, random.int(payload.length))) };
    }
    case "shape": {
      const value = random.chance(0.5)
        ? [random.int(4), random.int(1000), randomValue(random), randomValue(random)].slice(
          0,
          random.int(6),
        )
        : randomValue(random, 3);
      return { kind, bytes: frame(defaultCodec.encode(value)) };
    }
    default:
      return { kind, bytes: frame(new Uint8Array(random.int(64)).map(() => random.int(256))) };
  }
}

/**
 * Bytes that break the framing: unframed garbage, a corrupted length prefix,
 * an oversized header, or a frame cut short. After one of these the stream
 * is out of step, so the fuzzer hangs up and dials again.
 */
function fuzzBreaker(random: Random): { bytes: Uint8Array; kind: string } {
  const kind = random.pick(["random-bytes", "length", "oversize", "cut"]);
  switch (kind) {
    case "random-bytes":
      return { kind, bytes: new Uint8Array(random.between(1, 64)).map(() => random.int(256)) };
    case "length": {
      const bytes = frame(validRequest(random)).slice();
      bytes[random.int(4)] ^= 1 << random.int(8);
      return { kind, bytes };
    }
    case "oversize":
      // At least 16 MiB announced, against a 64 KiB limit.
      return { kind, bytes: new Uint8Array([1 + random.int(255), random.int(256), 0, 0, 1, 2, 3]) };
    default: {
      const bytes = frame(validRequest(random));
      return { kind, bytes: bytes.subarray(0, random.int(bytes.length)) };
    }
  }
}

Deno.test("tcp: fuzz — 10,000 random and mutated frames, then a good call", async () => {
  const seed = seedFromEnv();
  const random = new Random(seed);
  const server = serveTcp(makeServer(), { maxFrameBytes: 64 * 1024 });
  const port = portOf(server);
  const peers = new Set<RawPeer>();
  const counts: Record<string, number> = {};
  let sent = 0;
  let connections = 0;
  let answered = 0;
  let serverClosed = 0;
  try {
    while (sent < 10_000) {
      const peer = await RawPeer.open(port);
      peers.add(peer);
      connections++;
      // Whole frames: each must get exactly one answer, on an open connection.
      let expected = 0;
      for (let batches = random.between(1, 8); batches > 0; batches--) {
        const batch = Array.from({ length: random.between(1, 40) }, () => fuzzFrame(random));
        for (const input of batch) counts[input.kind] = (counts[input.kind] ?? 0) + 1;
        await peer.write(concatBytes(batch));
        sent += batch.length;
        expected += batch.length;
      }
      await waitFor(
        () => peer.frames.length >= expected || peer.eof,
        `answers to ${expected} frames on connection ${connections}`,
      );
      assert.equal(peer.eof, false, "the server closed a connection whose frames were all whole");
      assert.equal(peer.frames.length, expected, "one answer per frame");
      for (const answer of peer.frames) {
        assert.ok(!(answer instanceof Error), `an answer that does not decode: ${answer}`);
        assert.ok(answer.kind === "reply" || answer.kind === "failure");
      }
      answered += expected;
      // Then, usually, things that break the framing, and more garbage after them.
      if (random.chance(0.7)) {
        let first: string | undefined;
        for (let n = random.between(1, 20); n > 0 && !peer.eof; n--) {
          const breaker = fuzzBreaker(random);
          counts[breaker.kind] = (counts[breaker.kind] ?? 0) + 1;
          sent++;
          first ??= breaker.kind;
          try {
            await peer.write(breaker.bytes);
          } catch {
            break; // The server has hung up.
          }
        }
        if (first === "oversize") {
          // Read in step, an oversized header must make the server say so and hang up.
          await waitFor(() => peer.eof, "the server to close after an oversized header");
          const last = peer.frames.at(-1);
          assert.ok(last && !(last instanceof Error) && last.kind === "failure");
          assert.equal(last.failure.code, "frame_too_large");
          serverClosed++;
        }
      }
      await peer.close();
      peers.delete(peer);
    }
    const good = new TcpClient(server.address, { timeoutMs: 5000 });
    try {
      assert.equal(await good.call("Echo.Say", "still alive"), "still alive");
      assert.equal(await good.call("Echo.Shape", { key: "ok", n: 2 }), "okok");
    } finally {
      await good.close();
    }
    await waitFor(() => server.connections === 0, "every fuzz connection to close", 10_000);
  } catch (err) {
    console.error(
      `tcp fuzz failed with SEED=${seed} after ${sent} inputs on ${connections} connections; ` +
        `replay with SEED=${seed} deno task test tests/tcp_test.ts`,
    );
    throw err;
  } finally {
    await Promise.all([...peers].map((p) => p.close()));
    await server.close();
  }
  assert.ok(sent >= 10_000);
  assert.ok(answered > 8_000, `only ${answered} answers`);
  console.log(
    `fuzz: seed ${seed}, ${sent} inputs ${JSON.stringify(counts)}, ${answered} answers, ` +
      `${connections} connections, ${serverClosed} closed by the server`,
  );
});

/** Flips 1 to 4 random bits of a copy of `bytes`. */
/** Flips 1 to 4 distinct bits (two flips of one bit would cancel out and change nothing). */
function bitflip(random: Random, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const bits = new Set<number>();
  const n = Math.min(random.between(1, 4), out.length * 8);
  while (bits.size < n) bits.add(random.int(out.length * 8));
  for (const bit of bits) out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

/**
 * Whether the server must let a hello through to the next step, by the
 * rules: it decodes, names the cluster, and has the secret flag right.
 */
function helloPasses(payload: Uint8Array, cluster: string, guarded: boolean): boolean {
  try {
    const hello = decodeHello(payload);
    return hello.cluster === cluster && hello.hasSecret === guarded;
  } catch {
    return false;
  }
}

Deno.test("tcp: fuzz — 4,000 random and mutated handshakes; nothing gets in without the secret", async () => {
  const seed = seedFromEnv();
  const random = new Random(seed);
  const cluster = "fuzz";
  const secret = "the fuzz cluster's secret";
  const key = await importSecret(new TextEncoder().encode(secret));
  const wrongKey = await importSecret(new TextEncoder().encode("another secret"));
  const refused: string[] = [];
  const onRefused = (_peer: string, reason: string) => refused.push(reason);
  // `guarded` requires the secret; `open` only checks the cluster id. Every
  // input comes from 127.0.0.1, so the guessing backoff (tested on its own in
  // tcp_limits_test.ts) is off: here each input must reach the parser.
  const limits = { onRefused, maxFrameBytes: 64 * 1024, throttle: false } as const;
  const guarded = serveTcp(makeServer(), { cluster, secret, ...limits });
  const open = serveTcp(makeServer(), { cluster, ...limits });
  const counts: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  let replay: { hello: Uint8Array; proof: Uint8Array } | undefined;
  let inputs = 0;
  let connections = 0;
  let peer: RawPeer | undefined;
  let kind = "";

  /** Reads the server's verdict: let in (with the challenge answered, if any) or refused. */
  async function verdict(
    p: RawPeer,
    isGuarded: boolean,
    answer?: (nonce: Uint8Array) => Promise<Uint8Array | undefined>,
  ): Promise<"in" | "refused" | "closed"> {
    let message = await p.nextHandshake();
    if (message !== "eof" && message.kind === "challenge") {
      assert.ok(isGuarded, "a server without a secret sent a challenge");
      const proof = await answer?.(message.nonce);
      if (proof === undefined) {
        await p.conn.closeWrite(); // nothing to answer with: hang up
      } else {
        await p.write(frame(proof));
        inputs++;
      }
      message = await p.nextHandshake();
    }
    if (message === "eof") return "closed";
    if (message.kind === "refuse") {
      assert.ok(message.reason.length > 0);
      assert.equal(await p.nextHandshake(), "eof", "the server hangs up after a refusal");
      return "refused";
    }
    assert.equal(message.kind, "welcome", `unexpected ${JSON.stringify(message)}`);
    if (message.kind !== "welcome") throw new Error("unreachable");
    assert.equal(message.mac === null, !isGuarded, "a welcome carries a proof iff secret");
    // Let in: the connection serves calls.
    await p.write(frame(request(1, "Echo.Say", "in")));
    assert.deepEqual(await p.next(), { kind: "reply", id: 1, value: "in" });
    return "in";
  }

  /** A correct proof for a hello whose nonce is `clientNonce`. */
  const prove = (clientNonce: Uint8Array, k = key) => async (serverNonce: Uint8Array) =>
    encodeProof(await proofOf(k, "client", cluster, clientNonce, serverNonce));

  try {
    while (inputs < 4000) {
      const isGuarded = random.chance(0.6);
      const server = isGuarded ? guarded : open;
      peer = await RawPeer.open(portOf(server), { hello: false });
      connections++;
      const nonce = randomNonce();
      const hello = encodeHello({ cluster, nonce, hasSecret: isGuarded });
      const kinds = [
        "valid",
        "hello-bitflip",
        "hello-bitflip",
        "hello-truncate",
        "hello-shape",
        "hello-random",
        "unframed",
        "oversize",
        "pipelined",
        "silent",
      ];
      if (isGuarded) {
        kinds.push("proof-bitflip", "proof-bitflip", "proof-wrong-secret", "proof-shape");
        if (replay) kinds.push("replay");
      }
      kind = random.pick(kinds);
      counts[kind] = (counts[kind] ?? 0) + 1;
      inputs++;
      let outcome: "in" | "refused" | "closed";
      let expected: "in" | "refused" | "closed" | "refused-or-closed";
      switch (kind) {
        case "valid": {
          await peer.write(frame(hello));
          let proof: Uint8Array | undefined;
          outcome = await verdict(peer, isGuarded, async (serverNonce) => {
            proof = await prove(nonce)(serverNonce);
            return proof;
          });
          if (proof) replay = { hello: frame(hello), proof: frame(proof) };
          expected = "in";
          break;
        }
        case "hello-bitflip":
        case "hello-truncate":
        case "hello-shape": {
          const payload = kind === "hello-bitflip"
            ? bitflip(random, hello)
            : kind === "hello-truncate"
            ? hello.subarray(0, random.int(hello.length))
            : defaultCodec.encode(
              random.chance(0.5)
                ? [
                  "distkit-hello",
                  random.pick([1, 1, 2, 0, "1"]),
                  ...Array.from(
                    { length: random.int(5) },
                    () =>
                      random.pick<unknown>([
                        cluster,
                        nonce,
                        true,
                        false,
                        randomValue(random),
                        new Uint8Array(NONCE_BYTES),
                      ]),
                  ),
                ]
                : randomValue(random, 3),
            );
          await peer.write(frame(payload));
          const passes = helloPasses(payload, cluster, isGuarded);
          const clientNonce = passes ? decodeHello(payload).nonce : nonce;
          outcome = await verdict(peer, isGuarded, prove(clientNonce));
          expected = passes ? "in" : "refused";
          break;
        }
        case "hello-random":
          // Random bytes in a whole frame.
          await peer.write(frame(new Uint8Array(random.int(80)).map(() => random.int(256))));
          outcome = await verdict(peer, isGuarded);
          expected = "refused";
          break;
        case "unframed": {
          // Random bytes where frames belong: a refusal (a too-large or a
          // garbled frame), or a partial frame the server waits on until we
          // hang up.
          await peer.write(new Uint8Array(random.between(1, 64)).map(() => random.int(256)));
          await peer.conn.closeWrite();
          outcome = await verdict(peer, isGuarded);
          expected = "refused-or-closed";
          break;
        }
        case "oversize": {
          const size = HANDSHAKE_MAX_FRAME_BYTES + 1 + random.int(1 << 24);
          await peer.write(
            new Uint8Array([size >>> 24, (size >>> 16) & 255, (size >>> 8) & 255, size & 255, 1]),
          );
          outcome = await verdict(peer, isGuarded);
          expected = "refused";
          break;
        }
        case "pipelined":
          // A call right behind the hello: without a secret the hello opens
          // the connection at once, so the call is served; with one, the
          // call arrives where the proof belongs.
          await peer.write(encodeFrames([hello, request(1, "Echo.Say", "in")]));
          if (isGuarded) {
            outcome = await verdict(peer, isGuarded);
          } else {
            assert.deepEqual(await peer.nextHandshake(), { kind: "welcome", mac: null });
            assert.deepEqual(await peer.next(), { kind: "reply", id: 1, value: "in" });
            outcome = "in";
          }
          expected = isGuarded ? "refused" : "in";
          break;
        case "silent":
          await peer.conn.closeWrite();
          outcome = await verdict(peer, isGuarded);
          expected = "closed";
          break;
        case "proof-bitflip":
        case "proof-wrong-secret":
        case "proof-shape":
          await peer.write(frame(hello));
          outcome = await verdict(peer, isGuarded, async (serverNonce) => {
            if (kind === "proof-shape") {
              return defaultCodec.encode(
                random.chance(0.5)
                  ? ["distkit-proof", random.pick<unknown>([new Uint8Array(MAC_BYTES), nonce, 1])]
                  : randomValue(random, 3),
              );
            }
            const good = await prove(nonce, kind === "proof-wrong-secret" ? wrongKey : key)(
              serverNonce,
            );
            return kind === "proof-bitflip" ? bitflip(random, good) : good;
          });
          expected = "refused";
          break;
        default: {
          // A recorded hello and proof, replayed: the server's nonce is new.
          await peer.write(replay!.hello);
          outcome = await verdict(peer, isGuarded, () => Promise.resolve(replay!.proof.slice(4)));
          expected = "refused";
        }
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (expected === "refused-or-closed") {
        assert.notEqual(outcome, "in", `${kind}: got in`);
      } else {
        assert.equal(outcome, expected, `${kind}: expected ${expected}, got ${outcome}`);
      }
      await peer.close();
      peer = undefined;
    }
    // Both servers still serve well-behaved clients.
    const member = new TcpClient(guarded.address, { cluster, secret });
    const plain = new TcpClient(open.address, { cluster });
    try {
      assert.equal(await member.call("Echo.Say", "still alive"), "still alive");
      assert.equal(await plain.call("Echo.Say", "still alive"), "still alive");
    } finally {
      await member.close();
      await plain.close();
    }
    await waitFor(
      () => guarded.connections === 0 && open.connections === 0,
      "every fuzz connection to close",
      10_000,
    );
    assert.equal(refused.length, outcomes.refused, "onRefused ran once per refusal");
  } catch (err) {
    console.error(
      `handshake fuzz failed with SEED=${seed} on connection ${connections} (${kind}); ` +
        `replay with SEED=${seed} deno task test tests/tcp_test.ts`,
    );
    throw err;
  } finally {
    await peer?.close();
    await guarded.close();
    await open.close();
  }
  console.log(
    `handshake fuzz: seed ${seed}, ${inputs} inputs on ${connections} connections ` +
      `${JSON.stringify(counts)} -> ${JSON.stringify(outcomes)}`,
  );
});

function concatBytes(inputs: { bytes: Uint8Array }[]): Uint8Array {
  const out = new Uint8Array(inputs.reduce((n, input) => n + input.bytes.length, 0));
  let offset = 0;
  for (const input of inputs) {
    out.set(input.bytes, offset);
    offset += input.bytes.length;
  }
  return out;
}

Deno.test("tcp: a client that never reads its answers is not read either", async () => {
  let handled = 0;
  const rpc = new RpcServer();
  rpc.addService("Flood", {
    Get: () => {
      handled++;
      return new Uint8Array(8 * 1024);
    },
  });
  rpc.addService("Echo", { Say: (args: unknown) => args });
  const server = serveTcp(rpc);
  const client = new TcpClient(server.address);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
  const total = 50_000; // 400 MiB of answers if the server read every request
  let writing: Promise<unknown> | undefined;
  try {
    const flood = encodeFrames([
      encodeHello({ cluster: "", nonce: randomNonce(), hasSecret: false }),
      ...Array.from({ length: total }, (_, i) => request(i + 1, "Flood.Get", null)),
    ]);
    // Never read from `conn`; the write may block once the server stops reading.
    writing = (async () => {
      let offset = 0;
      while (offset < flood.length) offset += await conn.write(flood.subarray(offset));
    })().catch((err) => err);
    await waitFor(() => handled > 0, "the server to start answering");
    // Others are served meanwhile.
    assert.equal(await client.call("Echo.Say", "unaffected"), "unaffected");
    // Wait until the server stops handling the flood (no progress for 100 ms).
    let last = -1;
    let still = 0;
    await waitFor(() => {
      still = handled === last ? still + 1 : 0;
      last = handled;
      return still >= 20;
    }, "the server to stop reading the flood");
    assert.ok(handled < total / 2, `the server handled ${handled} of ${total} requests`);
    assert.equal(await client.call("Echo.Say", "still"), "still");
  } finally {
    conn.close();
    await writing;
    await client.close();
    await server.close();
  }
});

Deno.test("tcp: a transport's peer that moved is dialled at its new address (setAddress, retarget)", async () => {
  const named = (name: string) => {
    const rpc = new RpcServer();
    rpc.addService("Who", { Am: () => name });
    return serveTcp(rpc);
  };
  const first = named("first");
  const second = named("second");
  const transport = new TcpTransport({ peers: { "1": first.address }, timeoutMs: 5000 });
  try {
    const end = transport.connect("1");
    assert.equal(await end.call("Who.Am"), "first");
    transport.setAddress("1", second.address);
    assert.equal(transport.addressOf("1"), second.address);
    assert.equal(await end.call("Who.Am"), "second", "the same end, now at the new address");
    assert.equal((end as TcpClient).address, second.address);
    assert.throws(() => transport.setAddress("1", "nowhere"), TypeError);
  } finally {
    await transport.close();
    await first.close();
    await second.close();
  }
});

Deno.test("tcp: a handler sees the member a connection's handshake proved (CallContext.member)", async () => {
  const rpc = new RpcServer();
  rpc.addService("Who", {
    Calls: (_args: unknown, context: { member?: string }) => context.member ?? null,
  });
  const member = (node: string) => ({
    node,
    incarnation: `${node}-a`,
    knownIncarnation: () => undefined,
    check: () => undefined,
  });
  const server = serveTcp(rpc, { member: member("0") });
  const node = new TcpClient(server.address, { peer: "0", member: member("1") });
  const stranger = new TcpClient(server.address);
  try {
    assert.equal(await node.call("Who.Calls"), "1");
    assert.equal(await stranger.call("Who.Calls"), null, "a client is no member");
  } finally {
    await node.close();
    await stranger.close();
    await server.close();
  }
});

Deno.test("tcp: retarget during a handshake in progress: that call fails naming the move, the next one reaches the new address", async () => {
  // A listener that accepts and never answers: the handshake hangs there.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) accepted.push(c);
  })().catch(() => {});
  const rpc = new RpcServer();
  rpc.addService("Who", { Am: () => "live" });
  const live = serveTcp(rpc);
  const client = new TcpClient(`127.0.0.1:${(silent.addr as Deno.NetAddr).port}`, {
    timeoutMs: 30_000,
  });
  try {
    const first = client.call("Who.Am");
    await waitFor(() => accepted.length === 1, "the handshake has started");
    client.retarget(live.address);
    await assert.rejects(first, (e) => e instanceof Error && /moved to/.test(e.message));
    assert.equal(await client.call("Who.Am"), "live");
  } finally {
    await client.close();
    await live.close();
    silent.close();
    for (const c of accepted) c.close();
    await accepting;
  }
});

Deno.test("tcp: closeMember closes the connections a member made, and its next one is checked again", async () => {
  const rpc = new RpcServer();
  rpc.addService("Who", {
    Calls: (_args: unknown, context: { member?: string }) => context.member ?? null,
  });
  let refuse = false;
  const member = (node: string) => ({
    node,
    incarnation: `${node}-a`,
    knownIncarnation: () => undefined,
    check: (peer: { node: string } | undefined) =>
      refuse && peer?.node === "1" ? "node 1's folder was retired" : undefined,
  });
  const server = serveTcp(rpc, { member: member("0") });
  const one = new TcpClient(server.address, { peer: "0", member: member("1") });
  const two = new TcpClient(server.address, { peer: "0", member: member("2") });
  try {
    assert.equal(await one.call("Who.Calls"), "1");
    assert.equal(await two.call("Who.Calls"), "2");
    refuse = true; // node 1's folder is retired: what it opened before must not stay open
    await server.closeMember("1", "retired");
    await waitFor(() => !one.connected, "node 1's connection is closed");
    await assert.rejects(one.call("Who.Calls"), /retired/);
    assert.equal(await two.call("Who.Calls"), "2", "another member's connection stays");
    assert.equal(two.connected, true);
  } finally {
    await one.close();
    await two.close();
    await server.close();
  }
});
