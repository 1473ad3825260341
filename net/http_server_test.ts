import assert from "node:assert/strict";
import { talk } from "./test_util.ts";
import { serveHttp } from "./http_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An echo handler: method, raw URL path and the body it read. */
async function echo(req: Request): Promise<Response> {
  const body = req.body === null ? "" : await req.text();
  const path = req.url.slice(req.url.indexOf("/", 7));
  return new Response(`${req.method} ${path} ${body}`, {
    headers: { "x-echo": "1" },
  });
}

Deno.test("http server: fetch with keep-alive, bodies of known length and chunked, HEAD", async () => {
  const server = serveHttp(echo);
  try {
    const base = `http://${server.address}`;
    const get = await fetch(`${base}/a?q=1`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("x-echo"), "1");
    assert.equal(await get.text(), "GET /a?q=1 ");
    const put = await fetch(`${base}/kv/k`, { method: "PUT", body: "value" });
    assert.equal(await put.text(), "PUT /kv/k value");
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode("streamed "));
        controller.enqueue(encoder.encode("body"));
        controller.close();
      },
    });
    const chunked = await fetch(`${base}/c`, { method: "POST", body: stream });
    assert.equal(await chunked.text(), "POST /c streamed body");
    const head = await fetch(`${base}/h`, { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), String("HEAD /h ".length));
    assert.equal(await head.text(), "");
    assert.equal(server.stats().requests, 4);
    assert.ok(server.stats().connections <= 1, "fetch kept one connection alive");
  } finally {
    await server.close();
  }
});

Deno.test("http server: the path as sent, pipelined requests, 100-continue", async () => {
  const server = serveHttp(echo);
  try {
    const text = await talk(
      server.addr.port,
      "GET /kv/a/../b HTTP/1.1\r\nHost: x\r\n\r\n" +
        "PUT /kv/%2e%2e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" +
        "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    const bodies = text.split("\r\n\r\n").slice(1).map((b) => b.split("HTTP/1.1")[0]);
    assert.deepEqual(bodies, ["GET /kv/a/../b ", "PUT /kv/%2e%2e hi", "GET /last "]);
    assert.match(text, /connection: close/);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      await conn.write(encoder.encode(
        "PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
      ));
      const buffer = new Uint8Array(1024);
      const n = await conn.read(buffer);
      assert.equal(decoder.decode(buffer.subarray(0, n!)), "HTTP/1.1 100 Continue\r\n\r\n");
      await conn.write(encoder.encode("abc"));
      const m = await conn.read(buffer);
      assert.match(decoder.decode(buffer.subarray(0, m!)), /^HTTP\/1\.1 200 OK[^]*PUT \/e abc$/);
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("http server: smuggling, bad chunks and overlong heads get 400/431 and a closed connection", async () => {
  const server = serveHttp(echo, { maxHeaderBytes: 1024 });
  try {
    const cases: [string, RegExp][] = [
      [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        /^HTTP\/1\.1 400 [^]*both Content-Length/,
      ],
      [
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        /^HTTP\/1\.1 400 [^]*chunk size/,
      ],
      ["GET / HTTP/1.1\r\nHost: x\r\nX: " + "a".repeat(2000) + "\r\n\r\n", /^HTTP\/1\.1 431 /],
      ["GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", /^HTTP\/1\.1 400 [^]*no body/],
      ["GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", /^HTTP\/1\.1 400 [^]*Host/],
    ];
    for (const [request, expected] of cases) {
      const text = await talk(server.addr.port, request);
      assert.match(text, expected, JSON.stringify(request.slice(0, 60)));
      assert.match(text, /connection: close/);
    }
    assert.equal(server.stats().badRequests, 5);
  } finally {
    await server.close();
  }
});

Deno.test("http server: an unread body is answered, then the connection closes", async () => {
  const server = serveHttp(() => new Response("refused", { status: 413 }));
  try {
    const text = await talk(server.addr.port, [
      encoder.encode("PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"),
      new Uint8Array(50_000),
    ]);
    assert.match(text, /^HTTP\/1\.1 413 [^]*connection: close[^]*refused$/);
  } finally {
    await server.close();
  }
});

Deno.test("http server: a small unread body is dropped and the connection serves the next request", async () => {
  const server = serveHttp((req) =>
    req.url.endsWith("/refuse") ? new Response("refused", { status: 503 }) : echo(req)
  );
  try {
    const text = await talk(server.addr.port, [
      encoder.encode("PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"),
      new Uint8Array(5000).fill(0x61),
      encoder.encode(
        "PUT /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
      ),
    ]);
    // The 5,000 bytes were not taken for the next request's head: it was answered in its turn.
    assert.match(text, /^HTTP\/1\.1 503 [^]*refused\s*HTTP\/1\.1 200 [^]*PUT \/next ok$/);
    assert.doesNotMatch(text.slice(0, text.indexOf("refused")), /connection: close/);
    assert.equal(server.stats().bodiesDrained, 1);
    assert.equal(server.stats().unreadBodies, 0);
  } finally {
    await server.close();
  }
});

Deno.test("http server: a large unread body is not read: answered with Connection: close, then closed", async () => {
  const server = serveHttp(() => new Response("refused", { status: 503 }), {
    maxDrainBytes: 1024,
  });
  try {
    // One write: the server may close as soon as it has answered the head.
    const head = encoder.encode("PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
    const request = new Uint8Array(head.length + 64 * 1024);
    request.set(head);
    const text = await talk(server.addr.port, [request]);
    // The answer reaches the client although the rest of its body was never read.
    assert.match(text, /^HTTP\/1\.1 503 [^]*connection: close[^]*refused$/);
    assert.equal(server.stats().unreadBodies, 1);
    assert.equal(server.stats().bodiesDrained, 0);
  } finally {
    await server.close();
  }
});

Deno.test("http server: head, body and idle deadlines close the connection", async () => {
  let bodyError: unknown;
  const server = serveHttp(async (req) => {
    try {
      await req.arrayBuffer();
    } catch (err) {
      bodyError = err;
      throw err;
    }
    return new Response("ok");
  }, { headerTimeoutMs: 150, bodyTimeoutMs: 150, idleTimeoutMs: 150 });
  try {
    // A head that never ends.
    assert.equal(await talk(server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1"), "");
    assert.equal(server.stats().headerTimeouts, 1);
    // A body that never ends.
    assert.equal(
      await talk(server.addr.port, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"),
      "",
    );
    assert.equal(server.stats().bodyTimeouts, 1);
    assert.match(String(bodyError), /did not arrive in time/);
    // A connection that says nothing.
    assert.equal(await talk(server.addr.port, ""), "");
    assert.equal(server.stats().idleTimeouts, 1);
    // A kept-alive connection is closed when idle after its answer.
    const text = await talk(server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 200 OK[^]*ok$/);
    assert.equal(server.stats().idleTimeouts, 2);
  } finally {
    await server.close();
  }
});

Deno.test("http server: a kept-alive connection sets a timer every few seconds, not one per deadline", async () => {
  const server = serveHttp(echo, { idleTimeoutMs: 150, headerTimeoutMs: 10_000 });
  const original = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    timers++;
    return original(...args);
  }) as typeof setTimeout;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const buffer = new Uint8Array(64 * 1024);
    for (let i = 0; i < 100; i++) {
      await conn.write(
        encoder.encode(`PUT /${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv`),
      );
      let text = "";
      while (!text.endsWith(`PUT /${i} v`)) {
        const n = await conn.read(buffer);
        assert.notEqual(n, null, `the connection closed before answer ${i}`);
        text += decoder.decode(buffer.subarray(0, n!));
      }
    }
    // Four deadlines a request (idle, head, body, answer), each later than the last.
    assert.ok(timers < 50, `${timers} timers for 100 requests`);
    globalThis.setTimeout = original;
    // Idle after its answers: the idle deadline still closes it.
    assert.equal(await conn.read(buffer), null);
    assert.equal(server.stats().idleTimeouts, 1);
  } finally {
    globalThis.setTimeout = original;
    conn.close();
    await server.close();
  }
});

Deno.test("http server: a deadline sooner than the one its timer waits for still closes on time", async () => {
  const server = serveHttp(echo, { idleTimeoutMs: 60_000, headerTimeoutMs: 150 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // The idle timer waits 60 s; the head's first byte starts a 150 ms deadline.
    const closed = talk(server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("still open after 20 s"), 20_000);
    });
    assert.equal(await Promise.race([closed, late]), "");
    assert.equal(server.stats().headerTimeouts, 1);
  } finally {
    clearTimeout(timer);
    await server.close();
  }
});

Deno.test("http server: connections over the caps are answered 503 unread", async () => {
  const server = serveHttp(echo, { maxConnectionsPerAddress: 2 });
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
    }
    const text = await talk(server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 503 [^]*retry-after: 1[^]*maxConnectionsPerAddress/);
    // Definite: nothing of the request was read, so a write in it was certainly not applied.
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    assert.equal(body.mayHaveApplied, false);
    assert.equal(body.overloaded, true);
    assert.equal(server.stats().overMaxPerAddress, 1);
  } finally {
    for (const conn of held) conn.close();
    await server.close();
  }
});
