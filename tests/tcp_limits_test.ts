/**
 * The limits `serveTcp` holds connections to after (and before) the
 * handshake: connection counts per listener and per address, the per-frame
 * deadline, the shared budget for large frames, and the backoff for failed
 * handshakes with its summary log line.
 */
import assert from "node:assert/strict";
import { decodeEnvelope, type Envelope } from "../net/envelope.ts";
import { Codec } from "../net/codec.ts";
import { VirtualClock } from "../net/clock.ts";
import { encodeFrames } from "../net/frame.ts";
import type { Logger, LogLevel } from "../net/logger.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient, type TcpServer } from "../net/tcp.ts";
import type { ServerMessage } from "../net/handshake.ts";
import { type FrameReader, rawHandshake, waitFor, writeAll } from "./tcp_helpers.ts";

const SECRET = "the limits test cluster's secret";
const codec = new Codec();

function makeServer(): RpcServer {
  const rpc = new RpcServer();
  rpc.addService("Echo", { Say: (args: unknown) => args });
  return rpc;
}

function refusal(verdict: ServerMessage | "eof"): string {
  assert.ok(verdict !== "eof", "the server closed without saying why");
  assert.equal(verdict.kind, "refuse", `expected a refusal, got ${verdict.kind}`);
  return (verdict as { reason: string }).reason;
}

/** A frame header announcing `length` bytes, and nothing of its payload yet. */
function header(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

/** Reads until the server's failure with id 0, then the end of the stream. */
async function failureThenEof(reader: FrameReader): Promise<Envelope> {
  const frame = await reader.next();
  assert.ok(frame !== "eof", "the server closed without a failure frame");
  const envelope = decodeEnvelope(codec, frame);
  assert.equal(envelope.kind, "failure");
  assert.equal(envelope.id, 0);
  assert.equal(await reader.next(), "eof", "the connection was closed after the failure");
  return envelope;
}

function port(server: TcpServer): number {
  return server.addr.port;
}

Deno.test("tcp limits: connections over maxConnectionsPerAddress or maxConnections are refused unread", async () => {
  const refused: string[] = [];
  const perAddress = serveTcp(makeServer(), {
    maxConnectionsPerAddress: 3,
    onRefused: (_peer, reason) => refused.push(reason),
  });
  const total = serveTcp(makeServer(), { maxConnections: 2 });
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const { conn, verdict } = await rawHandshake(port(perAddress), {});
      conns.push(conn);
      assert.deepEqual(verdict, { kind: "welcome", mac: null });
    }
    const over = await rawHandshake(port(perAddress), {});
    conns.push(over.conn);
    assert.match(refusal(over.verdict), /3 connections open from 127\.0\.0\.1/);
    assert.equal(await over.reader.next(), "eof");
    assert.equal(perAddress.stats().overMaxPerAddress, 1);
    assert.equal(refused.length, 1, "onRefused ran for the refusal");
    // One closed: there is room again.
    conns[0].close();
    conns.shift();
    await waitFor(() => perAddress.connections === 2, "the server to see the close");
    const again = await rawHandshake(port(perAddress), {});
    conns.push(again.conn);
    assert.deepEqual(again.verdict, { kind: "welcome", mac: null });

    for (let i = 0; i < 2; i++) {
      const { conn, verdict } = await rawHandshake(port(total), {});
      conns.push(conn);
      assert.deepEqual(verdict, { kind: "welcome", mac: null });
    }
    const full = await rawHandshake(port(total), {});
    conns.push(full.conn);
    assert.match(refusal(full.verdict), /2 connections open \(maxConnections\)/);
    assert.equal(total.stats().overMaxConnections, 1);
    assert.equal(total.connections, 2, "the refused connection was never adopted");
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the test already.
      }
    }
    await Promise.all([perAddress.close(), total.close()]);
  }
});

Deno.test("tcp limits: a trickled frame is cut off at frameTimeoutMs, and its share of the budget comes back", async () => {
  const maxFrameBytes = 4 * 1024 * 1024;
  const server = serveTcp(makeServer(), {
    cluster: "blue",
    secret: SECRET,
    maxFrameBytes,
    frameTimeoutMs: 300,
    largeFrameBudgetBytes: 2 * maxFrameBytes,
  });
  const access = { cluster: "blue", secret: SECRET };
  const client = new TcpClient(server.address, access);
  const conns: Deno.TcpConn[] = [];
  try {
    const slow = await rawHandshake(port(server), access);
    conns.push(slow.conn);
    assert.equal((slow.verdict as ServerMessage).kind, "welcome");
    const started = performance.now();
    await writeAll(slow.conn, header(maxFrameBytes));
    let trickling = true;
    const trickle = (async () => {
      while (trickling) {
        await writeAll(slow.conn, new Uint8Array(1024));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })().catch(() => {});
    const failure = await failureThenEof(slow.reader);
    const elapsed = performance.now() - started;
    trickling = false;
    await trickle;
    assert.match(
      (failure as { failure: { message: string } }).failure.message,
      /not received whole within 300 ms/,
    );
    // Never before its deadline (the upper bound depends on the machine).
    assert.ok(elapsed >= 290, `cut off after ${elapsed.toFixed(0)} ms, before the deadline`);
    assert.equal(server.stats().frameTimeouts, 1);
    // Others are served meanwhile and after.
    assert.equal(await client.call("Echo.Say", "unaffected"), "unaffected");

    // The whole budget is free again: two frames of the largest size fit at once...
    const a = await rawHandshake(port(server), access);
    const b = await rawHandshake(port(server), access);
    const c = await rawHandshake(port(server), access);
    conns.push(a.conn, b.conn, c.conn);
    await writeAll(a.conn, header(maxFrameBytes));
    await writeAll(b.conn, header(maxFrameBytes));
    await waitFor(
      () => server.stats().largeFrameBytes === 2 * maxFrameBytes,
      "the server to read both headers",
    );
    // ...and a third does not: it is told why and closed.
    await writeAll(c.conn, header(maxFrameBytes));
    const over = await failureThenEof(c.reader);
    assert.match(
      (over as { failure: { message: string } }).failure.message,
      /memory shared by all connections/,
    );
    assert.equal(server.stats().frameBudgetRefusals, 1);
    // `a` finishes its frame (not a request: answered with a failure, and kept open)...
    await writeAll(a.conn, new Uint8Array(maxFrameBytes));
    const answered = await a.reader.next();
    assert.ok(answered !== "eof");
    assert.equal(decodeEnvelope(codec, answered).kind, "failure");
    // ...which gives its share back: a new large frame fits.
    await waitFor(
      () => server.stats().largeFrameBytes === maxFrameBytes,
      "the server to give back a's share",
    );
    const d = await rawHandshake(port(server), access);
    conns.push(d.conn);
    await writeAll(d.conn, header(maxFrameBytes));
    await writeAll(d.conn, new Uint8Array(maxFrameBytes));
    const answer = await d.reader.next();
    assert.ok(answer !== "eof", "the frame that fits the budget was read whole");
    assert.equal(server.stats().frameBudgetRefusals, 1);
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await client.close();
    await server.close();
  }
});

/** A logger that keeps its lines. */
function recordingLogger(): Logger & { lines: { level: LogLevel; message: string }[] } {
  const lines: { level: LogLevel; message: string }[] = [];
  return { lines, log: (level, message) => lines.push({ level, message }) };
}

Deno.test("tcp limits: a secret guesser's checked guesses fall by more than 100× after the first few; one summary line per interval", async () => {
  // The throttle runs on a virtual clock that moves 2 ms per attempt: a
  // guesser making 500 attempts a second, whatever this machine's speed.
  const clock = new VirtualClock();
  const logger = recordingLogger();
  const server = serveTcp(makeServer(), {
    cluster: "blue",
    secret: SECRET,
    clock,
    logger,
    summaryIntervalMs: 1_000,
    throttle: { freeFailures: 5, baseMs: 1_000, maxMs: 60_000 },
  });
  try {
    const attempts = 1_000;
    let checked = 0;
    let throttled = 0;
    for (let i = 0; i < attempts; i++) {
      const { conn, verdict } = await rawHandshake(port(server), {
        cluster: "blue",
        secret: `guess ${i}`,
      });
      conn.close();
      const reason = refusal(verdict);
      if (/shared secret does not match/.test(reason)) checked++;
      else if (/too many failed handshakes came from 127\.0\.0\.1/.test(reason)) throttled++;
      else assert.fail(`unexpected refusal: ${reason}`);
      await clock.advance(2);
    }
    assert.equal(checked + throttled, attempts);
    assert.equal(server.stats().handshakesFailed, checked);
    assert.equal(server.stats().throttled, throttled);
    // 5 free, then one after each wait (1 s, then 2 s): 7 in 2 virtual seconds.
    assert.equal(checked, 7, `${checked} guesses were checked`);
    const free = 5;
    const before = 1; // a guess per attempt while failures were free
    const after = (checked - free) / (attempts - free);
    assert.ok(before / after >= 100, `guessing throughput fell only ${before / after}×`);
    // One summary line per interval, with counts, not a line per refusal.
    assert.equal(logger.lines.length, 2, logger.lines.map((l) => l.message).join("\n"));
    assert.match(logger.lines[0].message, /handshake failed \(wrong secret or malformed\)/);
    assert.match(logger.lines[0].message, /× connection refused unread \(throttled\)/);
    // The right secret gets in once the wait is over, and clears the address's record.
    const blocked = await rawHandshake(port(server), { cluster: "blue", secret: SECRET });
    blocked.conn.close();
    assert.match(refusal(blocked.verdict), /too many failed handshakes/);
    await clock.advance(60_000);
    const member = await rawHandshake(port(server), { cluster: "blue", secret: SECRET });
    member.conn.close();
    assert.equal((member.verdict as ServerMessage).kind, "welcome");
    const next = await rawHandshake(port(server), { cluster: "blue", secret: "wrong" });
    next.conn.close();
    assert.match(refusal(next.verdict), /shared secret does not match/);
  } finally {
    await server.close();
  }
});

Deno.test("tcp limits: a malformed or oversized hello counts as a failure; a wrong cluster does not", async () => {
  const clock = new VirtualClock();
  const server = serveTcp(makeServer(), {
    cluster: "blue",
    secret: SECRET,
    clock,
    throttle: { freeFailures: 1, baseMs: 1_000 },
  });
  try {
    for (let i = 0; i < 3; i++) {
      const stranger = await rawHandshake(port(server), { cluster: "green", secret: SECRET });
      stranger.conn.close();
      assert.match(refusal(stranger.verdict), /not "green"/);
    }
    assert.equal(server.stats().handshakesFailed, 0, "a wrong cluster is not a guess");
    const malformed = encodeFrames([new Uint8Array([1, 2, 3])]);
    for (const bytes of [malformed, header(1 << 20), malformed]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: port(server) });
      await writeAll(conn, bytes);
      const buffer = new Uint8Array(4096);
      while ((await conn.read(buffer).catch(() => null)) !== null) {
        // Read the refusal to the end.
      }
      conn.close();
    }
    assert.equal(server.stats().handshakesFailed, 2, "the third was refused unread");
    assert.equal(server.stats().throttled, 1);
  } finally {
    await server.close();
  }
});
