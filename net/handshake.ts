/**
 * The handshake that opens every TCP connection, before any call: cluster
 * identity and optional shared-secret authentication.
 *
 * Messages are MessagePack arrays in ordinary frames, tagged by a string:
 *
 * ```text
 * client -> server  ["distkit-hello", version, cluster, clientNonce, hasSecret, member?]
 * server -> client  ["distkit-challenge", serverNonce]          (server has a secret)
 * client -> server  ["distkit-proof", clientMac]
 * server -> client  ["distkit-welcome", serverMac | null, member?]  (null: no secret)
 * either way        ["distkit-refuse", reason]                   (then the server hangs up)
 * ```
 *
 * `member` is present when the end is a cluster member (a node, not a
 * client): `[node, incarnation, peerIncarnation, peerNode]`, its node id,
 * the incarnation of its data folder, the incarnation it knows the other end
 * by (null: none yet) and the node it takes the other end for (null: none in
 * particular; absent from older nodes, which send three fields), so each end
 * can tell whether the other is the one it knows, whether the other still
 * knows it, and whether it was dialled for another node (see
 * `rsm/identity.ts`).
 *
 * Each MAC is HMAC-SHA256, keyed with the shared secret, over the transcript
 * `["distkit-handshake", version, label, cluster, clientNonce, serverNonce]`,
 * where the label is `"client proof"` or `"server proof"`: both nonces are
 * fresh, so a proof cannot be replayed on another connection, and the labels
 * differ, so one side's proof cannot be reflected back as the other's. The
 * secret itself never travels.
 *
 * @module
 */
import { Codec } from "./codec.ts";

/** The handshake version this code speaks. */
export const HANDSHAKE_VERSION = 1;
/** Bytes in each side's nonce. */
export const NONCE_BYTES = 32;
/** Bytes in an HMAC-SHA256 proof. */
export const MAC_BYTES = 32;
/** The largest handshake frame either side accepts, in bytes. */
export const HANDSHAKE_MAX_FRAME_BYTES = 4096;
/** The longest cluster id, in UTF-16 code units. */
export const MAX_CLUSTER_LENGTH = 256;
/** The longest refusal reason sent or shown, in UTF-16 code units. */
const MAX_REASON_LENGTH = 1000;

const HELLO = "distkit-hello";
const CHALLENGE = "distkit-challenge";
const PROOF = "distkit-proof";
const WELCOME = "distkit-welcome";
const REFUSE = "distkit-refuse";
const TRANSCRIPT = "distkit-handshake";

const codec = new Codec({ maxMessageBytes: HANDSHAKE_MAX_FRAME_BYTES });

/** The longest node id or incarnation id in a handshake, in UTF-16 code units. */
export const MAX_MEMBER_ID_LENGTH = 256;

/**
 * What a cluster member says of itself in the handshake.
 *
 * @example
 * ```ts
 * import type { MemberHello } from "@distkit/distkit/net";
 *
 * const hello: MemberHello = { node: "1", incarnation: "4f1c", peerIncarnation: null };
 * ```
 */
export interface MemberHello {
  /** Its node id. */
  node: string;
  /** The incarnation of its data folder. */
  incarnation: string;
  /** The incarnation it knows the other end by; null when it knows none yet. */
  peerIncarnation: string | null;
  /**
   * The node it takes the other end for: the one it dialled (a server's
   * answer: the client's node). Null: none in particular. Absent: an older
   * node's three fields, which a server answers in the same form.
   */
  peerNode?: string | null;
}

/** What a client says first. */
export interface Hello {
  cluster: string;
  nonce: Uint8Array;
  hasSecret: boolean;
  /** Present when the client is a cluster member. */
  member?: MemberHello;
}

/** What a server answers during the handshake. */
export type ServerMessage =
  | { kind: "challenge"; nonce: Uint8Array }
  | { kind: "welcome"; mac: Uint8Array | null; member?: MemberHello }
  | { kind: "refuse"; reason: string };

/** Encodes a client's hello. */
export function encodeHello(hello: Hello): Uint8Array {
  const fields: unknown[] = [HELLO, HANDSHAKE_VERSION, hello.cluster, hello.nonce, hello.hasSecret];
  if (hello.member) fields.push(encodeMember(hello.member));
  return codec.encode(fields);
}

/**
 * What `member` says of itself to the node `peer` at the other end (null:
 * a client, which names no node): both ends of a handshake build it so.
 */
export function memberHello(
  member: { node: string; incarnation: string; knownIncarnation(node: string): string | undefined },
  peer: string | null,
): MemberHello {
  return {
    node: member.node,
    incarnation: member.incarnation,
    peerIncarnation: peer === null ? null : member.knownIncarnation(peer) ?? null,
    peerNode: peer,
  };
}

function encodeMember(m: MemberHello): unknown[] {
  // Without peerNode, the three fields older nodes read (a server answers a client in its form).
  return m.peerNode === undefined
    ? [m.node, m.incarnation, m.peerIncarnation]
    : [m.node, m.incarnation, m.peerIncarnation, m.peerNode];
}

/** The member part of a hello or welcome, or undefined when it is malformed. */
function decodeMember(raw: unknown): MemberHello | undefined {
  const id = (v: unknown) => typeof v === "string" && v.length <= MAX_MEMBER_ID_LENGTH;
  if (!Array.isArray(raw) || (raw.length !== 3 && raw.length !== 4)) return undefined;
  const [node, incarnation, peerIncarnation, peerNode] = raw;
  if (
    !id(node) || !id(incarnation) || !(peerIncarnation === null || id(peerIncarnation)) ||
    !(raw.length === 3 || peerNode === null || id(peerNode))
  ) {
    return undefined;
  }
  return raw.length === 3
    ? { node, incarnation, peerIncarnation }
    : { node, incarnation, peerIncarnation, peerNode };
}

/**
 * Decodes a client's hello.
 *
 * @throws {Error} whose message is the reason to refuse the client, as the
 * client will read it after `"<address> refused the connection: "`.
 */
export function decodeHello(bytes: Uint8Array): Hello {
  let raw: unknown;
  try {
    raw = codec.decode(bytes);
  } catch {
    throw new Error(notHello("its first frame is not MessagePack"));
  }
  if (!Array.isArray(raw) || raw[0] !== HELLO) {
    const what = Array.isArray(raw) && raw[0] === 0
      ? "it sent a call before the handshake"
      : `its first frame is ${Array.isArray(raw) ? "an array" : typeof raw}, not a hello`;
    throw new Error(notHello(what));
  }
  const version = raw[1];
  if (version !== HANDSHAKE_VERSION) {
    throw new Error(
      `it speaks handshake version ${HANDSHAKE_VERSION}, and the client speaks ` +
        `${typeof version === "number" ? `version ${version}` : "no known version"}; ` +
        `run the same distkit version on both ends`,
    );
  }
  const [, , cluster, nonce, hasSecret, rawMember] = raw;
  const bad = (why: string) => new Error(`the client's hello is malformed (${why})`);
  if (raw.length !== 5 && raw.length !== 6) throw bad(`${raw.length} fields instead of 5 or 6`);
  if (typeof cluster !== "string" || cluster.length > MAX_CLUSTER_LENGTH) {
    throw bad(`the cluster id must be a string of at most ${MAX_CLUSTER_LENGTH} characters`);
  }
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw bad(`the nonce must be ${NONCE_BYTES} bytes`);
  }
  if (typeof hasSecret !== "boolean") throw bad("the secret flag must be a boolean");
  if (raw.length === 5) return { cluster, nonce, hasSecret };
  const member = decodeMember(rawMember);
  if (member === undefined) {
    throw bad("the member must be [node, incarnation, peerIncarnation, peerNode?]");
  }
  return { cluster, nonce, hasSecret, member };
}

function notHello(what: string): string {
  return `the client did not start with a distkit hello (${what}); ` +
    `only a distkit client of the same version can call this server`;
}

/** Encodes a server's handshake message. */
export function encodeServerMessage(message: ServerMessage): Uint8Array {
  switch (message.kind) {
    case "challenge":
      return codec.encode([CHALLENGE, message.nonce]);
    case "welcome":
      return codec.encode(
        message.member
          ? [WELCOME, message.mac, encodeMember(message.member)]
          : [WELCOME, message.mac],
      );
    case "refuse":
      return codec.encode([REFUSE, clip(message.reason)]);
  }
}

/**
 * Decodes a server's handshake message.
 *
 * @throws {Error} saying what is wrong with it.
 */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  let raw: unknown;
  try {
    raw = codec.decode(bytes);
  } catch {
    throw new Error("not MessagePack");
  }
  if (Array.isArray(raw) && raw.length === 3 && raw[0] === WELCOME) {
    const member = decodeMember(raw[2]);
    if ((raw[1] === null || raw[1] instanceof Uint8Array) && member !== undefined) {
      return { kind: "welcome", mac: raw[1], member };
    }
  }
  if (!Array.isArray(raw) || raw.length !== 2) throw new Error("not a handshake message");
  const [tag, value] = raw;
  if (tag === CHALLENGE && value instanceof Uint8Array && value.length === NONCE_BYTES) {
    return { kind: "challenge", nonce: value };
  }
  if (tag === WELCOME && (value === null || value instanceof Uint8Array)) {
    return { kind: "welcome", mac: value };
  }
  if (tag === REFUSE && typeof value === "string") return { kind: "refuse", reason: clip(value) };
  throw new Error(`a malformed handshake message (${typeof tag === "string" ? tag : typeof tag})`);
}

/** Encodes a client's proof. */
export function encodeProof(mac: Uint8Array): Uint8Array {
  return codec.encode([PROOF, mac]);
}

/**
 * Decodes a client's proof.
 *
 * @throws {Error} whose message is the reason to refuse the client.
 */
export function decodeProof(bytes: Uint8Array): Uint8Array {
  let raw: unknown;
  try {
    raw = codec.decode(bytes);
  } catch {
    raw = undefined;
  }
  if (
    !Array.isArray(raw) || raw.length !== 2 || raw[0] !== PROOF ||
    !(raw[1] instanceof Uint8Array) || raw[1].length !== MAC_BYTES
  ) {
    throw new Error(
      "the client did not answer the challenge with a proof of the shared secret; " +
        "only a distkit client of the same version can call this server",
    );
  }
  return raw[1];
}

/** A fresh random nonce from the system's cryptographic generator. */
export function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/** Imports a shared secret as an HMAC-SHA256 key that cannot be read back. */
export function importSecret(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/** The HMAC of one side over the transcript of a handshake. */
export async function proofOf(
  key: CryptoKey,
  side: "client" | "server",
  cluster: string,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
): Promise<Uint8Array> {
  const transcript = codec.encode([
    TRANSCRIPT,
    HANDSHAKE_VERSION,
    `${side} proof`,
    cluster,
    clientNonce,
    serverNonce,
  ]);
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", key, transcript as Uint8Array<ArrayBuffer>),
  );
}

/**
 * Whether two byte strings are equal, in time that depends only on their
 * lengths (which are public), never on where they differ.
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Checks the `cluster` option and returns it ("" when absent).
 *
 * @throws {TypeError} when it is not a string.
 * @throws {RangeError} when it is too long.
 */
export function checkCluster(cluster: unknown): string {
  if (cluster === undefined) return "";
  if (typeof cluster !== "string") {
    throw new TypeError(`cluster must be a string, got ${typeof cluster}`);
  }
  if (cluster.length > MAX_CLUSTER_LENGTH) {
    throw new RangeError(
      `cluster must be at most ${MAX_CLUSTER_LENGTH} characters, got ${cluster.length}`,
    );
  }
  return cluster;
}

/**
 * Checks the `secret` option and returns a private copy of its bytes
 * (undefined when absent).
 *
 * @throws {TypeError} when it is neither a string nor a Uint8Array.
 * @throws {RangeError} when it is empty.
 */
export function checkSecret(secret: unknown): Uint8Array | undefined {
  if (secret === undefined) return undefined;
  let bytes: Uint8Array;
  if (typeof secret === "string") bytes = new TextEncoder().encode(secret);
  else if (secret instanceof Uint8Array) bytes = secret.slice();
  else throw new TypeError(`secret must be a string or a Uint8Array, got ${typeof secret}`);
  if (bytes.length === 0) {
    throw new RangeError("secret must not be empty; leave it out to turn authentication off");
  }
  return bytes;
}

/** A cluster id as it reads in a message: `cluster "blue"`, or `the unnamed cluster`. */
export function describeCluster(cluster: string): string {
  return cluster === "" ? `the unnamed cluster ("")` : `cluster ${JSON.stringify(cluster)}`;
}

function clip(reason: string): string {
  return reason.length <= MAX_REASON_LENGTH ? reason : `${reason.slice(0, MAX_REASON_LENGTH)}...`;
}

const HTTP_REQUEST_STARTS = [
  "GET ",
  "POST",
  "PUT ",
  "HEAD",
  "DELE",
  "OPTI",
  "PATC",
  "CONN",
  "TRAC",
];

/**
 * What a handshake frame's 4-byte length really is when the peer speaks
 * HTTP: `"HTTP"` (0x48545450, the start of a response) or a request method
 * such as `"GET "`. Undefined when it looks like no HTTP message.
 */
export function httpLookalike(size: number): "response" | "request" | undefined {
  const text = String.fromCharCode(
    (size >>> 24) & 0xff,
    (size >>> 16) & 0xff,
    (size >>> 8) & 0xff,
    size & 0xff,
  );
  if (text === "HTTP") return "response";
  return HTTP_REQUEST_STARTS.includes(text) ? "request" : undefined;
}
