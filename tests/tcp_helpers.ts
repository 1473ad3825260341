/** Helpers shared by the TCP test files. */
import assert from "node:assert/strict";
import { encodeFrames, FrameDecoder } from "../net/frame.ts";
import { delay } from "../net/mod.ts";
import {
  decodeServerMessage,
  encodeHello,
  encodeProof,
  importSecret,
  proofOf,
  randomNonce,
  type ServerMessage,
} from "../net/handshake.ts";

/** Polls `condition` every 5 ms until it holds, failing after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await delay(5);
  }
}

/** Awaits `promise`, which must reject with a `type`; runs `check` on the error and returns it. */
export async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
  check?: (err: E) => void,
): Promise<E> {
  try {
    const value = await promise;
    assert.fail(`expected ${type.name}, but the call resolved with ${JSON.stringify(value)}`);
  } catch (err) {
    if (!(err instanceof type)) {
      throw new assert.AssertionError({
        message: `expected ${type.name}, got ${(err as Error)?.name}: ${(err as Error)?.message}`,
        actual: err,
        expected: type,
      });
    }
    check?.(err);
    return err;
  }
}

/**
 * What a {@linkcode FakeServer} sends back for one frame: payloads to frame,
 * raw bytes (`{ raw }`, framed or not), or "hang up".
 */
export type Script =
  | Uint8Array[]
  | { raw: Uint8Array }
  | "hang up"
  | Promise<Uint8Array[] | { raw: Uint8Array } | "hang up">;

/**
 * A fake server for testing the client's end: `script` gets each frame the
 * client sends on a connection (its index on that connection, the payload)
 * and returns what to send back (see {@linkcode Script}).
 */
export class FakeServer {
  readonly listener: Deno.TcpListener;
  /** Everything every client sent, as received. */
  readonly received: Uint8Array[] = [];
  accepted = 0;
  #conns = new Set<Deno.TcpConn>();
  #loops: Promise<void>[] = [];
  #accepting: Promise<void>;
  #stopped = Promise.withResolvers<"hang up">();

  constructor(
    script: (index: number, payload: Uint8Array) => Script,
  ) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.#accepting = (async () => {
      while (true) {
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch {
          return;
        }
        this.accepted++;
        this.#conns.add(conn);
        this.#loops.push(this.#serve(conn, script));
      }
    })();
  }

  get address(): string {
    return `127.0.0.1:${this.listener.addr.port}`;
  }

  async #serve(
    conn: Deno.TcpConn,
    script: (index: number, payload: Uint8Array) => Script,
  ): Promise<void> {
    const decoder = new FrameDecoder();
    const buffer = new Uint8Array(65536);
    let index = 0;
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        this.received.push(buffer.slice(0, n));
        for (const payload of decoder.push(buffer.subarray(0, n))) {
          const answer = await Promise.race([script(index++, payload), this.#stopped.promise]);
          if (answer === "hang up") return;
          const bytes = "raw" in answer ? answer.raw : encodeFrames(answer);
          let offset = 0;
          while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
        }
      }
    } catch {
      // The client hung up.
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  async close(): Promise<void> {
    this.#stopped.resolve("hang up");
    this.listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all(this.#loops);
  }
}

/**
 * A raw socket that ran the client's side of the handshake by hand (with the
 * secret, when given), for tests that then misbehave below the TCP client:
 * trickle frames, announce huge ones, guess secrets. `verdict` is the
 * server's last handshake message (`welcome` when let in).
 */
export interface RawHandshake {
  conn: Deno.TcpConn;
  verdict: ServerMessage | "eof";
}

/** Reads whole frames from `conn`, one at a time. */
export class FrameReader {
  readonly #conn: Deno.TcpConn;
  readonly #decoder = new FrameDecoder();
  readonly #frames: Uint8Array[] = [];
  readonly #buffer = new Uint8Array(4096);

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** The next frame, or "eof" when the peer closed (or reset) the connection first. */
  async next(): Promise<Uint8Array | "eof"> {
    while (this.#frames.length === 0) {
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buffer);
      } catch {
        return "eof";
      }
      if (n === null) return "eof";
      this.#frames.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#frames.shift()!;
  }
}

/** Connects to `port` and runs the handshake by hand, proving `secret` (which may be wrong). */
export async function rawHandshake(
  port: number,
  options: { cluster?: string; secret?: string },
): Promise<RawHandshake & { reader: FrameReader }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new FrameReader(conn);
  const nonce = randomNonce();
  const cluster = options.cluster ?? "";
  const secret = options.secret === undefined
    ? undefined
    : new TextEncoder().encode(options.secret);
  const decode = (frame: Uint8Array | "eof") =>
    frame === "eof" ? "eof" as const : decodeServerMessage(frame);
  try {
    await writeAll(conn, encodeFrames([encodeHello({ cluster, nonce, hasSecret: !!secret })]));
  } catch {
    return { conn, reader, verdict: "eof" };
  }
  let verdict = decode(await reader.next());
  if (verdict !== "eof" && verdict.kind === "challenge" && secret !== undefined) {
    const key = await importSecret(secret);
    const mac = await proofOf(key, "client", cluster, nonce, verdict.nonce);
    try {
      await writeAll(conn, encodeFrames([encodeProof(mac)]));
    } catch {
      return { conn, reader, verdict: "eof" };
    }
    verdict = decode(await reader.next());
  }
  return { conn, reader, verdict };
}

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
