/**
 * Builders shared by the Raft unit tests (not published).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { RaftCore } from "./core.ts";
import type { CoreOptions } from "./core_options.ts";
import type { Ready } from "./ready.ts";
import type { RaftNode } from "./node.ts";
import type { Applied } from "./node_options.ts";
import type { SnapshotSource } from "./snapshot_stream.ts";
import { SnapshotReceiver, type StreamedChunk } from "./snapshot_receive.ts";
import type {
  AppendMessage,
  Entry,
  HardState,
  Message,
  NodeId,
  Snapshot,
  SnapshotMessage,
} from "./types.ts";

/** Whether a proposal's answer is a refusal (else it was appended at an index and term). */
export function isRefusal(r: unknown): r is { reason: string; leader: NodeId | null } {
  return typeof r === "object" && r !== null && "reason" in r;
}

/** A command entry at `index` of `term`. */
export function cmd(index: number, term: number, command: unknown = `c${index}`): Entry {
  return { index, term, kind: "command", command };
}

/** Command entries `from`..`to`, all of `term`. */
export function run(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(cmd(i, term));
  return out;
}

/** Command entries `from`..`to` of `term`, each command `"<index>:"` padded to `size` characters. */
export function entries(from: number, to: number, term: number, size = 10): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, k) => ({
    index: from + k,
    term,
    kind: "command" as const,
    command: `${from + k}:`.padEnd(size, "x"),
  }));
}

/** A snapshot at `index` of `term` (voters a and b) with `bytes` bytes of data that depend on `index`. */
export function snapshotAt(index: number, term: number, bytes: number): Snapshot {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + index) & 0xff;
  return { meta: { index, term, membership: { voters: ["a", "b"], learners: [] } }, data };
}

/**
 * Runs `fn` with a new temporary folder (or, with `child`, a path inside it
 * that does not exist yet), removed afterwards whatever happens.
 */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
  options: { prefix?: string; child?: string } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "distkit-" });
  try {
    await fn(options.child === undefined ? dir : `${dir}/${options.child}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An append message; entries, commit and seq default to empty, 0 and 0. */
export function append(
  fields:
    & Pick<AppendMessage, "from" | "to" | "term" | "prevIndex" | "prevTerm">
    & Partial<AppendMessage>,
): AppendMessage {
  return { type: "append", entries: [], commit: 0, seq: 0, ...fields };
}

// ---- a tiny cluster of cores, moved by hand ----

/** Whether `m` is a vote request or answer. */
export const isVoteTraffic = (m: Message): boolean => m.type === "vote" || m.type === "voteResp";

/** What one core of a {@linkcode Net} starts from, and its own options. */
export interface NodeSpec {
  hardState?: HardState;
  entries?: Entry[];
  /** Options of this core, over the net's shared ones. */
  options?: CoreOptions;
}

/** A core of the founding membership `voters` (and `learners`), from `spec`. */
export function makeCore(
  id: NodeId,
  voters: NodeId[],
  learners: NodeId[] = [],
  spec: NodeSpec = {},
  options: CoreOptions = {},
  seed = 1,
): RaftCore {
  return new RaftCore(id, {
    hardState: spec.hardState ?? { term: 0, vote: null, commit: 0 },
    snapshot: {
      meta: { index: 0, term: 0, membership: { voters, learners } },
      data: new Uint8Array(),
    },
    entries: spec.entries ?? [],
  }, { random: new Random(seed), ...options, ...spec.options });
}

/**
 * Routes messages between cores by hand. Nothing moves unless a test calls
 * `collect`/`deliver`/`settle`; no core ticks unless a test ticks it.
 */
export class Net {
  readonly cores = new Map<NodeId, RaftCore>();
  /** Every ready taken from each node, in order. */
  readonly readies = new Map<NodeId, Ready[]>();
  /** Committed entries handed out by each node, in order. */
  readonly applied = new Map<NodeId, Entry[]>();
  /** Every message delivered, in order. */
  readonly delivered: Message[] = [];
  /** Messages dropped (to or from a cut node, or filtered out). */
  dropped: Message[] = [];
  readonly cut = new Set<NodeId>();

  constructor(
    voters: NodeId[],
    opts: {
      learners?: NodeId[];
      specs?: Record<NodeId, NodeSpec>;
      options?: CoreOptions;
      extra?: NodeId[];
    } = {},
  ) {
    const learners = opts.learners ?? [];
    let seed = 1;
    for (const id of [...voters, ...learners, ...(opts.extra ?? [])]) {
      this.add(makeCore(id, voters, learners, opts.specs?.[id], opts.options, seed++));
    }
  }

  add(core: RaftCore): void {
    this.cores.set(core.id, core);
    this.readies.set(core.id, []);
    this.applied.set(core.id, []);
  }

  get(id: NodeId): RaftCore {
    return this.cores.get(id)!;
  }

  /** Takes the ready of one node (recording it) and returns its messages. */
  readyOf(id: NodeId): Ready {
    const rd = this.get(id).ready();
    this.get(id).persisted(rd.lastIndex, rd.lastTerm); // as a driver does once it wrote the ready
    this.readies.get(id)!.push(rd);
    this.applied.get(id)!.push(...rd.committed);
    return rd;
  }

  /** Takes every pending ready and returns all their messages. */
  collect(): Message[] {
    const out: Message[] = [];
    for (const [id, core] of this.cores) {
      if (core.hasReady()) out.push(...this.readyOf(id).messages);
    }
    return out;
  }

  /** Delivers messages, dropping those touching a cut node or refused by `keep`. */
  deliver(messages: Message[], keep: (m: Message) => boolean = () => true): void {
    for (const m of messages) {
      if (this.cut.has(m.from) || this.cut.has(m.to) || !keep(m)) {
        this.dropped.push(m);
        continue;
      }
      const to = this.cores.get(m.to);
      if (to === undefined) {
        this.dropped.push(m);
        continue;
      }
      this.delivered.push(m);
      to.step(m);
    }
  }

  /** Collects and delivers until no message is left; returns what was delivered. */
  settle(keep: (m: Message) => boolean = () => true, maxRounds = 200): Message[] {
    const start = this.delivered.length;
    for (let round = 0; round < maxRounds; round++) {
      const messages = this.collect();
      if (messages.length === 0) return this.delivered.slice(start);
      this.deliver(messages, keep);
    }
    throw new Error(`no quiescence after ${maxRounds} rounds`);
  }

  /** Reconnects a node and tells the senders of its lost appends and chunks (as a driver would). */
  heal(id: NodeId): void {
    this.cut.delete(id);
    for (const m of this.dropped) {
      if (m.to === id && (m.type === "append" || m.type === "snapshot")) {
        this.cores.get(m.from)?.reportUnreachable(m.to, m.type);
      }
    }
    this.dropped = this.dropped.filter((m) => m.to !== id);
  }

  /** Ticks `id` until it starts campaigning (its ready has vote requests). */
  tickUntilCampaign(id: NodeId, limit = 100): Message[] {
    const core = this.get(id);
    for (let i = 0; i < limit; i++) {
      core.tick();
      if (core.role !== "follower" && core.role !== "leader") return this.collect();
    }
    throw new Error(`${id} did not campaign within ${limit} ticks`);
  }

  /** Makes `id` campaign and delivers everything until quiet; asserts it won. */
  elect(id: NodeId): void {
    this.deliver(this.tickUntilCampaign(id));
    this.settle();
    assert.equal(this.get(id).role, "leader", `${id} should have won`);
  }

  /** Makes `id` campaign and delivers only vote traffic: it wins, but no append has arrived yet. */
  electVotesOnly(id: NodeId): void {
    const core = this.get(id);
    this.deliver(this.tickUntilCampaign(id), isVoteTraffic);
    for (let i = 0; i < 5 && core.role !== "leader"; i++) {
      this.deliver(this.collect(), isVoteTraffic);
    }
    assert.equal(core.role, "leader", `${id} should have won`);
  }

  /** Ticks every node once (cut ones too) and settles. */
  tickAll(): void {
    for (const core of this.cores.values()) core.tick();
    this.settle();
  }
}

/** The snapshot the stream tests send: index 7 of term 2, voters a and b. */
export const STREAM_META = { index: 7, term: 2, membership: { voters: ["a", "b"], learners: [] } };

/** The chunk that offers a stream of {@linkcode STREAM_META} from a to b. */
export const FIRST_CHUNK: SnapshotMessage = {
  type: "snapshot",
  from: "a",
  to: "b",
  term: 2,
  meta: STREAM_META,
  offset: 0,
  size: 0,
  chunk: new Uint8Array(),
};

/** A follower's side of a stream: its receiver, and what it wrote into its store (checked as it goes). */
export class StreamFollower {
  receiver = new SnapshotReceiver({ streamed: true });
  written: number[] = [];
  installed: number[] | undefined;

  /** Answers `m` as the core does, once the chunks it took are written. */
  receive(m: SnapshotMessage): Message {
    const base = { type: "snapshotResp", from: "b", to: "a", term: 2 } as const;
    if (this.installed !== undefined) return { ...base, index: 7, offset: 0, done: true };
    const { answer } = this.receiver.receive(m);
    for (const op of this.receiver.take()) this.#write(op);
    return { ...base, ...answer };
  }

  #write(op: StreamedChunk): void {
    if ("abandon" in op) return void (this.written = []);
    if (op.offset === 0) this.written = []; // a stream begins
    assert.equal(op.offset, this.written.length, "written in order, each byte once");
    this.written.push(...op.chunk);
    if (op.last) this.installed = this.written;
  }
}

/**
 * A toy service whose state (the commands applied, in order) counts as
 * durable: what a stored state machine is to Raft. It streams its state as
 * JSON cut into pages of `pageBytes`.
 */
export class StreamedList {
  items: string[] = [];
  applied = 0;
  /** Every item the node handed out, in order. */
  seen: Applied[] = [];
  opened = 0;
  closed = 0;

  constructor(readonly pageBytes = 10) {}

  consume(node: RaftNode): Promise<void> {
    return (async () => {
      for await (const item of node.applied()) {
        this.seen.push(item);
        if (item.type === "snapshot") {
          this.items = JSON.parse(new TextDecoder().decode(item.data));
        } else if (item.type === "command") this.items.push(item.command as string);
        this.applied = item.index;
      }
    })();
  }

  source(): SnapshotSource {
    return {
      open: () => {
        this.opened++;
        const bytes = new TextEncoder().encode(JSON.stringify(this.items));
        const pageBytes = this.pageBytes;
        return Promise.resolve({
          index: this.applied,
          async *pages() {
            for (let at = 0; at < bytes.length; at += pageBytes) {
              yield bytes.slice(at, at + pageBytes);
            }
          },
          close: () => void this.closed++,
        });
      },
    };
  }
}
