import assert from "node:assert/strict";
import { ChunkedDecoder, HttpParseError, parseRequestHead } from "./http_parse.ts";

const text = (s: string) => new TextEncoder().encode(s);

function refused(head: string, status: number, pattern?: RegExp): void {
  assert.throws(
    () => parseRequestHead(text(head)),
    (err: unknown) => {
      assert.ok(err instanceof HttpParseError, `not an HttpParseError: ${err}`);
      assert.equal(err.status, status, `${JSON.stringify(head)}: ${err.message}`);
      if (pattern) assert.match(err.message, pattern);
      return true;
    },
  );
}

Deno.test("http parse: a plain request head", () => {
  const head = parseRequestHead(
    text("PUT /kv/a%2Fb?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nContent-Length: 12\r\nX-A:  v  "),
  );
  assert.equal(head.method, "PUT");
  assert.equal(head.target, "/kv/a%2Fb?x=1");
  assert.equal(head.minor, 1);
  assert.equal(head.contentLength, 12);
  assert.equal(head.chunked, false);
  assert.equal(head.keepAlive, true);
  assert.deepEqual(head.headers[2], ["x-a", "v"]);
  const old = parseRequestHead(text("GET / HTTP/1.0"));
  assert.equal(old.keepAlive, false);
  assert.equal(parseRequestHead(text("GET / HTTP/1.0\r\nConnection: Keep-Alive")).keepAlive, true);
  assert.equal(
    parseRequestHead(text("GET / HTTP/1.1\r\nHost: a\r\nConnection: close")).keepAlive,
    false,
  );
  const chunked = parseRequestHead(
    text("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked"),
  );
  assert.equal(chunked.chunked, true);
  assert.equal(
    parseRequestHead(text("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue")).expectContinue,
    true,
  );
});

Deno.test("http parse: smuggling and malformed heads are refused with their status", () => {
  const h = "PUT /k HTTP/1.1\r\nHost: a\r\n";
  refused(h + "Content-Length: 5\r\nTransfer-Encoding: chunked", 400, /both Content-Length/);
  refused(h + "Transfer-Encoding: chunked\r\nContent-Length: 5", 400, /both Content-Length/);
  refused(h + "Content-Length: 5\r\nContent-Length: 5", 400, /more than one/);
  refused(h + "Content-Length: 5, 5", 400);
  refused(h + "Content-Length: -1", 400);
  refused(h + "Content-Length: +5", 400);
  refused(h + "Content-Length: 0x10", 400);
  refused(h + "Content-Length: 1234567890123456", 400);
  refused(h + "Transfer-Encoding: gzip, chunked", 501);
  refused(h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501);
  refused(h + "Transfer-Encoding: xchunked", 501);
  refused("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked", 400);
  refused(h + " folded: value", 400, /folding/);
  refused(h + "Bad Name: v", 400);
  refused(h + ": v", 400);
  refused(h + "X: a\x00b", 400, /0x00/);
  refused(h + "X: caf\xe9", 400);
  refused("PUT /k HTTP/1.1\nHost: a", 400, /CRLF/);
  refused("PUT /k HTTP/1.1\r\nHost: a\nX: b", 400, /CRLF/);
  refused("GET /k HTTP/1.1", 400, /Host/);
  refused("GET /k HTTP/1.1\r\nHost: a\r\nHost: b", 400, /Host/);
  refused("GET http://a/k HTTP/1.1\r\nHost: a", 400, /path/);
  refused("GET * HTTP/1.1\r\nHost: a", 400);
  refused("GET /k HTTP/2.0\r\nHost: a", 505);
  refused("GET /k HTTP/1.1 extra\r\nHost: a", 400);
  refused("GET  /k HTTP/1.1\r\nHost: a", 400);
  refused("G(T /k HTTP/1.1\r\nHost: a", 400);
  refused(h + "Expect: something", 417);
});

function decodeAll(
  input: string,
  cuts: number[] = [],
): { body: string; rest: string; done: boolean } {
  const bytes = text(input);
  const decoder = new ChunkedDecoder();
  let body = "";
  let rest = "";
  let start = 0;
  for (const end of [...cuts, bytes.length]) {
    const out = decoder.feed(bytes.subarray(start, end));
    for (const d of out.data) body += new TextDecoder().decode(d);
    if (out.rest) rest += new TextDecoder().decode(out.rest);
    start = end;
    if (decoder.done) {
      // What the decoder was not fed belongs to the next request too.
      rest += new TextDecoder().decode(bytes.subarray(end));
      break;
    }
  }
  return { body, rest, done: decoder.done };
}

Deno.test("http parse: chunked bodies, cut anywhere, with extensions and trailers", () => {
  const input = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  const whole = decodeAll(input);
  assert.deepEqual(whole, { body: "hello 0123456789", rest: "NEXT", done: true });
  for (let cut = 1; cut < input.length; cut++) {
    assert.deepEqual(decodeAll(input, [cut]), whole, `cut at ${cut}`);
  }
  const byByte = decodeAll(input, Array.from({ length: input.length }, (_, i) => i + 1));
  assert.equal(byByte.body, whole.body);
  assert.equal(decodeAll("3\r\nabc\r\n").done, false);
});

Deno.test("http parse: bad chunk sizes and terminators are refused", () => {
  for (
    const input of [
      "g\r\n",
      "-1\r\n",
      " 5\r\nhello\r\n",
      "5\r\nhelloX\r\n",
      "5\nhello\r\n",
      "0x5\r\nhello\r\n",
      "fffffffffffffff\r\n",
      "0\r\nbad trailer\r\n\r\n",
      "5" + "0".repeat(5000) + "\r\n",
    ]
  ) {
    assert.throws(() => decodeAll(input), HttpParseError, JSON.stringify(input.slice(0, 30)));
  }
});
