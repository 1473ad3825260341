/**
 * A small HTTP/1.1 server on `Deno.listen` with the limits `Deno.serve`
 * does not offer: a deadline for a request's head and one for its body, an
 * idle keep-alive timeout, and caps on connections per listener and per
 * client address. It serves a `(Request) => Response` handler
 * ({@linkcode serveHttp}) or a lighter one that skips the WHATWG objects
 * ({@linkcode serveLightHttp}), one request at a time per connection
 * (pipelined requests wait their turn), with `Content-Length` or chunked
 * request bodies (see `http_parse.ts`) and `Content-Length` responses.
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";
import { EventSummary } from "./event_summary.ts";
import { formatAddr } from "./frame.ts";
import { HttpParseError, parseRequestHead, type RequestHead } from "./http_parse.ts";
import { BodyReader, closeQuietly, Input, lingerClose, writeAll } from "./http_body.ts";
import { headOnly, REASONS, withBody } from "./http_answer.ts";
import {
  asksClose,
  bodyBytes,
  headerLines,
  type LightRequest,
  type LightResponse,
  ServedRequest,
} from "./http_light.ts";
import type { Logger } from "./logger.ts";
import {
  AddressCounts,
  checkCount,
  checkDelay,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
} from "./tcp_limits.ts";
import { messageOf, type TcpAddr } from "./tcp_options.ts";

/**
 * Options of {@linkcode serveHttp}.
 *
 * @example
 * ```ts
 * import type { ServeHttpOptions } from "@distkit/distkit/net";
 *
 * const options: ServeHttpOptions = { port: 0, headerTimeoutMs: 5_000, maxConnectionsPerAddress: 64 };
 * ```
 */
export interface ServeHttpOptions {
  /** The address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The port; 0 picks a free one. Default 0. */
  port?: number;
  /**
   * A request's head (request line and headers) must arrive whole within
   * this many milliseconds of its first byte; otherwise the connection is
   * closed. Default 10,000.
   */
  headerTimeoutMs?: number;
  /**
   * A request's body must arrive whole within this many milliseconds of the
   * handler starting to read it; otherwise the connection is closed (and
   * the handler's read fails). Also bounds writing a response. Default 30,000.
   */
  bodyTimeoutMs?: number;
  /** A kept-alive connection with no request for this long is closed. Default 5,000 ms. */
  idleTimeoutMs?: number;
  /** The longest request head, in bytes; a longer one is answered 431. Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Connections open at once; one more is answered 503 unread and closed. Default 1,024. */
  maxConnections?: number;
  /**
   * A request body its handler left unread with at most this many bytes
   * still to come is read and dropped, so the connection serves the next
   * request (a keep-alive client refused a small write keeps its
   * connection). A larger one is not read: the answer goes out with
   * `Connection: close` and the connection is closed at once (issue 16:
   * draining refused 1 MiB bodies cost as much as taking them). Default 64 KiB.
   */
  maxDrainBytes?: number;
  /** Connections open at once from one client IP address. Default 256. */
  maxConnectionsPerAddress?: number;
  /** Answers a handler's exception (default: 500 with the message, as text). */
  onError?: (error: unknown) => Response;
  /** Where one summary line per interval goes (refusals and timeouts, counted). Default: none. */
  logger?: Logger;
  /** How often the summary line is written, in milliseconds. Default 10,000. */
  summaryIntervalMs?: number;
  /** The clock of the summary interval. Default: the real clock. */
  clock?: Clock;
}

/**
 * What an {@linkcode HttpServer} refused or cut off since it started.
 *
 * @example
 * ```ts
 * import type { HttpServerStats } from "@distkit/distkit/net";
 *
 * const cutOff = (s: HttpServerStats) => s.headerTimeouts + s.bodyTimeouts;
 * ```
 */
export interface HttpServerStats {
  /** Connections open now. */
  connections: number;
  /** Requests answered by the handler. */
  requests: number;
  /** Connections answered 503 unread: `maxConnections` were open. */
  overMaxConnections: number;
  /** Connections answered 503 unread: `maxConnectionsPerAddress` were open from the address. */
  overMaxPerAddress: number;
  /** Connections closed because a request head was not complete in time. */
  headerTimeouts: number;
  /** Connections closed because a request body was not complete in time. */
  bodyTimeouts: number;
  /** Connections closed because a response could not be written in time. */
  writeTimeouts: number;
  /** Kept-alive connections closed after `idleTimeoutMs` without a request. */
  idleTimeouts: number;
  /** Requests refused as malformed or ambiguous (400, 417, 431, 501, 505). */
  badRequests: number;
  /** Bodies left unread by the handler, small enough to be read and dropped (connection kept). */
  bodiesDrained: number;
  /** Connections closed after the answer with a body over `maxDrainBytes` left unread. */
  unreadBodies: number;
}

/**
 * A running server, as returned by {@linkcode serveHttp}.
 *
 * @example
 * ```ts
 * import type { HttpServer } from "@distkit/distkit/net";
 *
 * const url = (server: HttpServer) => `http://${server.address}/`;
 * ```
 */
export interface HttpServer {
  /** The address it listens on (the real port when 0 was asked for). */
  readonly addr: TcpAddr;
  /** The same as `host:port`. */
  readonly address: string;
  /** What was refused or cut off so far, and the connections open. */
  stats(): HttpServerStats;
  /**
   * Stops listening, closes idle connections, lets requests in progress
   * finish for up to `graceMs` (default 5,000), then closes every socket.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves `handler` over HTTP/1.1 on a TCP port, with deadlines and
 * connection caps (see {@linkcode ServeHttpOptions}).
 *
 * @example
 * ```ts
 * import { serveHttp } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const server = serveHttp((req) => new Response(`you asked for ${new URL(req.url).pathname}`));
 * const res = await fetch(`http://${server.address}/hello`);
 * assert.equal(await res.text(), "you asked for /hello");
 * await server.close();
 * ```
 *
 * @param handler Answers each request.
 * @param options Where to listen, the deadlines and the caps.
 * @throws {Error} when the address cannot be listened on.
 * @throws {RangeError} when an option is out of range.
 */
export function serveHttp(
  handler: (request: Request) => Response | Promise<Response>,
  options: ServeHttpOptions = {},
): HttpServer {
  const served = (request: ServedRequest) => {
    let taken: Request;
    try {
      taken = request.toRequest();
    } catch (err) {
      throw new RequestNotTaken(err);
    }
    return handler(taken);
  };
  return new HttpServerImpl(served, { ...options, light: false });
}

/**
 * Options of {@linkcode serveLightHttp}: those of {@linkcode serveHttp},
 * with an `onError` that may answer lightly.
 *
 * @example
 * ```ts
 * import type { ServeLightHttpOptions } from "@distkit/distkit/net";
 *
 * const options: ServeLightHttpOptions = { onError: () => ({ status: 500, body: "sorry" }) };
 * ```
 */
export interface ServeLightHttpOptions extends Omit<ServeHttpOptions, "onError"> {
  /** Answers a handler's exception (default: 500 with the message, as text). */
  onError?: (error: unknown) => LightResponse | Response;
}

/**
 * Serves `handler` like {@linkcode serveHttp}, with the same deadlines,
 * caps and answers, but hands it a {@linkcode LightRequest} and takes a
 * {@linkcode LightResponse} (or a `Response`): no `Request`, `Headers`,
 * body stream or `Response` per request unless the handler asks for one
 * (issue 20: they were a fifth of what a put over HTTP allocated).
 *
 * @example
 * ```ts
 * import { serveLightHttp } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const server = serveLightHttp(async (req) => {
 *   const body = new TextDecoder().decode(await req.bytes());
 *   return { status: 200, headers: { "content-type": "text/plain" }, body: `${req.target} ${body}` };
 * });
 * const res = await fetch(`http://${server.address}/kv/a`, { method: "PUT", body: "v" });
 * assert.equal(await res.text(), "/kv/a v");
 * await server.close();
 * ```
 *
 * @param handler Answers each request.
 * @param options Where to listen, the deadlines and the caps.
 * @throws {Error} when the address cannot be listened on.
 * @throws {RangeError} when an option is out of range.
 */
export function serveLightHttp(
  handler: (request: LightRequest) => HttpAnswer | Promise<HttpAnswer>,
  options: ServeLightHttpOptions = {},
): HttpServer {
  return new HttpServerImpl(handler, { ...options, light: true });
}

/**
 * What a {@linkcode serveLightHttp} handler answers with: a light answer, or a `Response`.
 *
 * @example
 * ```ts
 * import type { HttpAnswer } from "@distkit/distkit/net";
 *
 * const answers: HttpAnswer[] = [{ status: 204 }, new Response("hi")];
 * ```
 */
export type HttpAnswer = Response | LightResponse;

/** A `Request` could not be made of the request (serveHttp's handler was not called). */
class RequestNotTaken extends Error {
  constructor(cause: unknown) {
    super(`the request cannot be taken: ${messageOf(cause)}`, { cause });
  }
}

/** The methods `Request` refuses. */
const FORBIDDEN_METHOD = /^(connect|trace|track)$/i;

type Counter = Exclude<keyof HttpServerStats, "connections">;

/** A connection's state, for the limits and for closing. */
interface Connection {
  conn: Deno.TcpConn;
  host: string;
  /** Waiting for the first byte of a request: closing the server closes it at once. */
  idle: boolean;
  /** Why its deadline closed it, once one did. */
  timedOut: Counter | undefined;
  /** Its deadline: when, and what passing it counts as; undefined while none runs. */
  due: { at: number; counter: Counter; what: string } | undefined;
  /** The timer that checks the deadline, and when it fires (at or before `due.at`). */
  timer: ReturnType<typeof setTimeout> | undefined;
  timerAt: number;
  /** The last Host whose URL `Request` took (its requests need no new check). */
  takenHost: string | undefined;
}

const CRLF2 = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a]);
const encoder = new TextEncoder();

class HttpServerImpl implements HttpServer {
  readonly addr: TcpAddr;
  readonly address: string;
  readonly #handler: (request: ServedRequest) => HttpAnswer | Promise<HttpAnswer>;
  /** Hands the handler requests no `Request` was made of (serveLightHttp): each is checked. */
  readonly #light: boolean;
  readonly #headerTimeoutMs: number;
  readonly #bodyTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #maxHeaderBytes: number;
  readonly #maxConnections: number;
  readonly #maxPerAddress: number;
  readonly #maxDrainBytes: number;
  readonly #onError: (error: unknown) => HttpAnswer;
  readonly #listener: Deno.TcpListener;
  readonly #summary: EventSummary | undefined;
  readonly #conns = new Map<Connection, Promise<void>>();
  readonly #perAddress = new AddressCounts();
  readonly #turnedAway = new Set<Promise<void>>();
  #counts: Record<Counter, number> = {
    requests: 0,
    overMaxConnections: 0,
    overMaxPerAddress: 0,
    headerTimeouts: 0,
    bodyTimeouts: 0,
    writeTimeouts: 0,
    idleTimeouts: 0,
    badRequests: 0,
    bodiesDrained: 0,
    unreadBodies: 0,
  };
  #stopping = false;
  #accepting: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    handler: (request: ServedRequest) => HttpAnswer | Promise<HttpAnswer>,
    options: ServeLightHttpOptions & { light: boolean },
  ) {
    this.#handler = handler;
    this.#light = options.light;
    this.#headerTimeoutMs = checkDelay(options.headerTimeoutMs ?? 10_000, "headerTimeoutMs");
    this.#bodyTimeoutMs = checkDelay(options.bodyTimeoutMs ?? 30_000, "bodyTimeoutMs");
    this.#idleTimeoutMs = checkDelay(options.idleTimeoutMs ?? 5_000, "idleTimeoutMs");
    this.#maxHeaderBytes = checkCount(options.maxHeaderBytes ?? 16 * 1024, "maxHeaderBytes");
    this.#maxConnections = checkCount(
      options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      "maxConnections",
    );
    this.#maxPerAddress = checkCount(
      options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
      "maxConnectionsPerAddress",
    );
    this.#maxDrainBytes = options.maxDrainBytes ?? 64 * 1024;
    if (!(this.#maxDrainBytes >= 0)) {
      throw new RangeError(`maxDrainBytes must be 0 or more, got ${options.maxDrainBytes}`);
    }
    this.#onError = options.onError ??
      ((err) => ({ status: 500, body: `internal error: ${messageOf(err)}` }));
    if (options.summaryIntervalMs !== undefined) {
      checkDelay(options.summaryIntervalMs, "summaryIntervalMs");
    }
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 0;
    try {
      this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    } catch (err) {
      throw new Error(
        `cannot listen on ${formatAddr({ hostname, port })}: ${messageOf(err)}; ` +
          `pick another port or stop whatever holds it`,
        { cause: err },
      );
    }
    this.addr = { hostname: this.#listener.addr.hostname, port: this.#listener.addr.port };
    this.address = formatAddr(this.addr);
    const logger = options.logger;
    if (logger !== undefined) {
      this.#summary = new EventSummary({
        log: (line) => logger.log("warn", line, { listener: this.address }),
        prefix: `http ${this.address}: `,
        intervalMs: options.summaryIntervalMs,
        clock: options.clock ?? realClock,
      });
    }
    this.#accepting = this.#acceptLoop();
  }

  stats(): HttpServerStats {
    return { connections: this.#conns.size, ...this.#counts };
  }

  close(graceMs = 5_000): Promise<void> {
    this.#closing ??= this.#shutdown(graceMs);
    return this.#closing;
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    await this.#accepting;
    for (const c of this.#conns.keys()) if (c.idle) closeQuietly(c.conn);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#conns.values()),
      new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
    ]);
    clearTimeout(timer);
    for (const c of this.#conns.keys()) closeQuietly(c.conn);
    while (this.#turnedAway.size > 0) await Promise.all(this.#turnedAway);
    this.#summary?.close();
  }

  #count(counter: Counter, what?: string): void {
    this.#counts[counter]++;
    if (what !== undefined) this.#summary?.count(what);
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#stopping || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, a reset before the accept: pause, do not spin.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      if (this.#stopping) {
        closeQuietly(conn);
        return;
      }
      // Without it an answer can wait for the client's delayed ACK (~40 ms).
      try {
        conn.setNoDelay(true);
      } catch {
        // Already reset by the client: the first read says so.
      }
      const host = conn.remoteAddr.hostname;
      if (this.#conns.size >= this.#maxConnections) {
        this.#count("overMaxConnections", "connection refused unread (maxConnections)");
        this.#turnAway(conn, `${this.#maxConnections} connections are open (maxConnections)`);
        continue;
      }
      if (this.#perAddress.get(host) >= this.#maxPerAddress) {
        this.#count("overMaxPerAddress", "connection refused unread (maxConnectionsPerAddress)");
        this.#turnAway(
          conn,
          `${this.#maxPerAddress} connections are open from ${host} (maxConnectionsPerAddress)`,
        );
        continue;
      }
      const c: Connection = {
        conn,
        host,
        idle: true,
        timedOut: undefined,
        due: undefined,
        timer: undefined,
        timerAt: 0,
        takenHost: undefined,
      };
      this.#perAddress.add(host);
      const served = this.#serve(c).finally(() => {
        clearTimeout(c.timer);
        closeQuietly(conn);
        this.#conns.delete(c);
        this.#perAddress.remove(host);
      });
      this.#conns.set(c, served);
    }
  }

  /** Answers 503 without reading anything, then closes. */
  #turnAway(conn: Deno.TcpConn, why: string): void {
    const body = JSON.stringify({
      error: `this server is at its connection limit: ${why}; retry later`,
      // Turned away before a byte of the request was read: certainly not applied.
      mayHaveApplied: false,
      overloaded: true,
    });
    const bytes = encoder.encode(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n` +
        `retry-after: 1\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    const done = (async () => {
      try {
        // A new socket's send buffer is empty: this small answer is written at once.
        await conn.write(bytes);
      } catch {
        // The client is gone.
      } finally {
        closeQuietly(conn);
      }
    })();
    this.#turnedAway.add(done);
    done.finally(() => this.#turnedAway.delete(done));
  }

  /**
   * Sets the connection's one deadline: when it passes, the socket is
   * closed. Its timer moves only when the deadline comes sooner; one that
   * fires before the deadline sets itself again for the rest. A kept-alive
   * connection sets four deadlines per request (idle, head, body, answer),
   * each later than the last: a timer each cost the leader about 3% of its
   * CPU under load (issue 20), where this sets one every few seconds.
   */
  #deadline(c: Connection, ms: number, counter: Counter, what: string): void {
    const now = performance.now();
    c.due = { at: now + ms, counter, what };
    if (c.timer !== undefined && c.timerAt <= now + ms) return;
    clearTimeout(c.timer);
    this.#arm(c, now, ms);
  }

  #arm(c: Connection, now: number, ms: number): void {
    c.timerAt = now + ms;
    c.timer = setTimeout(() => this.#check(c), ms);
  }

  /** The timer fired: closes the connection if its deadline has passed, else waits on. */
  #check(c: Connection): void {
    c.timer = undefined;
    const due = c.due;
    if (due === undefined) return; // none runs; the next one sets a timer
    const now = performance.now();
    if (due.at > now) {
      this.#arm(c, now, due.at - now);
      return;
    }
    c.timedOut = due.counter;
    this.#count(due.counter, due.what);
    closeQuietly(c.conn);
  }

  /** Ends the deadline; its timer, if any, finds nothing due and stops. */
  #disarm(c: Connection): void {
    c.due = undefined;
  }

  /** Serves requests on one connection until it closes. */
  async #serve(c: Connection): Promise<void> {
    const io = new Input(c.conn);
    while (!this.#stopping || !c.idle) {
      // Waiting for a request: the idle deadline, then the head's from its first byte.
      c.idle = io.pending.length === 0;
      if (c.idle) {
        this.#deadline(c, this.#idleTimeoutMs, "idleTimeouts", "idle connection closed");
      } else {
        this.#deadline(c, this.#headerTimeoutMs, "headerTimeouts", "request head too slow");
      }
      let head: RequestHead | undefined;
      try {
        head = await this.#readHead(c, io);
      } catch (err) {
        if (err instanceof HttpParseError) {
          this.#count("badRequests", `bad request (${err.status})`);
          await this.#answerAndClose(c, err.status, err.message);
        }
        return;
      }
      if (head === undefined) return; // closed between requests
      const keepOpen = await this.#exchange(c, io, head);
      if (!keepOpen) return;
    }
  }

  /** Reads a request head; undefined when the client closed cleanly before one began. */
  async #readHead(c: Connection, io: Input): Promise<RequestHead | undefined> {
    let scanned = 0;
    while (true) {
      // Empty lines before a request line are skipped (RFC 9112 §2.2).
      while (io.pending[0] === 0x0d && io.pending[1] === 0x0a) io.consume(2);
      const end = indexOf(io.pending, CRLF2, Math.max(0, scanned - 3));
      if (end >= 0) {
        if (end > this.#maxHeaderBytes) break;
        const head = parseRequestHead(io.pending.subarray(0, end));
        io.consume(end + 4);
        return head;
      }
      scanned = io.pending.length;
      if (scanned > this.#maxHeaderBytes) break;
      const wasEmpty = io.pending.length === 0;
      if (!await io.fill()) {
        if (wasEmpty && c.timedOut === undefined) return undefined;
        throw new Error("the connection closed in the middle of a request head");
      }
      if (wasEmpty && io.pending.length > 0) {
        c.idle = false;
        this.#deadline(c, this.#headerTimeoutMs, "headerTimeouts", "request head too slow");
      }
    }
    throw new HttpParseError(431, `the request head is over ${this.#maxHeaderBytes} bytes`);
  }

  /** Runs one request through the handler and writes the answer; returns whether to go on. */
  async #exchange(c: Connection, io: Input, head: RequestHead): Promise<boolean> {
    this.#disarm(c);
    const hasBody = head.chunked || head.contentLength > 0;
    if (hasBody && (head.method === "GET" || head.method === "HEAD")) {
      this.#count("badRequests", "bad request (400)");
      await this.#answerAndClose(c, 400, `a ${head.method} request takes no body`);
      return false;
    }
    const host = head.headers.find(([name]) => name === "host")?.[1] ?? this.address;
    // The connection's last Host taken passed this check already.
    if (
      host !== c.takenHost &&
      !/^[A-Za-z0-9.\-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host)
    ) {
      this.#count("badRequests", "bad request (400)");
      await this.#answerAndClose(c, 400, "the Host header is not host[:port]");
      return false;
    }
    const body = hasBody ? new BodyReader(this, c, io, head) : undefined;
    const url = `http://${host}${head.target}`;
    const refused = this.#light ? this.#untakeable(c, head, host, url) : undefined;
    if (refused !== undefined) {
      this.#count("badRequests", "bad request (400)");
      await this.#answerAndClose(c, 400, refused.message);
      return false;
    }
    let response: HttpAnswer;
    try {
      response = await this.#handler(new ServedRequest(head, url, body));
    } catch (err) {
      if (err instanceof RequestNotTaken) {
        this.#count("badRequests", "bad request (400)");
        await this.#answerAndClose(c, 400, err.message);
        return false;
      }
      response = this.#onError(err);
    }
    this.#counts.requests++;
    if (body?.error instanceof HttpParseError) {
      // A malformed chunked body: whatever the handler made of it, the stream is lost.
      this.#count("badRequests", `bad request (${body.error.status})`);
      await this.#answerAndClose(c, body.error.status, body.error.message);
      return false;
    }
    if (body?.error !== undefined) return false; // the body timed out or the client left
    const askedClose = response instanceof Response
      ? /(^|,)\s*close\s*(,|$)/i.test(response.headers.get("connection") ?? "")
      : asksClose(response);
    // A body not read to its end leaves the stream mid-request: a small rest is read and dropped
    // (the connection goes on), a large one is not read at all (the connection closes).
    let bodyLeft = body !== undefined && !body.done;
    const rest = body?.rest() ?? 0;
    if (
      bodyLeft && head.keepAlive && !askedClose && !this.#stopping && rest <= this.#maxDrainBytes
    ) {
      if (!await body!.drain(io)) return false; // the body timed out or the client left
      this.#counts.bodiesDrained++;
      bodyLeft = false;
    }
    const close = !head.keepAlive || bodyLeft || this.#stopping || askedClose;
    const written = await this.#write(c, head, response, close);
    if (!written || !close) return written;
    if (bodyLeft && rest > this.#maxDrainBytes) {
      // Closed with the rest unread: the kernel resets the connection, after the answer (Linux
      // clients still read an answer that arrived before the reset; a client that lost it sees
      // a reset, which never says "not applied").
      this.#count("unreadBodies", "connection closed with a large request body unread");
      closeQuietly(c.conn);
    } else if (bodyLeft) {
      await lingerClose(c.conn, this.#maxDrainBytes);
    }
    return false;
  }

  /**
   * The light path's check that `Request` would take the request, as
   * serveHttp's making one does: a forbidden method or a Host it cannot
   * parse is refused (400) with the same message. A connection's requests
   * name the same Host: it is checked once per connection.
   */
  #untakeable(c: Connection, head: RequestHead, host: string, url: string): Error | undefined {
    if (host === c.takenHost && !FORBIDDEN_METHOD.test(head.method)) return undefined;
    try {
      new Request(url, { method: head.method });
    } catch (err) {
      return new RequestNotTaken(err);
    }
    c.takenHost = host;
    return undefined;
  }

  /** Writes a response with its length; false when the connection failed or timed out. */
  async #write(
    c: Connection,
    head: RequestHead,
    response: HttpAnswer,
    close: boolean,
  ): Promise<boolean> {
    const status = response.status;
    const bodiless = status === 204 || status === 304 || (status >= 100 && status < 200);
    let bytes: Uint8Array;
    let text: string;
    if (response instanceof Response) {
      try {
        bytes = bodiless ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
      } catch (err) {
        return this.#write(c, head, this.#onError(err), close);
      }
      text = `HTTP/1.1 ${status} ${response.statusText || REASONS[status] || ""}\r\n`;
      for (const [name, value] of response.headers) {
        if (name === "content-length" || name === "connection" || name === "transfer-encoding") {
          continue;
        }
        text += `${name}: ${value}\r\n`;
      }
    } else {
      bytes = bodiless ? new Uint8Array(0) : bodyBytes(response);
      text = `HTTP/1.1 ${status} ${REASONS[status] || ""}\r\n${headerLines(response)}`;
    }
    if (!bodiless) text += `content-length: ${bytes.length}\r\n`;
    if (close) text += "connection: close\r\n";
    else if (head.minor === 0) text += "connection: keep-alive\r\n";
    text += "\r\n";
    const out = head.method === "HEAD" || bodiless ? headOnly(text) : withBody(text, bytes);
    this.#deadline(c, this.#bodyTimeoutMs, "writeTimeouts", "response write too slow");
    try {
      await writeAll(c.conn, out);
      return true;
    } catch {
      return false;
    } finally {
      this.#disarm(c);
    }
  }

  /** Answers an error status with `Connection: close`, then closes (bounded by the write deadline). */
  async #answerAndClose(c: Connection, status: number, message: string): Promise<void> {
    const head: RequestHead = {
      method: "GET",
      target: "/",
      minor: 1,
      headers: [],
      contentLength: 0,
      chunked: false,
      keepAlive: false,
      expectContinue: false,
    };
    const response: LightResponse = {
      status,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ error: message }),
    };
    if (await this.#write(c, head, response, true)) await lingerClose(c.conn, this.#maxDrainBytes);
  }

  /** For {@linkcode BodyReader}: the body's deadline. */
  bodyDeadline(c: Connection): void {
    this.#deadline(c, this.#bodyTimeoutMs, "bodyTimeouts", "request body too slow");
  }

  /** For {@linkcode BodyReader}: the body is in, or abandoned. */
  bodyEnded(c: Connection): void {
    this.#disarm(c);
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const last = haystack.length - needle.length;
  // The first byte is looked for natively; the rest compared here.
  for (let i = haystack.indexOf(needle[0], from); i >= 0 && i <= last;) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
    i = haystack.indexOf(needle[0], i + 1);
  }
  return -1;
}
