import assert from "node:assert/strict";
import { AddressError, parseAddress } from "./address.ts";

/** The error `f` throws, which must be an AddressError. */
function refusal(f: () => unknown): AddressError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof AddressError, `${err}`);
    return err;
  }
  assert.fail("no error");
}

Deno.test("parseAddress: host and port, IPv6 without its brackets", () => {
  assert.deepEqual(parseAddress("127.0.0.1:7001"), { hostname: "127.0.0.1", port: 7001 });
  assert.deepEqual(parseAddress("localhost:1"), { hostname: "localhost", port: 1 });
  assert.deepEqual(parseAddress("node-a:65535"), { hostname: "node-a", port: 65535 });
  assert.deepEqual(parseAddress("[::1]:7000"), { hostname: "::1", port: 7000 });
});

Deno.test("parseAddress: port 0 only for a listening address", () => {
  const refused = refusal(() => parseAddress("127.0.0.1:0"));
  assert.equal(refused.address, "127.0.0.1:0");
  assert.match(refused.message, /port must be an integer from 1 to 65535/);
  assert.deepEqual(parseAddress("127.0.0.1:0", { listen: true }), {
    hostname: "127.0.0.1",
    port: 0,
  });
  assert.deepEqual(parseAddress("[::]:0", { listen: true }), { hostname: "::", port: 0 });
});

Deno.test("parseAddress: what the old lax parser let through is refused", () => {
  // "host:" was port 0 and "[::1]" kept its brackets; both are errors now,
  // listening or not, and an unbracketed IPv6 host is ambiguous.
  for (const listen of [false, true]) {
    for (const bad of ["127.0.0.1:", "::1:7000", "[::1]", "localhost", ":7000", "[]:7000"]) {
      assert.throws(() => parseAddress(bad, { listen }), AddressError, `${bad} listen=${listen}`);
    }
  }
});

Deno.test("parseAddress: the port's bounds and spelling", () => {
  for (const bad of ["h:65536", "h:-1", "h:1.5", "h:1e3", "h: 80", "h:0x50", "h:99999"]) {
    assert.throws(() => parseAddress(bad, { listen: true }), AddressError, bad);
  }
  assert.equal(parseAddress("h:065535").port, 65535);
});

Deno.test("parseAddress: the error names the address, the peer and the fix", () => {
  const err = refusal(() => parseAddress("nohost", { peer: "b" }));
  assert.ok(err instanceof TypeError, "a TypeError, as TcpClient has always thrown");
  assert.equal(err.name, "AddressError");
  assert.equal(
    err.message,
    'bad address "nohost" for peer "b": no port; expected "host:port", e.g. "127.0.0.1:7000" or "[::1]:7000"',
  );
  assert.throws(() => parseAddress(7000 as unknown as string), /not a string/);
});
