/**
 * `serveTcp`'s `onMemberGone`: told once the last connection from a member
 * node closes (how a Raft follower learns at once that its leader's process
 * died), never for a client that is not a member, nor while a connection
 * from that member is still open, nor when the server itself closes.
 */
import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { MemberOptions } from "../net/tcp_options.ts";
import { RpcServer, serveTcp, TcpClient } from "../net/mod.ts";

/** A member identity that accepts every peer (identities are tested in rsm/identity_test.ts). */
function member(node: string): MemberOptions {
  return {
    node,
    incarnation: `inc-${node}`,
    knownIncarnation: () => undefined,
    check: () => undefined,
  };
}

/** Waits until the server holds `n` connections (a closed socket is seen on its next read). */
async function untilConnections(server: { stats(): { connections: number } }, n: number) {
  for (let i = 0; server.stats().connections !== n; i++) {
    if (i > 1000) {
      throw new Error(`the server still holds ${server.stats().connections} connections, not ${n}`);
    }
    await delay(5);
  }
}

Deno.test("tcp: onMemberGone fires once, when the last connection from a member closes", async () => {
  const rpc = new RpcServer();
  rpc.addService("Echo", { Ping: () => "pong" });
  const gone: string[] = [];
  const told = Promise.withResolvers<void>();
  const server = serveTcp(rpc, {
    member: member("0"),
    onMemberGone: (node) => {
      gone.push(node);
      told.resolve();
    },
  });
  const first = new TcpClient(server.address, { peer: "0", member: member("1") });
  const second = new TcpClient(server.address, { peer: "0", member: member("1") });
  const stranger = new TcpClient(server.address);
  try {
    for (const c of [first, second, stranger]) assert.equal(await c.call("Echo.Ping"), "pong");
    await untilConnections(server, 3);
    await stranger.close();
    await untilConnections(server, 2);
    assert.deepEqual(gone, [], "a client that is not a member is no member gone");
    await first.close();
    await untilConnections(server, 1);
    assert.deepEqual(gone, [], "member 1 still has a connection open");
    await second.close();
    await told.promise;
    assert.deepEqual(gone, ["1"]);
    // Member 1 comes back, and this time the server closes first: nobody is gone.
    const again = new TcpClient(server.address, { peer: "0", member: member("1") });
    assert.equal(await again.call("Echo.Ping"), "pong");
    await server.close();
    await again.close();
    assert.deepEqual(gone, ["1"], "the server's own closing reports nothing");
  } finally {
    await Promise.all([first.close(), second.close(), stranger.close(), server.close()]);
  }
});
