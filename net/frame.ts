/**
 * Length-prefixed framing for byte streams, and a framed TCP connection that
 * both the TCP server and the TCP client use.
 *
 * A frame is a 4-byte big-endian unsigned payload length followed by the
 * payload. {@linkcode FrameDecoder} turns a stream of chunks back into
 * payloads, {@linkcode encodeFrames} writes many frames into one buffer, and
 * {@linkcode FramedConnection} runs a read loop and a coalescing writer over a
 * `Deno.TcpConn`.
 *
 * @module
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from "./codec.ts";
import { ClosedError, FrameTooLargeError } from "./errors.ts";
import {
  ByteBudget,
  FRAME_BUDGET_FROM_BYTES,
  FrameBudgetError,
  FrameTimeoutError,
} from "./frame_limits.ts";

export { ByteBudget, FRAME_BUDGET_FROM_BYTES, FrameBudgetError, FrameTimeoutError };

/**
 * Bytes in a frame header: the big-endian payload length.
 *
 * @example
 * ```ts
 * import { encodeFrames, FRAME_HEADER_BYTES } from "./frame.ts";
 *
 * encodeFrames([new Uint8Array(10)]).length === FRAME_HEADER_BYTES + 10; // true
 * ```
 */
export const FRAME_HEADER_BYTES: number = 4;

/** The largest length a 4-byte header can announce. */
const MAX_U32 = 0xffff_ffff;

/**
 * Options for {@linkcode FrameDecoder}.
 *
 * @example
 * ```ts
 * import { FrameDecoder, type FrameDecoderOptions } from "./frame.ts";
 *
 * const options: FrameDecoderOptions = { maxFrameBytes: 1024 * 1024 };
 * new FrameDecoder(options);
 * ```
 */
export interface FrameDecoderOptions {
  /** The largest payload accepted, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /**
   * Memory shared with other decoders: a frame announcing more than
   * {@linkcode FRAME_BUDGET_FROM_BYTES} takes its whole length from it when
   * its header arrives, and gives it back once it is complete (or the
   * decoder is released), so many peers announcing large frames at once
   * cannot buffer more than the budget between them. Default: none.
   */
  budget?: ByteBudget;
}

/**
 * Splits a byte stream into length-prefixed frames.
 *
 * Chunks may be cut anywhere, even inside a header. Every payload is copied
 * out of the chunks, so the caller may reuse a chunk's buffer as soon as
 * {@linkcode FrameDecoder.push} returns. Each byte is copied once, however
 * the stream is cut, and a large frame's memory grows with the bytes that
 * arrived, not with the length its header announced. A header announcing more than `maxFrameBytes`
 * throws a {@linkcode FrameTooLargeError} at once, before any of that
 * payload is buffered; after that the decoder stays failed.
 *
 * @example Frames cut across chunks
 * ```ts
 * import { encodeFrames, FrameDecoder } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeFrames([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * const decoder = new FrameDecoder();
 * assert.deepEqual(decoder.push(bytes.subarray(0, 3)), []);
 * assert.deepEqual(decoder.push(bytes.subarray(3)), [new Uint8Array([1, 2]), new Uint8Array([3])]);
 * ```
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFilled = 0;
  /** Length of the payload being read, or -1 while reading a header. */
  #want = -1;
  /**
   * The payload being received across chunks: allocated whole for a small
   * frame; for a large one, a resizable buffer reserved for the announced
   * length and grown as bytes arrive, so memory follows what the peer sent,
   * and is handed back to the system at once when the frame is abandoned
   * (a buffer freed by the garbage collector often is not).
   */
  #partial: Uint8Array | undefined;
  #have = 0;
  #failure: FrameTooLargeError | FrameBudgetError | undefined;
  #budget: ByteBudget | undefined;
  /** Bytes the frame in progress took from the budget. */
  #reserved = 0;

  /**
   * Creates a decoder waiting for the first header.
   *
   * @param options The size limit.
   * @throws {RangeError} when `maxFrameBytes` is not an integer from 0 to 2^32-1.
   */
  constructor(options: FrameDecoderOptions = {}) {
    this.#maxFrameBytes = checkLimit(options.maxFrameBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
    this.#budget = options.budget;
  }

  /**
   * Gives back to the budget what the frame in progress took, and drops its
   * bytes. Call it when the stream ends; the decoder is not fed after it.
   */
  release(): void {
    this.#giveBack();
    const buffer = this.#partial?.buffer;
    if (buffer instanceof ArrayBuffer && buffer.resizable) buffer.resize(0);
    this.#partial = undefined;
    this.#have = 0;
  }

  /**
   * The largest payload accepted, in bytes. Setting it applies from the next
   * frame header on (a frame already announced keeps the limit it passed).
   *
   * @throws {RangeError} when set to anything but an integer from 0 to 2^32-1.
   */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  set maxFrameBytes(max: number) {
    this.#maxFrameBytes = checkLimit(max);
  }

  /** Bytes received that do not yet form a whole frame. */
  get bufferedBytes(): number {
    return this.#want < 0 ? this.#headerFilled : FRAME_HEADER_BYTES + this.#have;
  }

  /**
   * Feeds a chunk of the stream and returns the payloads it completed, in
   * order.
   *
   * @throws {FrameTooLargeError} when a header announces more than `maxFrameBytes`.
   * @throws {FrameBudgetError} when the shared budget cannot hold the frame announced.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    this.feed(chunk, (payload) => frames.push(payload));
    return frames;
  }

  /**
   * Feeds a chunk of the stream and hands each completed payload to
   * `onFrame` as soon as it is complete, so the frames before a bad header
   * are delivered before the error is thrown.
   *
   * @throws {FrameTooLargeError} when a header announces more than `maxFrameBytes`.
   * @throws {FrameBudgetError} when the shared budget cannot hold the frame announced.
   */
  feed(chunk: Uint8Array, onFrame: (payload: Uint8Array) => void): void {
    if (this.#failure) throw this.#failure;
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.#want < 0) {
        if (this.#headerFilled === 0 && end - offset >= FRAME_HEADER_BYTES) {
          this.#begin(readU32(chunk, offset));
          offset += FRAME_HEADER_BYTES;
        } else {
          const n = Math.min(FRAME_HEADER_BYTES - this.#headerFilled, end - offset);
          this.#header.set(chunk.subarray(offset, offset + n), this.#headerFilled);
          this.#headerFilled += n;
          offset += n;
          if (this.#headerFilled < FRAME_HEADER_BYTES) break;
          this.#headerFilled = 0;
          this.#begin(readU32(this.#header, 0));
        }
        if (this.#want === 0) {
          this.#want = -1;
          onFrame(new Uint8Array(0));
        }
        continue;
      }
      const missing = this.#want - this.#have;
      if (this.#have === 0 && end - offset >= missing) {
        // The whole payload is in this chunk: one copy.
        const payload = chunk.slice(offset, offset + missing);
        offset += missing;
        this.#want = -1;
        this.#giveBack();
        onFrame(payload);
        continue;
      }
      const n = Math.min(missing, end - offset);
      this.#keep(chunk.subarray(offset, offset + n));
      offset += n;
      if (this.#have === this.#want) {
        const buffer = this.#partial!.buffer as ArrayBuffer;
        // A fixed-length buffer: what the decoder hands on are views into this one, and Deno's
        // ops refuse views of a resizable buffer (a Raft node writing an entry received in a
        // large frame to Deno KV stopped: "can't create slice from resizable ArrayBuffer").
        const payload = buffer.resizable
          ? new Uint8Array(buffer.transferToFixedLength(this.#want))
          : new Uint8Array(buffer, 0, this.#want);
        this.#partial = undefined;
        this.#have = 0;
        this.#want = -1;
        this.#giveBack();
        onFrame(payload);
      }
    }
  }

  #begin(length: number): void {
    if (length > this.#maxFrameBytes) {
      this.#failure = new FrameTooLargeError(length, this.#maxFrameBytes);
      throw this.#failure;
    }
    if (this.#budget !== undefined && length > FRAME_BUDGET_FROM_BYTES) {
      if (!this.#budget.tryTake(length)) {
        this.#failure = new FrameBudgetError(length, this.#budget.available);
        throw this.#failure;
      }
      this.#reserved = length;
    }
    this.#want = length;
  }

  #giveBack(): void {
    if (this.#reserved === 0) return;
    this.#budget!.give(this.#reserved);
    this.#reserved = 0;
  }

  /** Copies part of the payload in progress into its buffer: each byte is copied once. */
  #keep(part: Uint8Array): void {
    if (this.#partial === undefined) {
      if (this.#want <= FRAME_BUDGET_FROM_BYTES) {
        this.#partial = new Uint8Array(this.#want);
      } else {
        // Reserved, not committed: pages are taken as they are written.
        this.#partial = new Uint8Array(new ArrayBuffer(0, { maxByteLength: this.#want }));
      }
    }
    const buffer = this.#partial.buffer as ArrayBuffer;
    if (buffer.resizable) {
      buffer.resize(this.#have + part.length);
      this.#partial = new Uint8Array(buffer);
    }
    this.#partial.set(part, this.#have);
    this.#have += part.length;
  }
}

function checkLimit(max: number): number {
  if (!Number.isInteger(max) || max < 0 || max > MAX_U32) {
    throw new RangeError(`maxFrameBytes must be an integer from 0 to 2^32-1, got ${max}`);
  }
  return max;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) |
    bytes[offset + 3]) >>> 0;
}

/**
 * Writes each payload with its 4-byte big-endian length in front, all into
 * one buffer, ready for a single write.
 *
 * @example
 * ```ts
 * import { encodeFrames } from "./frame.ts";
 *
 * encodeFrames([new Uint8Array([7]), new Uint8Array(0)]);
 * // Uint8Array [0, 0, 0, 1, 7, 0, 0, 0, 0]
 * ```
 *
 * @throws {RangeError} when a payload is longer than a header can announce (4 GiB - 1).
 */
export function encodeFrames(payloads: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const payload of payloads) {
    if (payload.length > MAX_U32) {
      throw new RangeError(
        `a frame payload of ${payload.length} bytes does not fit a 4-byte header`,
      );
    }
    total += FRAME_HEADER_BYTES + payload.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const payload of payloads) {
    const n = payload.length;
    out[offset] = n >>> 24;
    out[offset + 1] = (n >>> 16) & 0xff;
    out[offset + 2] = (n >>> 8) & 0xff;
    out[offset + 3] = n & 0xff;
    out.set(payload, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + n;
  }
  return out;
}

/**
 * The peer ended the stream (end of file), cleanly or in the middle of a
 * frame.
 *
 * @example
 * ```ts
 * import { PeerClosedError } from "./frame.ts";
 *
 * new PeerClosedError(0).message; // "the peer closed the connection"
 * ```
 */
export class PeerClosedError extends Error {
  /** Bytes of an unfinished frame that were lost. */
  readonly pendingBytes: number;

  /**
   * Creates the error.
   *
   * @param pendingBytes Bytes of an unfinished frame that were lost.
   */
  constructor(pendingBytes: number) {
    super(
      pendingBytes === 0
        ? "the peer closed the connection"
        : `the peer closed the connection in the middle of a frame (${pendingBytes} bytes lost)`,
    );
    this.name = "PeerClosedError";
    this.pendingBytes = pendingBytes;
  }
}

/**
 * Options for {@linkcode FramedConnection}.
 *
 * @example
 * ```ts
 * import type { FramedConnectionOptions } from "./frame.ts";
 *
 * const options: FramedConnectionOptions = {
 *   onFrame: (payload) => console.log(payload.length, "bytes"),
 *   onClose: (reason) => console.log("closed:", reason),
 * };
 * ```
 */
export interface FramedConnectionOptions {
  /** Called with each payload received, in order. It should not throw. */
  onFrame: (payload: Uint8Array) => void;
  /**
   * Called once, when the connection starts closing, with the reason:
   * whatever was passed to {@linkcode FramedConnection.close} (undefined
   * when nothing was), a {@linkcode PeerClosedError} when the peer ended the
   * stream, a {@linkcode FrameTooLargeError} when the peer announced an
   * oversized frame, or the I/O error that broke the connection.
   */
  onClose?: (reason: unknown) => void;
  /**
   * Called when the peer announces a frame larger than `maxFrameBytes`,
   * before the connection closes; payloads sent from it are still flushed
   * (for at most `lingerMs`) before the socket closes. Reading stops.
   */
  onFrameTooLarge?: (error: FrameTooLargeError) => void;
  /** The largest payload accepted, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /** How long queued frames may take to flush on a closing error. Default 1,000 ms. */
  lingerMs?: number;
  /** Size of the read buffer in bytes. Default 64 KiB. */
  readBufferBytes?: number;
  /**
   * Back-pressure: while more than this many bytes are queued for writing,
   * stop reading until the queue is flushed, so a peer that sends requests
   * but never reads the answers cannot make this side buffer without bound.
   * Use it on one side only (the server), or two busy peers can stop
   * reading each other at the same time. Default: never stop reading.
   */
  pauseReadingAboveBytes?: number;
  /**
   * A frame must arrive whole within this many milliseconds of its first
   * byte; otherwise `onReadLimit` runs with a {@linkcode FrameTimeoutError}
   * and the connection closes, so a peer trickling a large frame cannot hold
   * its memory for ever. The clock stops while reading is paused for
   * back-pressure. Default: no deadline.
   */
  frameTimeoutMs?: number;
  /** Memory shared with other connections for large frames (see {@linkcode FrameDecoderOptions.budget}). */
  budget?: ByteBudget;
  /**
   * Called when a frame misses its deadline or the shared budget cannot
   * hold it, before the connection closes the way it does for
   * `onFrameTooLarge`.
   */
  onReadLimit?: (error: FrameTimeoutError | FrameBudgetError) => void;
}

/**
 * A `Deno.TcpConn` carrying length-prefixed frames: it turns off Nagle's
 * algorithm, runs a read loop that hands each payload to `onFrame`, and
 * writes everything queued while a write is in progress as one write.
 *
 * {@linkcode FramedConnection.close} is idempotent, reports once through
 * `onClose`, and resolves when the read loop and the writer have stopped and
 * the socket is closed, so nothing outlives it.
 *
 * @example Echo a frame back
 * ```ts
 * import { FramedConnection } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const dialing = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const server: FramedConnection = new FramedConnection(await listener.accept(), {
 *   onFrame: (payload) => server.send(payload),
 * });
 * const reply = Promise.withResolvers<Uint8Array>();
 * const client = new FramedConnection(await dialing, { onFrame: reply.resolve });
 * client.send(new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await reply.promise, new Uint8Array([1, 2, 3]));
 * await client.close();
 * await server.closed; // the server saw the stream end and closed too
 * listener.close();
 * ```
 */
export class FramedConnection {
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** The local address. */
  readonly localAddr: Deno.NetAddr;
  #conn: Deno.TcpConn;
  #options: FramedConnectionOptions;
  #decoder: FrameDecoder;
  #queue: Uint8Array[] = [];
  /** Bytes queued or being written and not yet accepted by the socket. */
  #backlog = 0;
  #writer: Promise<void> | undefined;
  #reader: Promise<void>;
  #closing = false;
  #closed: Promise<void> | undefined;
  #reason: unknown;
  #resolveClosed!: () => void;
  #endLinger: (() => void) | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Fires when the frame in progress misses its deadline. */
  #frameTimer: ReturnType<typeof setTimeout> | undefined;
  #whenClosed: Promise<void>;

  /**
   * Takes ownership of `conn` and starts reading from it.
   *
   * @param conn An open TCP connection; it is closed when this closes.
   * @param options Callbacks and limits.
   */
  constructor(conn: Deno.TcpConn, options: FramedConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    this.remoteAddr = conn.remoteAddr;
    this.localAddr = conn.localAddr;
    this.#decoder = new FrameDecoder({
      maxFrameBytes: options.maxFrameBytes,
      budget: options.budget,
    });
    const timeout = options.frameTimeoutMs;
    if (
      timeout !== undefined &&
      (!(timeout > 0) || !Number.isFinite(timeout) || timeout > 0x7fff_ffff)
    ) {
      throw new RangeError(
        `frameTimeoutMs must be a positive finite number of milliseconds, got ${timeout}`,
      );
    }
    this.#whenClosed = new Promise((resolve) => (this.#resolveClosed = resolve));
    try {
      conn.setNoDelay(true);
    } catch {
      // Not fatal: only latency suffers.
    }
    this.#reader = this.#readLoop();
  }

  /** Whether the connection is closing or closed; `send` then throws. */
  get isClosed(): boolean {
    return this.#closing;
  }

  /** Why the connection closed (as passed to `onClose`); undefined while open. */
  get reason(): unknown {
    return this.#reason;
  }

  /** Resolves once the connection is fully closed, however that happened. */
  get closed(): Promise<void> {
    return this.#whenClosed;
  }

  /**
   * The largest payload accepted from the peer, in bytes. Setting it applies
   * from the next frame header on, so a protocol can hold a peer to small
   * frames until it has said who it is.
   *
   * @throws {RangeError} when set to anything but an integer from 0 to 2^32-1.
   */
  get maxFrameBytes(): number {
    return this.#decoder.maxFrameBytes;
  }

  set maxFrameBytes(max: number) {
    this.#decoder.maxFrameBytes = max;
  }

  /** Payloads queued and not yet handed to the socket. */
  get queuedFrames(): number {
    return this.#queue.length;
  }

  /**
   * Queues one payload. Everything queued before the writer next runs goes
   * out in a single write.
   *
   * @throws {ClosedError} when the connection is closing or closed.
   */
  send(payload: Uint8Array): void {
    if (this.#closing) throw new ClosedError(`connection to ${formatAddr(this.remoteAddr)}`);
    this.#queue.push(payload);
    this.#backlog += FRAME_HEADER_BYTES + payload.length;
    this.#writer ??= this.#writeLoop();
  }

  /** Resolves when every queued payload is written, or the connection closed. */
  async flush(): Promise<void> {
    while (this.#writer) await this.#writer;
  }

  /**
   * Closes the connection now: queued payloads are dropped, the read loop
   * stops, and `onClose(reason)` runs once (on the first call). Resolves when
   * everything is torn down. Safe to call any number of times.
   */
  close(reason?: unknown): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#begin(reason);
    this.#closed = this.#teardown();
    return this.#closed;
  }

  /**
   * Closes the connection gracefully: reading stops and `send` throws at
   * once, but the payloads already queued are written first (for at most
   * `lingerMs`), then the socket closes and `onClose(reason)` runs. Resolves
   * when everything is torn down. A later {@linkcode FramedConnection.close}
   * cuts the wait short.
   */
  finish(reason?: unknown): Promise<void> {
    this.#closeAfterFlush(reason);
    return this.#whenClosed;
  }

  #begin(reason: unknown): void {
    this.#closing = true;
    this.#reason = reason;
    this.#queue = [];
    this.#backlog = 0;
    try {
      this.#options.onClose?.(reason);
    } catch {
      // A failing callback must not keep the socket open.
    }
  }

  async #teardown(): Promise<void> {
    clearTimeout(this.#lingerTimer);
    this.#stopFrameTimer();
    this.#endLinger?.();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    await Promise.allSettled([this.#reader, this.#writer]);
    // The read loop has stopped: nothing feeds the decoder or starts a timer any more.
    this.#stopFrameTimer();
    this.#decoder.release();
    this.#resolveClosed();
  }

  /** Stops reading, flushes what is queued (bounded by lingerMs), then closes. */
  async #closeAfterFlush(reason: unknown): Promise<void> {
    if (this.#closing) return;
    this.#closing = true; // refuse new sends, keep the queue
    const linger = this.#options.lingerMs ?? 1000;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => {
        this.#lingerTimer = setTimeout(resolve, linger);
        this.#endLinger = resolve;
      }),
    ]);
    clearTimeout(this.#lingerTimer);
    this.#endLinger = undefined;
    if (this.#closed) return;
    this.#begin(reason);
    this.#closed = this.#teardown();
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(this.#options.readBufferBytes ?? 64 * 1024);
    let completed = 0;
    const onFrame = (payload: Uint8Array) => {
      completed++;
      if (!this.#closing) this.#options.onFrame(payload);
    };
    const pauseAbove = this.#options.pauseReadingAboveBytes ?? Infinity;
    while (!this.#closing) {
      if (this.#backlog > pauseAbove && this.#writer) {
        // Not the peer's delay: the frame's clock starts again after.
        this.#stopFrameTimer();
        await this.flush();
        if (this.#decoder.bufferedBytes > 0) this.#startFrameTimer();
        continue;
      }
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch (err) {
        if (!this.#closing) this.close(err);
        return;
      }
      if (n === null) {
        if (!this.#closing) this.close(new PeerClosedError(this.#decoder.bufferedBytes));
        return;
      }
      const before = completed;
      try {
        this.#decoder.feed(buffer.subarray(0, n), onFrame);
      } catch (err) {
        if (this.#closing) return;
        if (err instanceof FrameTooLargeError || err instanceof FrameBudgetError) {
          this.#stopFrameTimer();
          try {
            if (err instanceof FrameTooLargeError) this.#options.onFrameTooLarge?.(err);
            else this.#options.onReadLimit?.(err);
          } catch {
            // Closing anyway.
          }
          // Not awaited: teardown waits for this loop, which must end first.
          this.#closeAfterFlush(err);
        } else {
          this.close(err); // onFrame threw
        }
        return;
      }
      // The deadline runs from the first byte of the frame in progress.
      if (this.#decoder.bufferedBytes === 0) this.#stopFrameTimer();
      else if (this.#frameTimer === undefined || completed !== before) this.#startFrameTimer();
    }
  }

  #startFrameTimer(): void {
    const timeoutMs = this.#options.frameTimeoutMs;
    if (timeoutMs === undefined || this.#closing) return;
    clearTimeout(this.#frameTimer);
    this.#frameTimer = setTimeout(() => {
      this.#frameTimer = undefined;
      if (this.#closing) return;
      const err = new FrameTimeoutError(timeoutMs, this.#decoder.bufferedBytes);
      try {
        this.#options.onReadLimit?.(err);
      } catch {
        // Closing anyway.
      }
      // The read loop ends when the socket closes; what the decoder holds is
      // released in the teardown.
      this.#closeAfterFlush(err);
    }, timeoutMs);
  }

  #stopFrameTimer(): void {
    clearTimeout(this.#frameTimer);
    this.#frameTimer = undefined;
  }

  async #writeLoop(): Promise<void> {
    // Let every send of the current turn join the first write.
    await null;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#queue;
        this.#queue = [];
        const bytes = encodeFrames(batch);
        let offset = 0;
        while (offset < bytes.length) {
          const n = await this.#conn.write(bytes.subarray(offset));
          offset += n;
          this.#backlog -= n;
        }
      }
    } catch (err) {
      this.#writer = undefined;
      if (!this.#closed) this.close(err);
      return;
    }
    this.#writer = undefined;
  }
}

/**
 * Formats an address as `host:port` (`[host]:port` for IPv6).
 *
 * @example
 * ```ts
 * import { formatAddr } from "@distkit/distkit/net";
 *
 * formatAddr({ hostname: "127.0.0.1", port: 7000 }); // "127.0.0.1:7000"
 * ```
 */
export function formatAddr(addr: { hostname: string; port: number }): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}
