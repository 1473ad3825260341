/**
 * Request bodies on an HTTP/1.1 connection, for `serveHttp`: the
 * bytes read and not yet used, a body streamed out of them under its
 * deadline (drained when small and left unread), and closing after an
 * answer to a body left unread.
 *
 * @module
 */
import { ChunkedDecoder, type RequestHead } from "./http_parse.ts";

const encoder = new TextEncoder();

/**
 * The bytes read from a connection and not yet used.
 *
 * @example
 * ```ts ignore
 * const io = new Input(conn);
 * while (io.pending.length < 4 && await io.fill()) {}
 * ```
 */
export class Input {
  pending: Uint8Array = new Uint8Array(0);
  readonly #conn: Deno.TcpConn;
  readonly #buffer = new Uint8Array(64 * 1024);

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /**
   * Reads more; false at the end of the stream (or when the socket was closed).
   * `pending` may be a view of the read buffer until the next call (nothing
   * keeps one across it: the body's bytes are copied out).
   */
  async fill(): Promise<boolean> {
    // The bytes left over may lie in the buffer this read fills: they are kept aside first.
    if (this.pending.length > 0 && this.pending.buffer === this.#buffer.buffer) {
      this.pending = this.pending.slice();
    }
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buffer);
    } catch {
      return false;
    }
    if (n === null) return false;
    this.pending = this.pending.length === 0
      ? this.#buffer.subarray(0, n)
      : concat(this.pending, this.#buffer.subarray(0, n));
    return true;
  }

  consume(n: number): void {
    this.pending = this.pending.subarray(n);
  }
}

/** What a {@linkcode BodyReader} tells its server about a connection's body deadline. */
export interface BodyDeadlines<C> {
  /** The body has started: its deadline runs. */
  bodyDeadline(c: C): void;
  /** The body is in, or abandoned: its deadline ends. */
  bodyEnded(c: C): void;
}

/** The connection a {@linkcode BodyReader} reads from, and why its deadline closed it. */
export interface BodyConnection {
  conn: Deno.TcpConn;
  timedOut: string | undefined;
}

/**
 * Reads one request's body out of the connection, under the body deadline:
 * as a stream, or all at once ({@linkcode BodyReader.readAll}), one or the
 * other.
 *
 * @example
 * ```ts ignore
 * const body = new BodyReader(server, c, io, head);
 * const request = new Request(url, { method: "PUT", body: body.stream, duplex: "half" });
 * ```
 */
export class BodyReader<C extends BodyConnection = BodyConnection> {
  done = false;
  /** Why reading the body failed, if it did. */
  error: unknown;
  #started = false;
  #continued = false;
  /** A read is under way (the handler left one pending). */
  #pulling = false;
  #left: number;
  #stream: ReadableStream<Uint8Array> | undefined;
  /** Taken by the stream or by readAll. */
  #taken = false;
  readonly #chunked: ChunkedDecoder | undefined;
  readonly #server: BodyDeadlines<C>;
  readonly #c: C;
  readonly #io: Input;
  readonly #expectContinue: boolean;

  constructor(server: BodyDeadlines<C>, c: C, io: Input, head: RequestHead) {
    this.#server = server;
    this.#c = c;
    this.#io = io;
    this.#expectContinue = head.expectContinue;
    this.#left = head.contentLength;
    this.#chunked = head.chunked ? new ChunkedDecoder() : undefined;
  }

  /** The body as a stream, made when first asked for (not with {@linkcode readAll}). */
  get stream(): ReadableStream<Uint8Array> {
    if (this.#stream !== undefined) return this.#stream;
    this.#take();
    const server = this.#server;
    const c = this.#c;
    this.#stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        this.#pulling = true;
        try {
          await this.#start();
          const data = await this.#next(this.#io);
          if (data.length > 0) controller.enqueue(data);
          if (this.done) {
            server.bodyEnded(c);
            controller.close();
          }
        } catch (err) {
          controller.error(this.#failed(err));
        } finally {
          this.#pulling = false;
        }
      },
      cancel: () => server.bodyEnded(c),
    }, { highWaterMark: 0 });
    return this.#stream;
  }

  /**
   * The whole body in one array, read without a stream (the common case:
   * a small body, often in the same read as the head).
   *
   * @throws {Error} when the body was taken already, does not arrive in time, the client left,
   *   or it is malformed (an `HttpParseError`).
   */
  async readAll(): Promise<Uint8Array> {
    this.#take();
    this.#pulling = true;
    try {
      if (!this.#started) await this.#start();
      const io = this.#io;
      let out: Uint8Array;
      if (this.#chunked === undefined) {
        // One copy, straight out of what the connection read.
        out = new Uint8Array(this.#left);
        let at = 0;
        while (this.#left > 0) {
          if (io.pending.length === 0 && !await io.fill()) {
            throw new Error("the connection closed in the middle of the request body");
          }
          const n = Math.min(this.#left, io.pending.length);
          out.set(io.pending.subarray(0, n), at);
          io.consume(n);
          at += n;
          this.#left -= n;
        }
        this.done = true;
      } else {
        const parts: Uint8Array[] = [];
        while (!this.done) parts.push(await this.#next(io));
        out = parts.length === 1 ? parts[0] : concat(...parts);
      }
      this.#server.bodyEnded(this.#c);
      return out;
    } catch (err) {
      throw this.#failed(err);
    } finally {
      this.#pulling = false;
    }
  }

  #take(): void {
    if (this.#taken) throw new TypeError("the request body was read already; read it once");
    this.#taken = true;
  }

  /** At the first read: the body's deadline starts, and a waiting client is told to send it. */
  async #start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#server.bodyDeadline(this.#c);
    if (this.#expectContinue && !this.#continued) {
      this.#continued = true;
      await writeAll(this.#c.conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
  }

  /** Records a failed read; the error to give the reader. */
  #failed(err: unknown): unknown {
    this.error = err;
    this.#server.bodyEnded(this.#c);
    return this.#c.timedOut === "bodyTimeouts"
      ? new Error("the request body did not arrive in time (bodyTimeoutMs)")
      : err;
  }

  /**
   * The bytes still to come of a body of known length, counting those already received and not
   * read; Infinity when they cannot be drained here (chunked, a read under way, or a client
   * waiting for `100 Continue` that it was never sent).
   */
  rest(): number {
    if (this.done) return 0;
    if (this.#chunked !== undefined || this.#pulling) return Infinity;
    if (this.#expectContinue && !this.#continued) return Infinity;
    return this.#left;
  }

  /** Reads the rest of the body and drops it, under the body deadline; false if that failed. */
  async drain(io: Input): Promise<boolean> {
    this.#server.bodyDeadline(this.#c);
    try {
      while (!this.done) await this.#next(io);
      return true;
    } catch (err) {
      this.error = err;
      return false;
    } finally {
      this.#server.bodyEnded(this.#c);
    }
  }

  /** The next body bytes (a copy); sets `done` at the end. */
  async #next(io: Input): Promise<Uint8Array> {
    while (true) {
      if (io.pending.length === 0 && !await io.fill()) {
        throw new Error("the connection closed in the middle of the request body");
      }
      if (this.#chunked === undefined) {
        const n = Math.min(this.#left, io.pending.length);
        const data = io.pending.slice(0, n);
        io.consume(n);
        this.#left -= n;
        this.done = this.#left === 0;
        return data;
      }
      const { data, rest } = this.#chunked.feed(io.pending);
      io.pending = rest ?? new Uint8Array(0);
      this.done = this.#chunked.done;
      if (data.length > 0 || this.done) return concat(...data);
    }
  }
}

/**
 * After an answer to a request whose body was not read: stop writing, drain briefly (at most
 * `limit` bytes, 1 s), close.
 *
 * @example
 * ```ts ignore
 * await lingerClose(conn, 64 * 1024);
 * ```
 */
export async function lingerClose(conn: Deno.TcpConn, limit: number): Promise<void> {
  try {
    await conn.closeWrite();
  } catch {
    return;
  }
  // Closing with unread bytes would reset the connection, and the client
  // could lose the answer; read what follows for a moment (bounded) first.
  const buffer = new Uint8Array(64 * 1024);
  let drained = 0;
  const timer = setTimeout(() => closeQuietly(conn), 1_000);
  try {
    while (drained < limit) {
      const n = await conn.read(buffer);
      if (n === null) break;
      drained += n;
    }
  } catch {
    // Closed by the timer, or reset.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/**
 * Closes a connection that may be closed already.
 *
 * @example
 * ```ts ignore
 * closeQuietly(conn);
 * ```
 */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/**
 * Writes all of `bytes`.
 *
 * @example
 * ```ts ignore
 * await writeAll(conn, new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"));
 * ```
 */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/**
 * The parts in one new array (a copy, even of one part).
 *
 * @example
 * ```ts
 * import { concat } from "./http_body.ts";
 *
 * concat(Uint8Array.of(1), Uint8Array.of(2)); // Uint8Array [ 1, 2 ]
 * ```
 */
export function concat(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0].slice();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
