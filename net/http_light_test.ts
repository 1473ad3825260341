import assert from "node:assert/strict";
import { talk } from "./test_util.ts";
import { serveHttp, serveLightHttp } from "./http_server.ts";
import {
  lightFromRequest,
  type LightRequest,
  type LightResponse,
  responseFromLight,
} from "./http_light.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What the handler saw of a request, as text. */
async function seen(req: LightRequest): Promise<string> {
  const body = decoder.decode(await req.bytes());
  return `${req.method} ${req.target} ${req.url} [${req.header("x-two")}] ${req.hasBody} ${body}`;
}

const ANSWERS: LightResponse[] = [
  { status: 204 },
  { status: 200, body: "text with no type" },
  { status: 200, body: "é, non-ASCII" },
  {
    status: 503,
    headers: { "retry-after": "1", "content-type": "application/json", "X-Upper": " padded " },
    body: JSON.stringify({ error: "busy", mayHaveApplied: false }),
  },
  {
    status: 200,
    headers: { "content-type": "application/octet-stream" },
    body: Uint8Array.of(0, 255),
  },
  {
    status: 307,
    headers: { location: "http://b:1/kv/a", "content-type": "application/json" },
    body: "{}",
  },
  {
    status: 413,
    headers: { connection: "close", "content-type": "text/plain" },
    body: "too large",
  },
  { status: 418, body: "" },
];

Deno.test("http light: every answer is written byte for byte as serveHttp writes it as a Response", async () => {
  for (const answer of ANSWERS) {
    const light = serveLightHttp(() => answer);
    const whatwg = serveHttp(() => responseFromLight(answer));
    try {
      for (const method of ["GET", "HEAD"]) {
        const request = `${method} /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`;
        const [a, b] = [
          await talk(light.addr.port, request),
          await talk(whatwg.addr.port, request),
        ];
        assert.equal(a, b, `${answer.status} ${method}`);
        assert.match(a, new RegExp(`^HTTP/1\\.1 ${answer.status} `));
      }
      // Kept alive, HTTP/1.0: the same again.
      const request = "GET /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /y HTTP/1.0\r\n\r\n";
      assert.equal(await talk(light.addr.port, request), await talk(whatwg.addr.port, request));
    } finally {
      await light.close();
      await whatwg.close();
    }
  }
});

Deno.test("http light: the request's method, target, headers and body, as a Request would give them", async () => {
  const light = serveLightHttp(async (req) => ({ status: 200, body: await seen(req) }));
  const whatwg = serveHttp(async (req) => new Response(await seen(lightFromRequest(req))));
  try {
    const requests = [
      "put /kv/a/../b?op=x HTTP/1.1\r\nHost: h:8\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 3\r\n\r\nabc",
      "PATCH /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
      "DELETE /kv/%2e%2e HTTP/1.1\r\nHost: h\r\n\r\n",
      // Refused by Request: a forbidden method, a port it cannot parse.
      "TRACE / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h:99999\r\n\r\n",
    ];
    for (const request of requests) {
      const withClose = request.replace("\r\n", "\r\nConnection: close\r\n");
      const [a, b] = [
        await talk(light.addr.port, withClose),
        await talk(whatwg.addr.port, withClose),
      ];
      assert.equal(a, b, JSON.stringify(request.slice(0, 30)));
    }
    const text = await talk(
      light.addr.port,
      requests[0].replace("\r\n", "\r\nConnection: close\r\n"),
    );
    assert.match(
      text,
      /PUT \/kv\/a\/\.\.\/b\?op=x http:\/\/h:8\/kv\/a\/\.\.\/b\?op=x \[1, 2\] true abc$/,
    );
    assert.equal(light.stats().badRequests, 2);
    assert.equal(whatwg.stats().badRequests, 2);
  } finally {
    await light.close();
    await whatwg.close();
  }
});

Deno.test("http light: 100-continue, pipelined requests, and a body read once", async () => {
  let second: unknown;
  const server = serveLightHttp(async (req) => {
    const body = await req.bytes();
    try {
      await req.bytes();
    } catch (err) {
      second = err;
    }
    return { status: 200, body: `${req.target} ${decoder.decode(body)}` };
  });
  try {
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
      assert.match(decoder.decode(buffer.subarray(0, m!)), /^HTTP\/1\.1 200 OK[^]*\/e abc$/);
    } finally {
      conn.close();
    }
    assert.match(String(second), /read already/);
    const text = await talk(
      server.addr.port,
      "PUT /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" +
        "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.match(text, /\/1 hi\s*HTTP\/1\.1 200 [^]*\/2 $/);
  } finally {
    await server.close();
  }
});

Deno.test("http light: a body that stalls fails the read, closes the connection, and is counted", async () => {
  let bodyError: unknown;
  const server = serveLightHttp(async (req) => {
    try {
      await req.bytes();
    } catch (err) {
      bodyError = err;
      throw err;
    }
    return { status: 200 };
  }, { bodyTimeoutMs: 150 });
  try {
    assert.equal(
      await talk(server.addr.port, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"),
      "",
    );
    assert.equal(server.stats().bodyTimeouts, 1);
    assert.match(String(bodyError), /did not arrive in time/);
  } finally {
    await server.close();
  }
});

Deno.test("http light: pipelined bodies cut at random across reads arrive whole, each to its request", async () => {
  const light = serveLightHttp(async (req) => ({ status: 200, body: await req.bytes() }));
  const whatwg = serveHttp(async (req) => new Response(await req.arrayBuffer()));
  let seed = 7;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  try {
    for (const server of [light, whatwg]) {
      const bodies: string[] = [];
      let stream = "";
      for (let i = 0; i < 40; i++) {
        const body = `${i}:` + "abcdefghij".repeat(next(300)) + `:${i}`;
        bodies.push(body);
        stream += next(2) === 0
          ? `PUT /${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`
          : `PUT /${i} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
            `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
      }
      stream += "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      const bytes = encoder.encode(stream);
      const parts: Uint8Array[] = [];
      for (let at = 0; at < bytes.length;) {
        const n = 1 + next(700);
        parts.push(bytes.subarray(at, at + n));
        at += n;
      }
      const text = await talk(server.addr.port, parts, { yieldBetweenParts: true });
      const answered = text.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).slice(1);
      assert.deepEqual(answered, [...bodies, ""]);
    }
  } finally {
    await light.close();
    await whatwg.close();
  }
});
