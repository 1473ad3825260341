/**
 * A minimal HTTP/1.1 client over `Deno.connect`, for load generators: one
 * request at a time per connection, keep-alive, `Content-Length` or chunked
 * response bodies, and a pool of idle connections per origin.
 *
 * Why not `fetch`: at 64 concurrent requests on 2 cores, `fetch` itself
 * limited the puts a server could be sent (etcd reached about 60% of what a
 * Go driver got from it on the same machine); this client does not.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF_CRLF = [13, 10, 13, 10];

/** A response: status, lower-cased headers, the whole body. */
export interface HttpResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Index of `pattern` in `buf[from, to)`, or -1. */
function find(buf: Uint8Array, from: number, to: number, pattern: number[]): number {
  outer: for (let i = from; i + pattern.length <= to; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** One keep-alive connection. */
class Connection {
  readonly #conn: Deno.TcpConn;
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  reusable = true;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  close(): void {
    this.reusable = false;
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  /** Reads more bytes into the buffer; throws at end of stream. */
  async #fill(): Promise<void> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const live = this.#end - this.#start;
      const next = new Uint8Array(
        live * 2 > this.#buf.length ? this.#buf.length * 2 : this.#buf.length,
      );
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = live;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) throw new Error("the server closed the connection");
    this.#end += n;
  }

  /** The next `\r\n`-terminated line. */
  async #line(): Promise<string> {
    while (true) {
      const at = find(this.#buf, this.#start, this.#end, [13, 10]);
      if (at >= 0) {
        const line = decoder.decode(this.#buf.subarray(this.#start, at));
        this.#start = at + 2;
        return line;
      }
      await this.#fill();
    }
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) await this.#fill();
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  async request(head: Uint8Array, body: Uint8Array): Promise<HttpResponse> {
    // Small bodies ride in the head's write; a large one is written as it is, not copied.
    const parts = body.length <= 64 * 1024 ? [concat(head, body)] : [head, body];
    // Written while the answer is read: a server may answer before it reads
    // the body (a refusal), and then stop reading it.
    let written = false;
    const writing = (async () => {
      for (const part of parts) {
        for (let at = 0; at < part.length;) at += await this.#conn.write(part.subarray(at));
      }
      written = true;
    })();
    // Its failure is reported below, or does not matter (the answer came first).
    writing.catch(() => {});
    let at: number;
    try {
      while ((at = find(this.#buf, this.#start, this.#end, CRLF_CRLF)) < 0) await this.#fill();
    } catch (err) {
      // No answer: the write's own failure (a reset) says more, when there is one.
      await writing;
      throw err;
    }
    // Answered before the whole body was sent: the connection cannot carry another request.
    if (!written) this.reusable = false;
    const lines = decoder.decode(this.#buf.subarray(this.#start, at)).split("\r\n");
    this.#start = at + 4;
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    let payload: Uint8Array;
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      payload = new Uint8Array();
    } else if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
      const parts: Uint8Array[] = [];
      while (true) {
        const size = parseInt(await this.#line(), 16);
        if (!(size >= 0)) throw new Error("malformed chunked body");
        if (size === 0) break;
        parts.push(await this.#take(size));
        await this.#line();
      }
      while ((await this.#line()) !== "") { /* trailers */ }
      payload = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        payload.set(p, offset);
        offset += p.length;
      }
    } else if (headers.has("content-length")) {
      payload = await this.#take(Number(headers.get("content-length")));
    } else {
      throw new Error("a response without a length (read to the end) is not supported");
    }
    if (headers.get("connection")?.toLowerCase() === "close") this.reusable = false;
    return { status, headers, body: payload };
  }
}

/**
 * HTTP/1.1 requests to any `http://` origin, reusing idle connections.
 *
 * @example
 * ```ts ignore
 * const client = new Http1Client();
 * const res = await client.request("PUT", "http://127.0.0.1:8001/kv/x", { body: "1" });
 * console.log(res.status);
 * client.close();
 * ```
 */
export class Http1Client {
  readonly #idle = new Map<string, Connection[]>();
  readonly #open = new Set<Connection>();

  /** Sends a request and reads the whole response. A `signal` that fires closes the connection. */
  async request(
    method: string,
    url: string,
    options: { body?: string | Uint8Array; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<HttpResponse> {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:") throw new TypeError(`only http:// URLs, got ${url}`);
    const origin = parsed.host;
    const body = typeof options.body === "string"
      ? encoder.encode(options.body)
      : options.body ?? new Uint8Array();
    const head = encoder.encode(
      `${method} ${parsed.pathname}${parsed.search} HTTP/1.1\r\nhost: ${origin}\r\n` +
        (options.contentType ? `content-type: ${options.contentType}\r\n` : "") +
        `content-length: ${body.length}\r\n\r\n`,
    );
    const signal = options.signal;
    signal?.throwIfAborted();
    let conn = this.#idle.get(origin)?.pop();
    if (conn === undefined) {
      const tcp = await Deno.connect({
        hostname: parsed.hostname,
        port: Number(parsed.port || 80),
        signal,
      });
      tcp.setNoDelay(true);
      conn = new Connection(tcp);
    }
    this.#open.add(conn);
    const c = conn;
    const abort = () => c.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const response = await c.request(head, body);
      if (c.reusable) {
        const idle = this.#idle.get(origin) ?? [];
        idle.push(c);
        this.#idle.set(origin, idle);
      } else c.close();
      return response;
    } catch (err) {
      c.close();
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener("abort", abort);
      if (!c.reusable) this.#open.delete(c);
    }
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.#open) c.close();
    this.#open.clear();
    this.#idle.clear();
  }
}
