import assert from "node:assert/strict";
import { defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import { ControllerState, parseControllerOp } from "./controller_state.ts";

Deno.test("controller state: changes make numbered configurations; queries read any of them", () => {
  const state = new ControllerState();
  assert.deepEqual(state.apply({ type: "join", groups: { 1: ["a"], 2: ["b"] } }), {
    ok: true,
    num: 1,
  });
  assert.deepEqual(state.apply({ type: "move", shard: 0, gid: 2 }), { ok: true, num: 2 });
  const refused = state.apply({ type: "move", shard: 0, gid: 9 });
  assert.equal(refused.ok, false);
  assert.deepEqual(state.apply({ type: "leave", gids: [1] }), { ok: true, num: 3 });
  assert.equal(state.query(0).num, 0);
  assert.equal(state.query(2).shards[0], 2);
  assert.equal(state.query(-1).num, 3);
  assert.equal(state.query(99).num, 3);
  assert.deepEqual(state.query(1).groups, { 1: ["a"], 2: ["b"] }, "history unchanged");
});

Deno.test("controller state: survives a snapshot through the codec, and refuses garbage", () => {
  const state = new ControllerState();
  state.apply({ type: "join", groups: { 100: ["a", "b"], 101: ["c"] } });
  state.apply({ type: "leave", gids: [100] });
  const copy = ControllerState.from(defaultCodec.decode(defaultCodec.encode(state.toJSON())));
  for (const n of [0, 1, 2]) {
    assert.deepEqual(copy.query(n).shards, state.query(n).shards);
    assert.deepEqual(Object.entries(copy.query(n).groups), Object.entries(state.query(n).groups));
  }
  assert.deepEqual(copy.query(1).groups[100], ["a", "b"], "numeric gids work after decoding");
  for (const bad of [null, [], [{ num: 1, shards: [], groups: {} }], "x"]) {
    assert.throws(() => ControllerState.from(bad), /not a controller state/);
  }
});

Deno.test("controller state: changes from the wire are checked", () => {
  assert.deepEqual(parseControllerOp({ type: "join", groups: { "7": ["x"] } }), {
    type: "join",
    groups: { 7: ["x"] },
  });
  for (
    const bad of [
      null,
      { type: "drop" },
      { type: "join", groups: [] },
      { type: "join", groups: { 0: ["x"] } },
      { type: "join", groups: { 1: [] } },
      { type: "join", groups: { 1: [3] } },
      { type: "leave", gids: [-1] },
      { type: "move", shard: "0", gid: 1 },
    ]
  ) {
    assert.throws(() => parseControllerOp(bad), ArgumentsError, JSON.stringify(bad));
  }
});
