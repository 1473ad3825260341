import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { decodeHello, encodeHello, HANDSHAKE_VERSION, NONCE_BYTES } from "./handshake.ts";

const nonce = new Uint8Array(NONCE_BYTES);

Deno.test("handshake: a member's hello says which node it dialled", () => {
  const member = { node: "2", incarnation: "2-a", peerIncarnation: "0-a", peerNode: "0" };
  const hello = decodeHello(encodeHello({ cluster: "c", nonce, hasSecret: false, member }));
  assert.deepEqual(hello.member, member);
  const none = { node: "2", incarnation: "2-a", peerIncarnation: null };
  assert.deepEqual(
    decodeHello(encodeHello({ cluster: "c", nonce, hasSecret: false, member: none })).member,
    { ...none, peerNode: null },
  );
});

Deno.test("handshake: an older node's hello (three member fields) is read, naming no node", () => {
  const raw = ["distkit-hello", HANDSHAKE_VERSION, "c", nonce, false, ["2", "2-a", "0-a"]];
  assert.deepEqual(decodeHello(encode(raw)).member, {
    node: "2",
    incarnation: "2-a",
    peerIncarnation: "0-a",
    peerNode: null,
  });
  const bad = ["distkit-hello", HANDSHAKE_VERSION, "c", nonce, false, ["2", "2-a", null, 7]];
  assert.throws(() => decodeHello(encode(bad)), /peerNode/);
});
