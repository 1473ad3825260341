/**
 * The messages a core has queued for its next ready, with the answers to
 * requests the driver tagged with an id kept apart, so they ride back on
 * their requests' RPCs however the outbox changes meanwhile.
 *
 * @module
 */
import type { Reply } from "./ready.ts";
import type { Message, NodeId } from "./types.ts";

/** The kinds of message that answer another one. */
const RESPONSE_TYPES: ReadonlySet<Message["type"]> = new Set([
  "voteResp",
  "appendResp",
  "heartbeatResp",
  "snapshotResp",
]);

/**
 * A core's queued messages and tagged answers.
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 *
 * const outbox = new Outbox();
 * outbox.answering({ id: 7, from: "b" }, () => {
 *   outbox.push({ type: "heartbeatResp", from: "a", to: "b", term: 1, context: 0 });
 * });
 * outbox.take().replies; // [{ requestId: 7, message: { type: "heartbeatResp", ... } }]
 * ```
 */
export class Outbox {
  #messages: Message[] = [];
  #replies: Reply[] = [];
  /** The request being stepped, when the driver tagged it. */
  #request: { id: number; from: NodeId } | undefined;
  /** What every message says of the sender's folder (see `CoreOptions.incarnation`). */
  readonly #folder: { inc: string; joined?: true } | undefined;

  /**
   * An outbox whose messages say they come from data folder incarnation
   * `inc`, if given, and whether that folder joined the cluster.
   */
  constructor(folder?: { inc: string; joined?: true }) {
    this.#folder = folder;
  }

  /** How many messages and answers are queued. */
  get size(): number {
    return this.#messages.length + this.#replies.length;
  }

  /** Runs `step` with the answers it queues to `request.from` tagged with `request.id`. */
  answering(request: { id: number; from: NodeId } | undefined, step: () => void): void {
    this.#request = request;
    try {
      step();
    } finally {
      this.#request = undefined;
    }
  }

  /** Queues `m`: an answer to the tagged request being stepped goes with the replies. */
  push(m: Message): void {
    // Every message pushed is a new object of the core's: stamped in place, not copied.
    const folder = this.#folder;
    if (folder !== undefined) {
      m.inc = folder.inc;
      if (folder.joined) m.joined = true;
    }
    const request = this.#request;
    if (request !== undefined && m.to === request.from && RESPONSE_TYPES.has(m.type)) {
      this.#replies.push({ requestId: request.id, message: m });
    } else {
      this.#messages.push(m);
    }
  }

  /** Drops the queued heartbeats to `peer` (a newer one follows); answers are not touched. */
  dropHeartbeats(peer: NodeId): void {
    this.#messages = this.#messages.filter((m) => !(m.type === "heartbeat" && m.to === peer));
  }

  /**
   * Takes the answers to request `requestId` when there are some and all
   * are of `type`; else takes nothing and returns undefined.
   */
  takeReplies(requestId: number, type: Message["type"]): Message[] | undefined {
    const mine = this.#replies.filter((r) => r.requestId === requestId);
    if (mine.length === 0 || mine.some((r) => r.message.type !== type)) return undefined;
    this.#replies = this.#replies.filter((r) => r.requestId !== requestId);
    return mine.map((r) => r.message);
  }

  /** Takes everything queued. */
  take(): { messages: Message[]; replies: Reply[] } {
    const taken = { messages: this.#messages, replies: this.#replies };
    this.#messages = [];
    this.#replies = [];
    return taken;
  }
}
