/**
 * Checks that a value received from the network is a well-formed Raft
 * message, so a malformed or hostile peer gets a clear error instead of
 * corrupting the node.
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import type { Entry, Membership, Message, SnapshotMeta } from "./types.ts";

type Fields = Record<string, unknown>;

function fail(problem: string): never {
  throw new ArgumentsError(`malformed Raft message: ${problem}`);
}

function record(value: unknown, what: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(`${what} is not an object`);
  }
  return value as Fields;
}

function index(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    fail(`${what} must be a non-negative integer`);
  }
  return value as number;
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "") fail(`${what} must be a non-empty string`);
  return value;
}

function joinedFlag(value: unknown): true {
  if (value !== true) fail("joined must be true when present");
  return true;
}

function flag(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") fail(`${what} must be a boolean`);
  return value;
}

function membership(value: unknown, what: string): Membership {
  const m = record(value, what);
  const list = (v: unknown, name: string) => {
    if (!Array.isArray(v)) fail(`${what}.${name} must be an array`);
    return v.map((x, i) => text(x, `${what}.${name}[${i}]`));
  };
  const voters = list(m.voters, "voters");
  const parsed: Membership = { voters, learners: list(m.learners, "learners") };
  if (m.bindings !== undefined) {
    const bindings = record(m.bindings, `${what}.bindings`);
    for (const [node, inc] of Object.entries(bindings)) {
      if (!voters.includes(node)) {
        fail(`${what}.bindings names ${JSON.stringify(node)}, not a voter`);
      }
      text(inc, `${what}.bindings[${JSON.stringify(node)}]`);
    }
    parsed.bindings = bindings as Record<string, string>;
  }
  return parsed;
}

function entry(value: unknown, i: number): Entry {
  const e = record(value, `entries[${i}]`);
  const kind = e.kind;
  if (kind !== "command" && kind !== "noop" && kind !== "membership") {
    fail(`entries[${i}].kind is unknown`);
  }
  const at = {
    index: index(e.index, `entries[${i}].index`),
    term: index(e.term, `entries[${i}].term`),
  };
  switch (kind) {
    case "command":
      return { ...at, kind, command: e.command };
    case "noop":
      return { ...at, kind };
    case "membership":
      return { ...at, kind, membership: membership(e.membership, `entries[${i}].membership`) };
  }
}

function snapshotMeta(value: unknown): SnapshotMeta {
  const m = record(value, "meta");
  return {
    index: index(m.index, "meta.index"),
    term: index(m.term, "meta.term"),
    membership: membership(m.membership, "meta.membership"),
    ...(m.membershipIndex === undefined
      ? {}
      : { membershipIndex: index(m.membershipIndex, "meta.membershipIndex") }),
  };
}

/**
 * Validates and copies a Raft message received from a peer.
 *
 * @throws {ArgumentsError} naming the first field that is wrong.
 */
export function parseMessage(value: unknown): Message {
  const m = record(value, "message");
  const base = {
    from: text(m.from, "from"),
    to: text(m.to, "to"),
    term: index(m.term, "term"),
    ...(m.inc === undefined ? {} : { inc: text(m.inc, "inc") }),
    ...(m.joined === undefined ? {} : { joined: joinedFlag(m.joined) }),
  };
  switch (m.type) {
    case "vote":
      return {
        ...base,
        type: "vote",
        pre: flag(m.pre, "pre"),
        transfer: flag(m.transfer, "transfer"),
        lastIndex: index(m.lastIndex, "lastIndex"),
        lastTerm: index(m.lastTerm, "lastTerm"),
      };
    case "voteResp":
      return {
        ...base,
        type: "voteResp",
        pre: flag(m.pre, "pre"),
        granted: flag(m.granted, "granted"),
      };
    case "append": {
      if (!Array.isArray(m.entries)) fail("entries must be an array");
      const entries = m.entries.map(entry);
      const prevIndex = index(m.prevIndex, "prevIndex");
      entries.forEach((e, i) => {
        if (e.index !== prevIndex + 1 + i) fail(`entries[${i}].index must be ${prevIndex + 1 + i}`);
      });
      return {
        ...base,
        type: "append",
        prevIndex,
        prevTerm: index(m.prevTerm, "prevTerm"),
        entries,
        commit: index(m.commit, "commit"),
        seq: index(m.seq, "seq"),
      };
    }
    case "appendResp":
      return {
        ...base,
        type: "appendResp",
        success: flag(m.success, "success"),
        index: index(m.index, "index"),
        conflictTerm: index(m.conflictTerm, "conflictTerm"),
        conflictIndex: index(m.conflictIndex, "conflictIndex"),
        seq: index(m.seq, "seq"),
      };
    case "heartbeat":
      return {
        ...base,
        type: "heartbeat",
        commit: index(m.commit, "commit"),
        context: index(m.context, "context"),
      };
    case "heartbeatResp":
      return {
        ...base,
        type: "heartbeatResp",
        context: index(m.context, "context"),
        ...(m.lastIndex === undefined ? {} : { lastIndex: index(m.lastIndex, "lastIndex") }),
      };
    case "snapshot": {
      if (!(m.chunk instanceof Uint8Array)) fail("chunk must be bytes");
      const size = index(m.size, "size");
      const offset = index(m.offset, "offset");
      if (offset + m.chunk.length > size) fail("chunk runs past the snapshot's size");
      return {
        ...base,
        type: "snapshot",
        meta: snapshotMeta(m.meta),
        offset,
        size,
        chunk: m.chunk,
        ...(m.stream === undefined ? {} : { stream: index(m.stream, "stream") }),
      };
    }
    case "snapshotResp":
      return {
        ...base,
        type: "snapshotResp",
        index: index(m.index, "index"),
        offset: index(m.offset, "offset"),
        done: flag(m.done, "done"),
      };
    case "timeoutNow":
      return { ...base, type: "timeoutNow" };
    default:
      fail(`unknown type ${JSON.stringify(m.type)}`);
  }
}
