import assert from "node:assert/strict";
import { PortRange } from "./ports.ts";

Deno.test("PortRange: parses LOW-HIGH and refuses anything else with a reason", () => {
  const r = PortRange.parse("23000-23999");
  assert.equal(r.size, 1000);
  assert.throws(() => PortRange.parse("23000"), /LOW-HIGH/);
  assert.throws(() => PortRange.parse("24000-23000"), /LOW <= HIGH/);
  assert.throws(() => PortRange.parse("60000-70000"), /65535/);
});

Deno.test("PortRange: takes free ports inside the range, skipping taken ones, with offset pairs", () => {
  // A range in the ephemeral-free zone below the usual dynamic range.
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = (busy.addr as Deno.NetAddr).port;
  try {
    const range = new PortRange(taken, Math.min(taken + 40, 65535));
    const ports = range.take(3, 10);
    assert.equal(ports.length, 3);
    assert.ok(!ports.includes(taken), "a port in use is skipped");
    for (const p of ports) {
      assert.ok(p >= range.low && p + 10 <= range.high, `${p} and ${p + 10} in range`);
    }
    assert.equal(new Set([...ports, ...ports.map((p) => p + 10)]).size, 6, "no overlap");
    assert.throws(() => new PortRange(taken, taken).take(1), /no room/);
  } finally {
    busy.close();
  }
});
