import assert from "node:assert/strict";
import { decode, encode as encodeRaw } from "@msgpack/msgpack";
import {
  decodeHello,
  decodeServerMessage,
  encodeHello,
  encodeServerMessage,
  HANDSHAKE_VERSION,
  NONCE_BYTES,
} from "./handshake.ts";

const nonce = new Uint8Array(NONCE_BYTES);

Deno.test("handshake: a member's hello says which node it dialled", () => {
  const member = { node: "2", incarnation: "2-a", peerIncarnation: "0-a", peerNode: "0" };
  const hello = decodeHello(encodeHello({ cluster: "c", nonce, hasSecret: false, member }));
  assert.deepEqual(hello.member, member);
  const none = { node: "2", incarnation: "2-a", peerIncarnation: null, peerNode: null };
  assert.deepEqual(
    decodeHello(encodeHello({ cluster: "c", nonce, hasSecret: false, member: none })).member,
    none,
  );
});

Deno.test("handshake: an older node's hello (three member fields) is read, naming no node", () => {
  const raw = ["distkit-hello", HANDSHAKE_VERSION, "c", nonce, false, ["2", "2-a", "0-a"]];
  assert.deepEqual(decodeHello(encodeRaw(raw)).member, {
    node: "2",
    incarnation: "2-a",
    peerIncarnation: "0-a",
  });
  const bad = ["distkit-hello", HANDSHAKE_VERSION, "c", nonce, false, ["2", "2-a", null, 7]];
  assert.throws(() => decodeHello(encodeRaw(bad)), /peerNode/);
});

Deno.test("handshake: a welcome without peerNode is the three fields older nodes read", () => {
  const older = { node: "1", incarnation: "1-a", peerIncarnation: "2-a" };
  const bytes = encodeServerMessage({ kind: "welcome", mac: null, member: older });
  const raw = decode(bytes) as unknown[];
  assert.equal((raw[2] as unknown[]).length, 3, "what a node before peerNode decodes");
  assert.deepEqual(decodeServerMessage(bytes), { kind: "welcome", mac: null, member: older });
  const newer = { ...older, peerNode: "2" };
  const both = decodeServerMessage(
    encodeServerMessage({ kind: "welcome", mac: null, member: newer }),
  );
  assert.deepEqual(both, { kind: "welcome", mac: null, member: newer });
});
