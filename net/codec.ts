/**
 * MessagePack encoding with the safety rules every transport relies on: a size
 * limit, typed errors, and no prototype pollution.
 *
 * @module
 */
import { DecodeError, Decoder, Encoder } from "@msgpack/msgpack";
import { utf8Length } from "./bytes.ts";
import { CodecError, FrameTooLargeError } from "./errors.ts";

/**
 * The default largest message, in bytes, a codec accepts: 64 MiB.
 *
 * @example
 * ```ts
 * import { Codec, DEFAULT_MAX_MESSAGE_BYTES } from "@distkit/distkit/net";
 *
 * new Codec().maxMessageBytes === DEFAULT_MAX_MESSAGE_BYTES; // true
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 64 * 1024 * 1024;

/**
 * Options for {@linkcode Codec}.
 *
 * @example
 * ```ts
 * import { Codec, type CodecOptions } from "@distkit/distkit/net";
 *
 * const options: CodecOptions = { maxMessageBytes: 1024 * 1024 };
 * new Codec(options);
 * ```
 */
export interface CodecOptions {
  /** Largest encoded message accepted in either direction. Default 64 MiB. */
  maxMessageBytes?: number;
}

/**
 * Encodes values to MessagePack bytes and back.
 *
 * Decoding rejects, with a {@linkcode CodecError}: malformed or truncated
 * input, trailing bytes, and a `__proto__` map key (so a message can never
 * change an object's prototype). Input or output larger than
 * `maxMessageBytes` is rejected with a {@linkcode FrameTooLargeError}.
 *
 * @example Round trip
 * ```ts
 * import { Codec } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const codec = new Codec();
 * const bytes = codec.encode({ term: 3, entries: ["a", "b"] });
 * assert.deepEqual(codec.decode(bytes), { term: 3, entries: ["a", "b"] });
 * ```
 */
export class Codec {
  /** Largest encoded message accepted, in bytes. */
  readonly maxMessageBytes: number;
  #encoder = withFastLongStrings(new Encoder({ ignoreUndefined: true }));
  #decoder: Decoder;

  /**
   * Creates a codec.
   *
   * @param options Size limit.
   */
  constructor(options: CodecOptions = {}) {
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max <= 0) {
      throw new RangeError(`maxMessageBytes must be a positive integer, got ${max}`);
    }
    this.maxMessageBytes = max;
    // Every array element and map entry takes at least one byte, so no
    // legitimate length can exceed the message size.
    this.#decoder = new Decoder({
      maxStrLength: max,
      maxBinLength: max,
      maxArrayLength: max,
      maxMapLength: max,
      maxExtLength: max,
    });
  }

  /**
   * Encodes a value. `undefined` object fields are left out.
   *
   * @throws {CodecError} when the value cannot be encoded (a function, a symbol, a cycle).
   * @throws {FrameTooLargeError} when the result exceeds `maxMessageBytes`.
   */
  encode(value: unknown): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = this.#encoder.encode(value);
    } catch (err) {
      throw new CodecError(
        `cannot encode value: ${(err as Error).message}; send only plain objects, arrays, ` +
          `strings, numbers, booleans, null, Uint8Array and Date, nested at most 100 deep`,
        { cause: err },
      );
    }
    if (bytes.length > this.maxMessageBytes) {
      throw new FrameTooLargeError(bytes.length, this.maxMessageBytes);
    }
    return bytes;
  }

  /**
   * Decodes exactly one value from `bytes`.
   *
   * @throws {CodecError} when the bytes are not one well-formed value.
   * @throws {FrameTooLargeError} when the input exceeds `maxMessageBytes`.
   */
  decode(bytes: Uint8Array): unknown {
    if (bytes.length > this.maxMessageBytes) {
      throw new FrameTooLargeError(bytes.length, this.maxMessageBytes);
    }
    try {
      return this.#decoder.decode(bytes);
    } catch (err) {
      if (err instanceof DecodeError || err instanceof RangeError || err instanceof TypeError) {
        throw new CodecError(err.message, { cause: err });
      }
      throw new CodecError(String(err), { cause: err });
    }
  }
}

/**
 * A codec with the default 64 MiB limit, shared by everything that does not
 * configure its own.
 *
 * @example
 * ```ts
 * import { defaultCodec } from "@distkit/distkit/net";
 *
 * defaultCodec.decode(defaultCodec.encode("hello")); // "hello"
 * ```
 */
export const defaultCodec: Codec = new Codec();

/** The members of msgpack's `Encoder` that its string encoding uses (private in its types). */
interface EncoderStrings {
  bytes: Uint8Array;
  pos: number;
  ensureBufferSizeToWrite(size: number): void;
  writeStringHeader(byteLength: number): void;
  encodeString(s: string): void;
}

/** Strings at least this long take the native path; shorter ones msgpack's own loop. */
const LONG_STRING = 256;
const TEXT_ENCODER = new TextEncoder();

/**
 * Makes `encoder` measure long strings natively. msgpack counts a string's
 * UTF-8 bytes with a loop in JavaScript before it encodes it natively: about
 * 1 ms per MiB, a third of a 1 MiB value's encoding, paid for every log
 * entry, append and snapshot that carries it (issue 16). The bytes written
 * are the same (a test compares them with msgpack's own). Left as it is if
 * the encoder is not built as expected.
 */
function withFastLongStrings(encoder: Encoder): Encoder {
  const e = encoder as unknown as EncoderStrings;
  if (
    typeof e.encodeString !== "function" || typeof e.ensureBufferSizeToWrite !== "function" ||
    typeof e.writeStringHeader !== "function"
  ) {
    return encoder;
  }
  const original = e.encodeString;
  e.encodeString = function (this: EncoderStrings, s: string): void {
    if (s.length < LONG_STRING) return original.call(this, s);
    const byteLength = utf8Length(s);
    this.ensureBufferSizeToWrite(5 + byteLength);
    this.writeStringHeader(byteLength);
    const { written } = TEXT_ENCODER.encodeInto(s, this.bytes.subarray(this.pos));
    if (written !== byteLength) {
      throw new Error(`a string measured ${byteLength} UTF-8 bytes and encoded to ${written}`);
    }
    this.pos += byteLength;
  };
  return encoder;
}
