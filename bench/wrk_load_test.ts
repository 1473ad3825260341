import assert from "node:assert/strict";
import { parseWrk } from "./wrk_load.ts";

const SAMPLE = `Running 5s test @ http://127.0.0.1:23001
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.50ms    2.10ms  30.00ms   70.00%
    Req/Sec     3.80k   200.00     4.20k    70.00%
  Latency Distribution
     50%  850.00us
     75%    9.50ms
     90%   11.00ms
     99%    1.20s
  38005 requests in 5.00s, 2.50MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   7601.00
unexpected answers: 5
`;

Deno.test("parseWrk: reads throughput, percentiles in every unit, and every kind of error", () => {
  const r = parseWrk(SAMPLE);
  assert.equal(r.ops, 38000);
  assert.equal(r.seconds, 5);
  assert.equal(r.perSecond, 7600);
  assert.equal(r.p50, 0.85);
  assert.equal(r.p99, 1200);
  assert.equal(r.errors, 8);
  assert.match(r.firstError!, /5 non-2xx answers, 3 socket errors/);
});

Deno.test("parseWrk: output without a summary is an error, not zeros", () => {
  assert.throws(
    () => parseWrk("unable to connect to 127.0.0.1:1 Connection refused"),
    /no summary/,
  );
});
