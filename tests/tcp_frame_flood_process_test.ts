/**
 * Issue 16, "authenticated slow 64 MiB frames from 20 connections": a server
 * process whose clients know the secret, and then each announce a 64 MiB
 * frame and trickle it. Every one of them is cut off at the frame deadline,
 * a canary's calls keep being answered, and the process's memory comes back
 * to within 50 MB of where it started.
 */
import assert from "node:assert/strict";
import { Codec } from "../net/codec.ts";
import { decodeEnvelope } from "../net/envelope.ts";
import { TcpClient } from "../net/tcp.ts";
import { residentBytes } from "./proc_stats.ts";
import { rawHandshake, writeAll } from "./tcp_helpers.ts";

const SECRET = "the frame flood test's secret";
const CLUSTER = "flood";
const FRAME_TIMEOUT_MS = 3_000;
const CONNECTIONS = 20;
const ANNOUNCED = 64 * 1024 * 1024;
const MB = 1_000_000;

/** The server process: the defaults but a shorter frame deadline, and a budget that admits all 20. */
const SERVER = `
import { RpcServer, serveTcp } from ${
  JSON.stringify(new URL("../net/mod.ts", import.meta.url).href)
};
const rpc = new RpcServer();
rpc.addService("Echo", { Say: (args) => args });
const server = serveTcp(rpc, {
  cluster: ${JSON.stringify(CLUSTER)},
  secret: ${JSON.stringify(SECRET)},
  frameTimeoutMs: ${FRAME_TIMEOUT_MS},
  largeFrameBudgetBytes: ${2 * CONNECTIONS * ANNOUNCED},
});
console.log(JSON.stringify({ port: server.addr.port }));
for await (const _ of Deno.stdin.readable) { /* until the test closes stdin */ }
await server.close();
`;

/** The process's resident memory, in bytes. */
async function rss(pid: number): Promise<number> {
  const bytes = await residentBytes(pid);
  assert.ok(bytes !== undefined, `no VmRSS for process ${pid}`);
  return bytes;
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0];
}

const linux = Deno.build.os === "linux";

Deno.test({
  name: linux
    ? "tcp process: 20 authenticated connections trickling 64 MiB frames are cut off at the frame deadline; memory comes back"
    : "tcp process: frame flood (skipped: reads /proc, Linux only)",
  ignore: !linux,
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", SERVER],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const codec = new Codec();
    let canary: TcpClient | undefined;
    let canaryRuns = true;
    let canaryLoop: Promise<void> | undefined;
    const conns: Deno.TcpConn[] = [];
    try {
      const { port } = JSON.parse(await firstLine(child.stdout));
      const access = { cluster: CLUSTER, secret: SECRET };
      canary = new TcpClient(`127.0.0.1:${port}`, { ...access, timeoutMs: 5_000 });
      // Warm up the paths the flood takes, so the baseline includes their code.
      const warm = await rawHandshake(port, access);
      warm.conn.close();
      assert.equal(await canary.call("Echo.Say", "warm"), "warm");
      const baseline = await rss(child.pid);

      let answered = 0;
      const client = canary;
      canaryLoop = (async () => {
        while (canaryRuns) {
          assert.equal(await client.call("Echo.Say", answered), answered);
          answered++;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();

      let peak = baseline;
      const sampler = setInterval(() => {
        rss(child.pid).then((n) => peak = Math.max(peak, n), () => {});
      }, 100);
      const chunk = new Uint8Array(64 * 1024);
      const outcomes = await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const peer = await rawHandshake(port, access);
          conns.push(peer.conn);
          assert.equal(peer.verdict !== "eof" && peer.verdict.kind, "welcome");
          const header = new Uint8Array(4);
          new DataView(header.buffer).setUint32(0, ANNOUNCED);
          const started = performance.now();
          await writeAll(peer.conn, header);
          let sent = 0;
          let closed = false;
          const trickle = (async () => {
            while (!closed && sent < ANNOUNCED / 2) {
              await writeAll(peer.conn, chunk);
              sent += chunk.length;
              await new Promise((resolve) => setTimeout(resolve, 25));
            }
          })().catch(() => {});
          // Bounded, so that a server with no deadline fails the test instead of hanging it.
          let guard: ReturnType<typeof setTimeout> | undefined;
          const frame = await Promise.race([
            peer.reader.next(),
            new Promise<never>((_, reject) => {
              guard = setTimeout(
                () => reject(new Error("a trickled frame was not cut off within 60 s")),
                FRAME_TIMEOUT_MS + 60_000,
              );
            }),
          ]).finally(() => clearTimeout(guard));
          const eof = await peer.reader.next();
          const after = performance.now() - started;
          closed = true;
          await trickle;
          return { frame, eof, after, sent };
        }),
      );
      clearInterval(sampler);
      for (const { frame, eof, after } of outcomes) {
        assert.ok(frame !== "eof", "the server closed without saying why");
        const envelope = decodeEnvelope(codec, frame);
        assert.equal(envelope.kind, "failure");
        assert.match(
          (envelope as { failure: { message: string } }).failure.message,
          new RegExp(`not received whole within ${FRAME_TIMEOUT_MS} ms`),
        );
        assert.equal(eof, "eof", "the connection was closed after the failure");
        // Cut off by the deadline, not before it (how long after depends on the machine).
        assert.ok(after >= FRAME_TIMEOUT_MS - 10, `cut off after ${after.toFixed(0)} ms`);
      }
      const sent = outcomes.reduce((sum, o) => sum + o.sent, 0);

      // Memory comes back: poll (bounded) while the canary keeps the server busy.
      let now = await rss(child.pid);
      const waitUntil = performance.now() + 30_000;
      while (now > baseline + 50 * MB && performance.now() < waitUntil) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        now = await rss(child.pid);
      }
      canaryRuns = false;
      await canaryLoop;
      console.log(
        `baseline ${(baseline / MB).toFixed(0)} MB, peak ${(peak / MB).toFixed(0)} MB, ` +
          `after ${(now / MB).toFixed(0)} MB; ${(sent / MB).toFixed(0)} MB trickled; ` +
          `cut off after ${outcomes.map((o) => (o.after / 1000).toFixed(1)).join(", ")} s; ` +
          `canary answered ${answered} calls`,
      );
      assert.ok(
        now <= baseline + 50 * MB,
        `memory stayed at ${(now / MB).toFixed(0)} MB, baseline ${(baseline / MB).toFixed(0)} MB`,
      );
      assert.ok(answered > 0, "the canary was answered during the flood");
    } finally {
      canaryRuns = false;
      await canaryLoop?.catch(() => {});
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
      await canary?.close();
      await child.stdin.close();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    }
  },
});
