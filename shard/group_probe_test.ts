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

Deno.test("checkGroupServers: for a group the configuration has, only servers of its Raft group count", () => {
  const current = ["a", "b", "c"];
  const member = (server: string, members: string[]): GroupServerProbe => ({
    server,
    status: { gid: 7, configNum: 3, members },
  });
  // A new server added to the group's Raft group, with two of the old ones: a re-join.
  checkGroupServers(7, [member("a", current), member("d", [...current, "d"])], { current });
  // Moved to new machines, each added to the Raft group before the re-join.
  checkGroupServers(7, [member("d", ["a", "d", "e"]), member("e", ["a", "d", "e"])], { current });
  // A server started alone under the group's id is a group of its own.
  assert.throws(
    () => checkGroupServers(7, [member("x", ["x"])], { current }),
    /serves a group 7 of its own \(its Raft members: x\), not the one the configuration lists/,
  );
  assert.throws(() =>
    checkGroupServers(7, [member("x", ["x"]), member("y", ["y"]), member("a", current)], {
      current,
    })
  );
  // Not even one, beside a majority of the group's own: the configuration would list it.
  assert.throws(
    () =>
      checkGroupServers(7, [member("a", current), member("b", current), member("x", ["x"])], {
        current,
      }),
    /serves a group 7 of its own/,
  );
  // A listed server wiped and started alone at its address is a group of its own too.
  assert.throws(() => checkGroupServers(7, [member("c", ["c"])], { current }));
  // A group of one is known by its one server.
  checkGroupServers(7, [member("a", ["a"])], { current: ["a"] });
});
