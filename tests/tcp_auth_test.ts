/**
 * The TCP handshake: cluster ids, shared secrets, and what happens to a
 * connection that is refused, from both ends, against real listeners on
 * 127.0.0.1. (The handshake fuzzer is in tcp_test.ts.)
 */
import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import { defaultCodec } from "../net/codec.ts";
import { encodeEnvelope } from "../net/envelope.ts";
import { RefusedError, RpcError, UnreachableError } from "../net/errors.ts";
import { encodeFrames, FrameDecoder } from "../net/frame.ts";
import {
  decodeHello,
  decodeProof,
  decodeServerMessage,
  encodeHello,
  encodeServerMessage,
  type Hello,
  importSecret,
  MAC_BYTES,
  proofOf,
  randomNonce,
  type ServerMessage,
} from "../net/handshake.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient, type TcpServer, TcpTransport } from "../net/tcp.ts";
import { FakeServer, rejectsWith, waitFor } from "./tcp_helpers.ts";

// ---------------------------------------------------------------------------
// Helpers

/** An echo server that counts the calls it ran. */
function makeServer(): RpcServer & { calls: number } {
  const rpc = new RpcServer() as RpcServer & { calls: number };
  rpc.calls = 0;
  rpc.addService("Echo", {
    Say: (args: unknown) => {
      rpc.calls++;
      return args;
    },
  });
  return rpc;
}

/** Records the refusals a server reports. */
function refusals(): { reasons: string[]; onRefused: (peer: string, reason: string) => void } {
  const reasons: string[] = [];
  return { reasons, onRefused: (_peer, reason) => reasons.push(reason) };
}

function frame(payload: Uint8Array): Uint8Array {
  return encodeFrames([payload]);
}

/** A raw connection that reads the server's handshake messages. */
class Raw {
  readonly messages: (ServerMessage | Error)[] = [];
  eof = false;
  #reader: Promise<void>;

  static async open(server: TcpServer): Promise<Raw> {
    return new Raw(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
  }

  constructor(readonly conn: Deno.TcpConn) {
    this.#reader = (async () => {
      const decoder = new FrameDecoder();
      const buffer = new Uint8Array(4096);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          for (const payload of decoder.push(buffer.subarray(0, n))) {
            try {
              this.messages.push(decodeServerMessage(payload));
            } catch (err) {
              this.messages.push(err as Error);
            }
          }
        }
      } catch {
        // Reset, or closed by us.
      } finally {
        this.eof = true;
      }
    })();
  }

  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /**
   * Waits for the server to hang up and returns the reason it gave (after
   * a challenge, or first thing).
   */
  async refusal(timeoutMs = 5000): Promise<string> {
    await waitFor(() => this.eof, "the server to hang up", timeoutMs);
    const kinds = this.messages.map((m) => m instanceof Error ? m.message : m.kind);
    assert.ok(kinds.length === 1 || kinds.length === 2 && kinds[0] === "challenge", `${kinds}`);
    const message = this.messages.at(-1)!;
    assert.ok(!(message instanceof Error) && message.kind === "refuse", String(message));
    return message.reason;
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

/** What a fake server answers a frame with. */
const SECRET = "a long random string shared by the blue cluster";
const OTHER_SECRET = "a long random string shared by some other cluster";

// ---------------------------------------------------------------------------
// Let in

Deno.test("tcp auth: a client with the server's cluster and secret is served", async () => {
  const rpc = makeServer();
  const { reasons, onRefused } = refusals();
  const server = serveTcp(rpc, { cluster: "blue", secret: SECRET, onRefused });
  const client = new TcpClient(server.address, { cluster: "blue", secret: SECRET });
  // The same secret as bytes is the same secret.
  const bytes = new TcpClient(server.address, {
    cluster: "blue",
    secret: new TextEncoder().encode(SECRET),
  });
  try {
    assert.equal(server.cluster, "blue");
    assert.equal(client.cluster, "blue");
    assert.equal(await client.call("Echo.Say", "hi"), "hi");
    assert.deepEqual(
      await Promise.all([1, 2, 3].map((i) => client.call("Echo.Say", i))),
      [1, 2, 3],
    );
    assert.equal(await bytes.call("Echo.Say", "bytes"), "bytes");
    assert.equal(server.connections, 2);
    assert.deepEqual(reasons, []);
    // After the handshake the frame limit is the configured one (64 MiB), not the handshake's.
    const big = "x".repeat(200_000);
    assert.equal(await client.call("Echo.Say", big), big);
  } finally {
    await client.close();
    await bytes.close();
    await server.close();
  }
});

Deno.test("tcp auth: TcpTransport passes cluster and secret to every client", async () => {
  const a = serveTcp(makeServer(), { cluster: "blue", secret: SECRET });
  const b = serveTcp(makeServer(), { cluster: "blue", secret: SECRET });
  const transport = new TcpTransport({
    peers: { a: a.address, b: b.address },
    cluster: "blue",
    secret: SECRET,
  });
  const stranger = new TcpTransport({ peers: { a: a.address }, cluster: "blue" });
  try {
    assert.equal(await transport.connect("a").call("Echo.Say", "a"), "a");
    assert.equal(await transport.connect("b").call("Echo.Say", "b"), "b");
    // A refusal names the peer and its address.
    await rejectsWith(stranger.connect("a").call("Echo.Say", 1), RefusedError, (err) => {
      assert.equal(err.peer, "a");
      assert.equal(err.address, a.address);
      assert.ok(err.message.startsWith(`a (${a.address}) refused the connection: `), err.message);
    });
  } finally {
    await transport.close();
    await stranger.close();
    await a.close();
    await b.close();
  }
});

Deno.test("tcp auth: without cluster or secret, servers and clients work as before", async () => {
  const server = serveTcp(makeServer());
  const client = new TcpClient(server.address);
  const named = new TcpClient(server.address, { cluster: "" });
  try {
    assert.equal(server.cluster, "");
    assert.equal(await client.call("Echo.Say", "plain"), "plain");
    assert.equal(await named.call("Echo.Say", "also"), "also");
  } finally {
    await client.close();
    await named.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Refused by the server

Deno.test("tcp auth: a client of another cluster is refused, naming both clusters", async () => {
  const rpc = makeServer();
  const { reasons, onRefused } = refusals();
  const server = serveTcp(rpc, { cluster: "blue", onRefused });
  const green = new TcpClient(server.address, { cluster: "green" });
  const unnamed = new TcpClient(server.address);
  const blue = new TcpClient(server.address, { cluster: "blue" });
  try {
    const err = await rejectsWith(green.call("Echo.Say", 1), RefusedError);
    assert.equal(err.code, "refused");
    assert.ok(err instanceof RpcError);
    assert.equal(err.refusedBy, "server");
    assert.equal(err.address, server.address);
    assert.ok(
      err.message.startsWith(
        `${server.address} refused the connection: it serves cluster "blue", not "green"`,
      ),
      err.message,
    );
    assert.match(err.message, /same cluster option/);
    await rejectsWith(unnamed.call("Echo.Say", 1), RefusedError, (e) => {
      assert.match(e.message, /it serves cluster "blue", not the unnamed cluster \(""\)/);
    });
    // The other way round: an unnamed server refuses a named client.
    const plain = serveTcp(makeServer());
    const named = new TcpClient(plain.address, { cluster: "blue" });
    try {
      await rejectsWith(named.call("Echo.Say", 1), RefusedError, (e) => {
        assert.match(e.message, /it serves the unnamed cluster \(""\), not "blue"/);
      });
    } finally {
      await named.close();
      await plain.close();
    }
    // No call ran; the server still serves its own cluster, and says why it refused.
    assert.equal(await blue.call("Echo.Say", "blue"), "blue");
    assert.equal(rpc.calls, 1);
    assert.equal(reasons.length, 2);
    assert.match(reasons[0], /^it serves cluster "blue", not "green"/);
    assert.equal(green.connected, false);
    await waitFor(() => server.connections === 1, "the refused connections to close");
  } finally {
    await Promise.all([green.close(), unnamed.close(), blue.close()]);
    await server.close();
  }
});

Deno.test("tcp auth: a client without the secret is refused", async () => {
  const rpc = makeServer();
  const server = serveTcp(rpc, { cluster: "blue", secret: SECRET });
  const client = new TcpClient(server.address, { cluster: "blue" });
  try {
    await rejectsWith(client.call("Echo.Say", 1), RefusedError, (err) => {
      assert.equal(err.refusedBy, "server");
      assert.match(
        err.message,
        /refused the connection: it requires the cluster's shared secret, and this client has none/,
      );
    });
    assert.equal(rpc.calls, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("tcp auth: a client with another secret is refused", async () => {
  const rpc = makeServer();
  const { reasons, onRefused } = refusals();
  const server = serveTcp(rpc, { cluster: "blue", secret: SECRET, onRefused });
  const client = new TcpClient(server.address, { cluster: "blue", secret: OTHER_SECRET });
  const member = new TcpClient(server.address, { cluster: "blue", secret: SECRET });
  try {
    await rejectsWith(client.call("Echo.Say", 1), RefusedError, (err) => {
      assert.equal(err.refusedBy, "server");
      assert.ok(
        err.message.startsWith(
          `${server.address} refused the connection: the shared secret does not match`,
        ),
        err.message,
      );
      assert.ok(!err.message.includes(SECRET) && !err.message.includes(OTHER_SECRET));
    });
    assert.equal(rpc.calls, 0);
    assert.deepEqual(reasons.length, 1);
    assert.equal(await member.call("Echo.Say", "member"), "member");
  } finally {
    await client.close();
    await member.close();
    await server.close();
  }
});

Deno.test("tcp auth: a client with a secret and a server without one do not connect", async () => {
  const rpc = makeServer();
  const server = serveTcp(rpc, { cluster: "blue" });
  const client = new TcpClient(server.address, { cluster: "blue", secret: SECRET });
  try {
    await rejectsWith(client.call("Echo.Say", 1), RefusedError, (err) => {
      assert.match(err.message, /it has no shared secret, and this client has one/);
    });
    assert.equal(rpc.calls, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Refused by the client: a server that does not prove the secret

/** A fake server that says the right things up to `lie`, then lies. */
function lyingServer(lie: "welcome without challenge" | "no proof" | "wrong proof" | "garbage") {
  return new FakeServer((index, payload) => {
    if (index === 0) {
      decodeHello(payload);
      if (lie === "welcome without challenge") {
        return [encodeServerMessage({ kind: "welcome", mac: null })];
      }
      if (lie === "garbage") return [new Uint8Array([0xc1, 0xc1])];
      return [encodeServerMessage({ kind: "challenge", nonce: randomNonce() })];
    }
    decodeProof(payload);
    const mac = lie === "no proof" ? null : crypto.getRandomValues(new Uint8Array(MAC_BYTES));
    return [encodeServerMessage({ kind: "welcome", mac })];
  });
}

Deno.test("tcp auth: a client with a secret refuses a server that cannot prove it", async () => {
  const cases = [
    ["welcome without challenge", /it let this client in without checking the shared secret/],
    ["no proof", /it did not prove that it knows the shared secret/],
    ["wrong proof", /its proof of the shared secret is wrong/],
    ["garbage", /it did not answer the hello with a distkit handshake/],
  ] as const;
  for (const [lie, pattern] of cases) {
    const fake = lyingServer(lie);
    const client = new TcpClient(fake.address, { cluster: "blue", secret: SECRET });
    try {
      await rejectsWith(client.call("Echo.Say", 1), RefusedError, (err) => {
        assert.equal(err.refusedBy, "client", lie);
        assert.ok(
          err.message.startsWith(`this client refused the connection to ${fake.address}: `),
          err.message,
        );
        assert.match(err.message, pattern);
      });
      assert.equal(client.connected, false);
      // No call was sent: after the hello (and the proof) nothing else.
      const sent = fake.received.reduce((n, chunk) => n + chunk.length, 0);
      assert.ok(sent < 200, `${lie}: the client sent ${sent} bytes`);
    } finally {
      await client.close();
      await fake.close();
    }
  }
});

Deno.test("tcp auth: the secret never travels, and proofs do not repeat", async () => {
  const hellos: Hello[] = [];
  const proofs: Uint8Array[] = [];
  const key = await importSecret(new TextEncoder().encode(SECRET));
  const fake = new FakeServer((index, payload) => {
    if (index === 0) {
      hellos.push(decodeHello(payload));
      return [encodeServerMessage({ kind: "challenge", nonce: new Uint8Array(32) })];
    }
    proofs.push(decodeProof(payload));
    return "hang up";
  });
  const clients = [1, 2].map(() =>
    new TcpClient(fake.address, { cluster: "blue", secret: SECRET, timeoutMs: 2000 })
  );
  try {
    for (const client of clients) {
      await rejectsWith(client.call("Echo.Say", 1), UnreachableError, (err) => {
        assert.match(err.message, /the handshake with .* failed/);
      });
    }
    const wire = new TextDecoder("latin1").decode(
      new Uint8Array(fake.received.flatMap((chunk) => [...chunk])),
    );
    assert.ok(!wire.includes(SECRET), "the secret is not on the wire");
    assert.equal(hellos.length, 2);
    assert.equal(proofs.length, 2);
    // Same server nonce both times, yet fresh client nonces make the proofs differ.
    assert.notDeepEqual(hellos[0].nonce, hellos[1].nonce);
    assert.notDeepEqual(proofs[0], proofs[1]);
    // And each proof is the HMAC of its own handshake.
    const expected = await proofOf(key, "client", "blue", hellos[0].nonce, new Uint8Array(32));
    assert.deepEqual(proofs[0], expected);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// Refused clients do not hammer the server

Deno.test("tcp auth: a refused client waits backoff.maxMs, then picks up a fixed server", async () => {
  const { reasons, onRefused } = refusals();
  let server = serveTcp(makeServer(), { cluster: "blue", onRefused });
  const port = server.addr.port;
  const client = new TcpClient(server.address, {
    cluster: "green",
    // A window long enough for the burst below on a slow, busy machine.
    backoff: { baseMs: 10, maxMs: 2000 },
  });
  try {
    const first = await rejectsWith(client.call("Echo.Say", 1), RefusedError);
    // A burst of calls in the window: refused at once with the first refusal
    // (its cause), without a new connection (however slow the machine).
    for (let i = 0; i < 50; i++) {
      await rejectsWith(client.call("Echo.Say", i), RefusedError, (err) => {
        assert.equal(err.message, first.message);
        assert.equal(err.cause, first);
      });
    }
    assert.equal(reasons.length, 1, "one connection attempt only");
    // After the window, the next call tries again (and is refused again).
    await delay(2100);
    await rejectsWith(client.call("Echo.Say", 1), RefusedError);
    assert.equal(reasons.length, 2);
    // The operator fixes the server: within one window the client gets through.
    await server.close();
    server = serveTcp(makeServer(), { cluster: "green", port });
    const fixed = performance.now();
    let answer: unknown;
    while (answer === undefined) {
      try {
        answer = await client.call("Echo.Say", "through");
      } catch (err) {
        if (!(err instanceof RefusedError) || performance.now() - fixed > 6000) throw err;
        await delay(20);
      }
    }
    assert.equal(answer, "through");
  } finally {
    await client.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// Bad hellos

Deno.test("tcp auth: garbage instead of a hello is refused, and others are still served", async () => {
  const rpc = makeServer();
  const { reasons, onRefused } = refusals();
  const server = serveTcp(rpc, { cluster: "blue", secret: SECRET, onRefused });
  const member = new TcpClient(server.address, { cluster: "blue", secret: SECRET });
  const raws: Raw[] = [];
  const cases: [string, Uint8Array, RegExp][] = [
    ["not MessagePack", frame(new Uint8Array([0xc1, 0xff, 0x00])), /not MessagePack/],
    ["a string", frame(defaultCodec.encode("hello")), /is string, not a hello/],
    [
      "a call (a client from before the handshake)",
      frame(encodeEnvelope(defaultCodec, { kind: "request", id: 1, method: "Echo.Say", args: 1 })),
      /it sent a call before the handshake/,
    ],
    [
      "another handshake version",
      frame(defaultCodec.encode(["distkit-hello", 2, "blue", randomNonce(), true])),
      /it speaks handshake version 1, and the client speaks version 2/,
    ],
    [
      "a short nonce",
      frame(defaultCodec.encode(["distkit-hello", 1, "blue", new Uint8Array(8), true])),
      /malformed \(the nonce must be 32 bytes\)/,
    ],
    [
      "an HTTP request",
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      /this looks like an HTTP client; this port speaks distkit's TCP protocol/,
    ],
    [
      "a 5 KiB hello",
      frame(encodeHello({ cluster: "blue", nonce: randomNonce(), hasSecret: true }).slice()).map(
        (b, i) => i === 2 ? 0x14 : b, // the length now reads 0x14xx, over 4 KiB
      ),
      /during the handshake, where frames are at most 4096 bytes/,
    ],
    [
      "a proof of something else",
      encodeFrames([
        encodeHello({ cluster: "blue", nonce: randomNonce(), hasSecret: true }),
        defaultCodec.encode(["distkit-proof", "let me in"]),
      ]),
      /did not answer the challenge with a proof of the shared secret/,
    ],
  ];
  try {
    for (const [name, bytes, pattern] of cases) {
      const raw = await Raw.open(server);
      raws.push(raw);
      await raw.write(bytes);
      const reason = await raw.refusal();
      assert.match(reason, pattern, name);
      assert.equal(await member.call("Echo.Say", name), name);
    }
    assert.equal(reasons.length, cases.length);
    assert.equal(rpc.calls, cases.length, "only the member's calls ran");
    await waitFor(() => server.connections === 1, "the refused connections to close");
  } finally {
    await Promise.all(raws.map((raw) => raw.close()));
    await member.close();
    await server.close();
  }
});

Deno.test("tcp auth: a connection that never finishes the handshake is dropped at the deadline", async () => {
  const { reasons, onRefused } = refusals();
  const server = serveTcp(makeServer(), {
    cluster: "blue",
    secret: SECRET,
    handshakeTimeoutMs: 300,
    onRefused,
  });
  const member = new TcpClient(server.address, { cluster: "blue", secret: SECRET });
  const silent = await Raw.open(server);
  const slow = await Raw.open(server);
  const challenged = await Raw.open(server);
  try {
    const start = performance.now();
    // Silent; a slow loris dribbling a hello; one that stops after the challenge.
    const hello = frame(encodeHello({ cluster: "blue", nonce: randomNonce(), hasSecret: true }));
    await challenged.write(hello);
    const dribble = (async () => {
      for (let i = 0; i < 20 && !slow.eof; i++) {
        await slow.write(hello.subarray(i, i + 1)).catch(() => {});
        await delay(50);
      }
    })();
    // Meanwhile the server serves everyone else.
    for (let i = 0; i < 5; i++) {
      assert.equal(await member.call("Echo.Say", i), i);
      await delay(20);
    }
    const silentReason = await silent.refusal();
    assert.match(silentReason, /it got no hello within 300 ms \(handshakeTimeoutMs\)/);
    assert.match(await slow.refusal(), /it got no hello within 300 ms/);
    await dribble;
    await waitFor(() => challenged.eof, "the challenged connection to be dropped");
    assert.equal(challenged.messages.length, 2);
    const last = challenged.messages[1] as ServerMessage;
    assert.equal(last.kind, "refuse");
    if (last.kind === "refuse") assert.match(last.reason, /no proof of the shared secret within/);
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 250 && elapsed < 3000, `dropped after ${elapsed.toFixed(0)} ms`);
    assert.equal(reasons.length, 3);
    await waitFor(() => server.connections === 1, "only the member to stay connected");
    assert.equal(await member.call("Echo.Say", "after"), "after");
  } finally {
    await Promise.all([silent.close(), slow.close(), challenged.close()]);
    await member.close();
    await server.close();
  }
});

Deno.test("tcp auth: a frame sent before the welcome is a protocol violation", async () => {
  const server = serveTcp(makeServer(), { cluster: "blue", secret: SECRET });
  const raw = await Raw.open(server);
  try {
    const nonce = randomNonce();
    await raw.write(frame(encodeHello({ cluster: "blue", nonce, hasSecret: true })));
    await waitFor(() => raw.messages.length === 1, "the challenge");
    const challenge = raw.messages[0] as ServerMessage;
    assert.equal(challenge.kind, "challenge");
    if (challenge.kind !== "challenge") return;
    const key = await importSecret(new TextEncoder().encode(SECRET));
    const mac = await proofOf(key, "client", "blue", nonce, challenge.nonce);
    // The right proof, with a call glued behind it: the call arrives while the
    // server is still checking the proof.
    await raw.write(
      encodeFrames([
        defaultCodec.encode(["distkit-proof", mac]),
        encodeEnvelope(defaultCodec, { kind: "request", id: 1, method: "Echo.Say", args: 1 }),
      ]),
    );
    await waitFor(() => raw.eof, "the server to hang up");
    const last = raw.messages.at(-1) as ServerMessage;
    assert.equal(last.kind, "refuse");
    if (last.kind === "refuse") assert.match(last.reason, /before the handshake finished/);
  } finally {
    await raw.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// The client's side of a broken handshake

Deno.test("tcp auth: a server that never answers the hello is unreachable after timeoutMs", async () => {
  const fake = new FakeServer(() => new Promise(() => {})); // never answers
  const client = new TcpClient(fake.address, {
    timeoutMs: 200,
    backoff: { baseMs: 10, maxMs: 10 },
  });
  try {
    await rejectsWith(client.call("Echo.Say", 1, { timeoutMs: 2000 }), UnreachableError, (err) => {
      assert.match(err.message, /the handshake with .* failed \(no answer within 200 ms/);
    });
    assert.equal(client.connected, false);
  } finally {
    await client.close();
    await fake.close();
  }
});

Deno.test("tcp auth: a server that hangs up during the handshake is unreachable, not refused", async () => {
  const fake = new FakeServer(() => "hang up");
  const client = new TcpClient(fake.address, { backoff: { baseMs: 10, maxMs: 10 } });
  try {
    await rejectsWith(client.call("Echo.Say", 1), UnreachableError, (err) => {
      assert.match(err.message, /the handshake with .* failed \(the peer closed the connection\)/);
    });
    await delay(20);
    await rejectsWith(client.call("Echo.Say", 1), UnreachableError);
    assert.equal(fake.accepted, 2, "an unreachable server is retried after the usual backoff");
  } finally {
    await client.close();
    await fake.close();
  }
});

Deno.test("tcp auth: a server that hangs up right after its welcome is reconnected to", async () => {
  // Reads the hello, writes the welcome and closes, all at once.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      await conn.read(new Uint8Array(4096));
      await conn.write(frame(encodeServerMessage({ kind: "welcome", mac: null })));
      conn.close();
    }
  })();
  const client = new TcpClient(`127.0.0.1:${listener.addr.port}`, {
    backoff: { baseMs: 10, maxMs: 10 },
  });
  try {
    for (let attempt = 1; attempt <= 3; attempt++) {
      await rejectsWith(client.call("Echo.Say", attempt), UnreachableError);
      assert.equal(client.connected, false);
      assert.equal(accepted, attempt, "each call makes a fresh connection");
      await delay(15);
    }
  } finally {
    await client.close();
    listener.close();
    await serving;
  }
});

Deno.test("tcp auth: closing a client in the middle of its handshake is prompt", async () => {
  const fake = new FakeServer(() => new Promise(() => {}));
  const client = new TcpClient(fake.address, { timeoutMs: 60_000 });
  try {
    const pending = rejectsWith(client.call("Echo.Say", 1), RpcError, (err) => {
      assert.equal(err.code, "closed");
    });
    await waitFor(() => fake.received.length > 0, "the hello");
    const start = performance.now();
    await client.close();
    assert.ok(performance.now() - start < 1000);
    await pending;
  } finally {
    await client.close();
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// Options

Deno.test("tcp auth: bad cluster and secret options are refused up front", () => {
  const rpc = makeServer();
  assert.throws(() => new TcpClient("127.0.0.1:1", { secret: "" }), RangeError);
  assert.throws(() => new TcpClient("127.0.0.1:1", { secret: new Uint8Array(0) }), /not be empty/);
  assert.throws(
    () => new TcpClient("127.0.0.1:1", { secret: 42 as unknown as string }),
    TypeError,
  );
  assert.throws(
    () => new TcpClient("127.0.0.1:1", { cluster: 7 as unknown as string }),
    TypeError,
  );
  assert.throws(() => new TcpClient("127.0.0.1:1", { cluster: "x".repeat(257) }), RangeError);
  assert.throws(() => serveTcp(rpc, { secret: "" }), RangeError);
  assert.throws(() => serveTcp(rpc, { handshakeTimeoutMs: 0 }), /handshakeTimeoutMs/);
  assert.throws(() => serveTcp(rpc, { handshakeTimeoutMs: Infinity }), /handshakeTimeoutMs/);
});

Deno.test("tcp auth: the caller's secret bytes are copied, so changing them later changes nothing", async () => {
  const secret = new TextEncoder().encode(SECRET);
  const server = serveTcp(makeServer(), { secret: secret.slice() });
  const mine = secret.slice();
  const client = new TcpClient(server.address, { secret: mine });
  mine.fill(0);
  try {
    assert.equal(await client.call("Echo.Say", "same"), "same");
  } finally {
    await client.close();
    await server.close();
  }
});
