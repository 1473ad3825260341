/**
 * `serveKvHttp` hands its handler light requests and writes light answers
 * (issue 20); `kvHttpHandler` still takes `Request`s and gives `Response`s.
 * Both serve the same node here, one on its own listener and one behind
 * `serveHttp`, and every answer of the HTTP API must be the same bytes on
 * the wire: statuses, headers, bodies, refusals, redirects' absence of a
 * leader, closes.
 */
import assert from "node:assert/strict";
import { talk } from "../net/test_util.ts";
import {
  kvHttpHandler,
  type KvHttpOptions,
  KvServer,
  serveKvHttp,
  serveMembers,
} from "../kv/mod.ts";
import { RpcServer, serveHttp } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";

const encoder = new TextEncoder();

/** A request with `Connection: close`, the secret, and `head` lines. */
function req(line: string, head: string[] = [], body = "", auth = true): string {
  const lines = [line, "Host: n0.test:80", "Connection: close", ...head];
  if (auth) lines.push("Authorization: Bearer s3cret");
  if (body !== "") lines.push(`Content-Length: ${encoder.encode(body).length}`);
  return lines.join("\r\n") + "\r\n\r\n" + body;
}

/** One node (alone, or with a peer that never answers: then no leader), served both ways. */
async function startBoth(peers: string[]) {
  const rpc = new RpcServer();
  const kv = await KvServer.start({
    id: "0",
    peers,
    transport: {
      connect: () => ({ peer: "none", call: () => Promise.reject(new Error("unreachable")) }),
    },
    server: rpc,
    storage: new MemoryStorage(),
  });
  serveMembers(rpc, kv.raft);
  const options: KvHttpOptions = {
    addresses: { "0": "n0.test:80" },
    secret: "s3cret",
    cluster: "c1",
    maxBodyBytes: 64,
    timeoutMs: 300,
  };
  const light = serveKvHttp(kv, rpc, options);
  const whatwg = serveHttp(kvHttpHandler(kv, rpc, options));
  const ports = [light, whatwg].map((s) => Number(s.address.split(":").at(-1)));
  return {
    kv,
    /** The answers of both to the same request. */
    both: async (request: string) => [await talk(ports[0], request), await talk(ports[1], request)],
    close: async () => {
      await light.close();
      await whatwg.close();
      await kv.stop();
    },
  };
}

Deno.test("kv http light: the node's listener answers every request byte for byte as a Request handler does", async () => {
  const node = await startBoth(["0"]);
  try {
    // A single node elects itself within an election timeout; polled, bounded.
    for (const until = Date.now() + 30_000; node.kv.raft.status().role !== "leader";) {
      assert.ok(Date.now() < until, "the single node did not become leader within 30 s");
      await new Promise((r) => setTimeout(r, 10));
    }
    const cases: [string, number][] = [
      [req("PUT /kv/a HTTP/1.1", ["Content-Type: text/plain"], "v1"), 204],
      [req("GET /kv/a HTTP/1.1"), 200],
      [req("get /kv/a HTTP/1.1"), 200],
      [req("GET /kv/missing HTTP/1.1"), 404],
      [req("PUT /kv/b HTTP/1.1", ["Content-Type: application/octet-stream"], "\u00ff\u0001"), 204],
      [req("GET /kv/b HTTP/1.1"), 200],
      [req("PUT /kv/u HTTP/1.1", [], "naïve"), 204],
      [req("GET /kv/u HTTP/1.1"), 200],
      [req("POST /kv/c?op=cas HTTP/1.1", [], '{"expected":"nope","value":"v"}'), 200],
      [req("POST /kv/c?op=cas HTTP/1.1", [], "{bad"), 400],
      [req("POST /kv/a?op=bogus HTTP/1.1", [], "x"), 400],
      [req("POST /kv/a HTTP/1.1"), 400],
      [req("PATCH /kv/a HTTP/1.1"), 405],
      [req("HEAD /kv/a HTTP/1.1"), 405],
      [req("GET /kv/ HTTP/1.1"), 404],
      [req("GET /other HTTP/1.1"), 404],
      [req("GET /kv/%E0%A4%A HTTP/1.1"), 400],
      [req("PUT /kv/s HTTP/1.1", ["X-Distkit-Client: c1"], "x"), 400],
      [req("PUT /kv/s HTTP/1.1", ["X-Distkit-Client: c1", "X-Distkit-Seq: 0"], "x"), 400],
      [req("PUT /kv/s HTTP/1.1", ["X-Distkit-Client: c1", "X-Distkit-Seq: 1"], "x"), 204],
      [req("PUT /kv/big HTTP/1.1", [], "x".repeat(65)), 413],
      [
        req("PUT /kv/big HTTP/1.1", ["Transfer-Encoding: chunked"]) + "41\r\n" + "x".repeat(65) +
        "\r\n0\r\n\r\n",
        413,
      ],
      [req("PUT /kv/ch HTTP/1.1", ["Transfer-Encoding: chunked"]) + "2\r\nab\r\n0\r\n\r\n", 204],
      [req("GET /kv/ch HTTP/1.1"), 200],
      [req("DELETE /kv/b HTTP/1.1"), 204],
      [req("GET /kv/b HTTP/1.1"), 404],
      [req("POST /status HTTP/1.1"), 405],
      [req("POST /metrics HTTP/1.1"), 405],
      [req("GET /members HTTP/1.1"), 200],
      [req("PUT /members HTTP/1.1"), 405],
      [req("GET /kv/a HTTP/1.1", [], "", false), 401],
      [req("PUT /kv/a HTTP/1.1", ["X-Distkit-Cluster: other"], "x"), 421],
    ];
    for (const [request, status] of cases) {
      const [light, whatwg] = await node.both(request);
      const line = request.slice(0, request.indexOf("\r\n"));
      assert.equal(light, whatwg, line);
      assert.match(light, new RegExp(`^HTTP/1\\.1 ${status} `), line);
    }
    // A value sent as bytes comes back as the same bytes, and a text value as UTF-8.
    const [bytes] = await node.both(req("GET /kv/u HTTP/1.1"));
    assert.match(bytes, /content-type: text\/plain; charset=utf-8[^]*naïve$/);
  } finally {
    await node.close();
  }
});

Deno.test("kv http light: with no leader, reads and writes are refused alike, not applied", async () => {
  const node = await startBoth(["0", "1"]);
  try {
    for (
      const request of [
        req("GET /kv/a HTTP/1.1"),
        req("PUT /kv/a HTTP/1.1", [], "v"),
        req("DELETE /kv/a HTTP/1.1"),
      ]
    ) {
      const [light, whatwg] = await node.both(request);
      assert.equal(light, whatwg);
      assert.match(light, /^HTTP\/1\.1 503 [^]*retry-after: 1/);
    }
    const [put] = await node.both(req("PUT /kv/a HTTP/1.1", [], "v"));
    assert.match(put, /"mayHaveApplied":false/);
  } finally {
    await node.close();
  }
});
