/**
 * Resending a snapshot stream's chunks go-back-N style, the pure half of
 * `snapshot_stream.ts`. Chunks travel several at a time and may arrive out
 * of order, twice, or not at all (a dropped message, a reconnect); the
 * follower takes only the chunk at the offset it wants next and answers
 * every chunk with that offset (`snapshot_receive.ts`). A chunk it did not
 * take is sent again from where the follower is, not the whole state from
 * zero: the leader keeps the bytes of the chunks it read and the follower
 * has not acknowledged, no more than the window of them.
 *
 * What an answer proves: the follower had `offset` bytes when the chunk
 * reached it, and (its answers and chunks being causally ordered) at least
 * what the leader knew it had when it sent the chunk. An answer below that
 * means the follower lost what it was receiving (it restarted, or another
 * stream superseded this one): that, or an offset this stream never sent,
 * cannot be served, and the stream fails (a new one starts from a new read).
 * So does an offset where no chunk read starts: every offset the follower
 * reports is the end of chunks it took, so every chunk sent is one read,
 * whole, and what is held is what is in flight in the current round: at most
 * the window (stated where a chunk is read).
 *
 * @module
 */
import { invariant } from "./invariant.ts";

/**
 * How many times in a row a stream goes back without the follower taking a
 * byte before it fails: the follower is unreachable or stalled, not merely
 * missing a chunk (a new stream is tried later, as the core decides).
 */
export const MAX_STALLS = 4;

/**
 * A chunk as sent: where it starts and ends, and what the sender knew then.
 *
 * @example
 * ```ts
 * import type { SentChunk } from "./snapshot_resend.ts";
 *
 * const sent: SentChunk = { offset: 8, end: 12, last: false, round: 0, known: 4 };
 * ```
 */
export interface SentChunk {
  /** Its offset in the state. */
  readonly offset: number;
  /** Its offset plus its length. */
  readonly end: number;
  /** Whether it is the state's last chunk. */
  readonly last: boolean;
  /** The round (see {@linkcode Resender.answered}) it was sent in. */
  readonly round: number;
  /** The most bytes the follower was known to have when it was sent. */
  readonly known: number;
}

/**
 * A chunk read from the state and not yet known to be the follower's.
 *
 * @example
 * ```ts
 * import type { HeldChunk } from "./snapshot_resend.ts";
 *
 * const held: HeldChunk = { offset: 0, chunk: new Uint8Array([1, 2]), last: true };
 * ```
 */
export interface HeldChunk {
  /** Its offset in the state. */
  offset: number;
  /** Its bytes. */
  chunk: Uint8Array;
  /** Whether it is the state's last chunk. */
  last: boolean;
}

/**
 * The chunks of one stream: which to send next, and what each answer means.
 * A round is the chunks sent since the last time the stream went back;
 * only a chunk of the current round not taken sends the stream back (those
 * of earlier rounds were sent again already).
 *
 * @example
 * ```ts
 * import { type HeldChunk, Resender } from "./snapshot_resend.ts";
 *
 * const resender = new Resender(8);
 * resender.next(); // "read": the next chunk must be read from the state
 * resender.read(new Uint8Array(4), false);
 * const first = resender.sent(resender.next() as HeldChunk);
 * resender.read(new Uint8Array(4), true);
 * const second = resender.sent(resender.next() as HeldChunk);
 * resender.answered(first, undefined); // "more": lost; the stream goes back to offset 0
 * resender.answered(second, 0); // "more": out of order, of a round gone back already
 * resender.next(); // the chunk at 0 again: sent again, not read again
 * ```
 */
export class Resender {
  readonly #windowBytes: number;
  /** Read and not acknowledged, in order, contiguous: each one's bytes, kept to send again. */
  #held: HeldChunk[] = [];
  #heldBytes = 0;
  /** Where the chunks read so far end. */
  #frontier = 0;
  #readLast = false;
  /** Where the next chunk sent starts. */
  #pos = 0;
  /** The last chunk was sent in this round: nothing more is, until the stream goes back. */
  #lastOut = false;
  /** The most bytes the follower is known to have had. */
  #acked = 0;
  #round = 0;
  /** Times the stream went back since the follower last took a byte. */
  #stalls = 0;
  /** Chunks whose answers were lost since the follower last took a byte. */
  #lost = 0;

  /**
   * Creates the resender of one stream.
   *
   * @param windowBytes The window: the most bytes held (it bounds the chunks in flight).
   */
  constructor(windowBytes: number) {
    this.#windowBytes = windowBytes;
  }

  /**
   * Chunks whose answers were lost since the follower last took a byte:
   * they may still be ahead of the next one at the follower (its disk
   * stalls), so a chunk sent now may wait for them too; and a follower that
   * answers nothing is sent a chunk again less and less often.
   */
  get lost(): number {
    return this.#lost;
  }

  /** Bytes read and not acknowledged (at most the window). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * The chunk to send next (a held one, again, or part of it), "read" when
   * it must be read from the state first ({@linkcode Resender.read}), or
   * undefined when nothing is to be sent until an answer comes.
   */
  next(): HeldChunk | "read" | undefined {
    if (this.#lastOut) return undefined;
    // The follower may have taken more meanwhile (a chunk of an earlier round arrived after all).
    const at = Math.max(this.#pos, this.#acked);
    // Every offset the follower reports is where a chunk starts (see `answered`): so is `at`.
    const h = this.#held.find((h) => h.offset === at);
    if (h !== undefined) return h;
    return this.#readLast || at !== this.#frontier ? undefined : "read";
  }

  /** A chunk read from the state (after those read before): it is held until acknowledged. */
  read(chunk: Uint8Array, last: boolean): void {
    invariant(!this.#readLast, "a snapshot stream read past its last chunk");
    this.#held.push({ offset: this.#frontier, chunk, last });
    this.#heldBytes += chunk.length;
    this.#frontier += chunk.length;
    this.#readLast = last;
    // Held chunks are those sent in this round and not answered (see `answered`): the window's.
    invariant(
      this.#heldBytes <= this.#windowBytes,
      `a snapshot stream holds ${this.#heldBytes} bytes, over its window of ${this.#windowBytes}`,
    );
  }

  /** `chunk` (as {@linkcode Resender.next} gave it) is sent: returns what its answer is matched with. */
  sent(chunk: HeldChunk): SentChunk {
    this.#pos = chunk.offset + chunk.chunk.length;
    this.#lastOut = chunk.last;
    return {
      offset: chunk.offset,
      end: this.#pos,
      last: chunk.last,
      round: this.#round,
      known: this.#acked,
    };
  }

  /**
   * The answer to `sent`, in the order chunks were sent: the offset the
   * follower wanted when it got the chunk, or undefined when no answer came
   * (the chunk or its answer was lost). "more": the stream goes on (from
   * where the follower is, when it did not take the chunk); "failed": it
   * cannot be served (the follower lost what it had, or wants what this
   * stream never read), or went back {@linkcode MAX_STALLS} times in a row
   * in vain. The last chunk is taken only with a `done` answer, which the
   * caller sees first.
   */
  answered(sent: SentChunk, offset: number | undefined): "more" | "failed" {
    if (offset === undefined) this.#lost++;
    else {
      if (offset < sent.known) return "failed";
      if (offset > this.#acked && !this.#starts(offset)) return "failed";
      if (offset > this.#acked) this.#acknowledge(offset);
      if (offset >= sent.end && !sent.last) return "more";
    }
    // Not taken. Once per round, the stream goes back to where the follower is known to be.
    if (sent.round !== this.#round || (sent.end <= this.#acked && !sent.last)) return "more";
    if (++this.#stalls > MAX_STALLS) return "failed";
    this.#round++;
    this.#pos = this.#acked;
    this.#lastOut = false;
    return "more";
  }

  /** Whether a chunk read starts at `offset` (or the next one read would). */
  #starts(offset: number): boolean {
    return offset === this.#frontier || this.#held.some((h) => h.offset === offset);
  }

  /** The follower has `offset` bytes: those it has are no longer held. */
  #acknowledge(offset: number): void {
    this.#acked = offset;
    this.#stalls = 0;
    this.#lost = 0;
    while (this.#held.length > 0) {
      const h = this.#held[0];
      if (h.last || h.offset + h.chunk.length > offset) break;
      this.#held.shift();
      this.#heldBytes -= h.chunk.length;
    }
  }
}
