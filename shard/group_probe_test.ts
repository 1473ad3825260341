import assert from "node:assert/strict";
import { checkGroupServers, type GroupServerProbe, GroupServersError } from "./group_probe.ts";

const serving = (server: string, gid: number): GroupServerProbe => ({
  server,
  status: { gid, configNum: 1 },
});
const down = (server: string): GroupServerProbe => ({ server, problem: "unreachable" });

Deno.test("checkGroupServers: a majority of the servers must serve the group", () => {
  checkGroupServers(7, [serving("a", 7), serving("b", 7), down("c")]);
  checkGroupServers(7, [serving("a", 7)]);
  for (
    const probes of [
      [serving("a", 7), down("b"), down("c")],
      [serving("a", 7), down("b")], // half is not a majority
      [serving("a", 8), serving("b", 8), serving("c", 7)],
      [],
    ]
  ) {
    assert.throws(() => checkGroupServers(7, probes), (err: Error) => {
      assert.ok(err instanceof GroupServersError);
      assert.equal(err.gid, 7);
      assert.match(err.message, /nothing was changed/);
      return true;
    });
  }
});
