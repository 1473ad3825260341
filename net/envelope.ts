/**
 * The RPC envelope both transports put on the wire, and the request/answer
 * steps they share.
 *
 * Envelopes are MessagePack arrays: `[0, id, method, args]` for a request,
 * `[1, id, value]` for a reply, `[2, id, code, remoteName, message]` for a
 * failure. Id 0 in a failure means the frame it answers could not be read.
 *
 * @module
 */
import type { Codec } from "./codec.ts";
import {
  errorFromWire,
  failureOf,
  ProtocolError,
  RpcError,
  type RpcErrorCode,
  unsentRequestError,
  type WireFailure,
} from "./errors.ts";
import type { CallContext, RpcServer } from "./rpc_server.ts";

/** A decoded request. */
export interface RequestEnvelope {
  kind: "request";
  id: number;
  method: string;
  args: unknown;
}

/** A decoded answer: a reply value or a failure. */
export type AnswerEnvelope =
  | { kind: "reply"; id: number; value: unknown }
  | { kind: "failure"; id: number; failure: WireFailure };

/** Any decoded envelope. */
export type Envelope = RequestEnvelope | AnswerEnvelope;

const CODES: ReadonlySet<string> = new Set<RpcErrorCode>([
  "unreachable",
  "timeout",
  "aborted",
  "closed",
  "remote",
  "unknown_service",
  "unknown_method",
  "bad_arguments",
  "codec",
  "frame_too_large",
  "protocol",
]);

/** Encodes an envelope. */
export function encodeEnvelope(codec: Codec, envelope: Envelope): Uint8Array {
  switch (envelope.kind) {
    case "request":
      return codec.encode([0, envelope.id, envelope.method, envelope.args]);
    case "reply":
      return codec.encode([1, envelope.id, envelope.value]);
    case "failure": {
      const f = envelope.failure;
      return codec.encode([2, envelope.id, f.code, f.remoteName, f.message]);
    }
  }
}

/**
 * Encodes a client's request. A failure (a value MessagePack cannot carry, a
 * frame over the limit) happens before anything is sent, and says so
 * (`notSent`, see {@linkcode unsentRequestError}).
 *
 * @throws {CodecError} when the arguments cannot be encoded.
 * @throws {FrameTooLargeError} when the request is over the codec's limit.
 */
export function encodeRequest(codec: Codec, request: RequestEnvelope): Uint8Array {
  try {
    return encodeEnvelope(codec, request);
  } catch (err) {
    throw unsentRequestError(request.method, err);
  }
}

/**
 * Decodes an envelope, checking its shape.
 *
 * @throws {CodecError} when the bytes are not MessagePack.
 * @throws {ProtocolError} when they are, but not an envelope.
 */
export function decodeEnvelope(codec: Codec, bytes: Uint8Array): Envelope {
  const raw = codec.decode(bytes);
  if (!Array.isArray(raw)) throw new ProtocolError("envelope is not an array");
  const [kind, id] = raw;
  if (!Number.isSafeInteger(id) || id < 0) {
    throw new ProtocolError(`envelope id must be a non-negative integer, got ${String(id)}`);
  }
  if (kind === 0 && raw.length === 4 && typeof raw[2] === "string") {
    return { kind: "request", id, method: raw[2], args: raw[3] };
  }
  if (kind === 1 && raw.length === 3) return { kind: "reply", id, value: raw[2] };
  if (
    kind === 2 && raw.length === 5 && CODES.has(raw[2]) && typeof raw[3] === "string" &&
    typeof raw[4] === "string"
  ) {
    return { kind: "failure", id, failure: { code: raw[2], remoteName: raw[3], message: raw[4] } };
  }
  throw new ProtocolError(`malformed envelope of kind ${String(kind)} with ${raw.length} fields`);
}

/** Runs a request on a server and turns the outcome into an answer. */
export async function answer(
  server: RpcServer,
  request: RequestEnvelope,
  context: Partial<CallContext> = {},
): Promise<AnswerEnvelope> {
  try {
    const value = await server.dispatch(request.method, request.args, context);
    return { kind: "reply", id: request.id, value };
  } catch (err) {
    return { kind: "failure", id: request.id, failure: failureOf(err) };
  }
}

/**
 * Encodes an answer; when the reply itself cannot be encoded (too large, a
 * function in it), encodes a failure that says so instead.
 */
export function encodeAnswer(codec: Codec, envelope: AnswerEnvelope): Uint8Array {
  try {
    return encodeEnvelope(codec, envelope);
  } catch (err) {
    const failure = failureOf(err);
    if (err instanceof RpcError) failure.code = err.code;
    return encodeEnvelope(codec, {
      kind: "failure",
      id: envelope.id,
      failure: { ...failure, message: `the reply could not be encoded: ${failure.message}` },
    });
  }
}

/** The reply value of an answer, or the typed error of a failure. */
export function settle(method: string, envelope: AnswerEnvelope): unknown {
  if (envelope.kind === "reply") return envelope.value;
  throw errorFromWire(method, envelope.failure);
}

/** A failure answer for a frame that could not be read. */
export function unreadable(err: unknown, id = 0): AnswerEnvelope {
  const code: RpcErrorCode = err instanceof RpcError ? err.code : "protocol";
  const remoteName = err instanceof Error ? err.name : "Error";
  const message = err instanceof Error ? err.message : String(err);
  return { kind: "failure", id, failure: { code, remoteName, message } };
}
