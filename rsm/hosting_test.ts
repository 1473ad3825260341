import assert from "node:assert/strict";
import { AddressError } from "../net/address.ts";
import { hostNode } from "./hosting.ts";

Deno.test("hostNode: port 0 listens on a free port", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-host-" });
  try {
    const host = await hostNode({ address: "127.0.0.1:0", id: "0", dataDir });
    try {
      assert.equal(host.listener.addr.hostname, "127.0.0.1");
      assert.ok(host.listener.addr.port > 0, `listening on ${host.listener.address}`);
    } finally {
      await host.listener.close();
      await host.storage.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("hostNode: a malformed address is refused before the folder is touched", async () => {
  const parent = await Deno.makeTempDir({ prefix: "distkit-host-" });
  try {
    for (const address of ["127.0.0.1:", "::1:7000", "127.0.0.1:65536"]) {
      await assert.rejects(
        hostNode({ address, id: "0", dataDir: `${parent}/node` }),
        AddressError,
        address,
      );
    }
    await assert.rejects(Deno.stat(`${parent}/node`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
