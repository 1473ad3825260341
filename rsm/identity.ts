/**
 * Data folder identity: a node that lost its state must not vote as if it
 * had it.
 *
 * A data folder gets an identity when it is created: a random incarnation
 * id, recorded in `node.json` with the node id and the cluster id. A node
 * whose folder is deleted and recreated (or replaced by another) comes back
 * with a new incarnation, and its peers must not take it for the node they
 * knew: its empty log would vote for any candidate, and the entries it had
 * acknowledged would count for nothing.
 *
 * How peers learn incarnations (the smallest sound design we found): in the
 * TCP handshake that opens every connection between nodes (`net/handshake.ts`),
 * each end says which node it is, its incarnation, and the incarnation it
 * knows the other end by. Each node records a peer's incarnation in its own
 * `node.json` (written atomically and fsynced) the first time it hears from
 * it, before the connection carries any call; from then on it refuses a
 * connection from or to that node id under another incarnation, with a log
 * line saying which node, which incarnation it expected and what to do. The
 * node that is not the one its peers know learns it from them (they name the
 * incarnation they know it by) and stops: it never votes or acknowledges.
 * As no Raft message crosses a connection before its handshake, a replaced
 * node and the peers that knew it never exchange one.
 *
 * A node also asks every peer, every second, for the incarnations it knows
 * (`Identity.Members`, over the same connections): so two nodes that were up
 * at the same time know each other even if Raft never made them talk (a
 * follower only ever hears from the leader), a node learns the members it
 * never met from those that did, and a peer that knew a node's old folder
 * dials the new one within a second, so the new one learns it and stops.
 *
 * Limits: a peer that had never heard of a node before the node lost its
 * folder takes the new incarnation as the first (trust on first use); the
 * node ids are the positions of the `--peers` list. "Add it back as a new
 * member" is `distkit kv member remove` then `add` (`members.ts`): each node,
 * as it applies the membership entry that drops the node, retires the
 * incarnation it knew ({@linkcode IdentityBook.applied}), so the node's new
 * folder is accepted on first contact and the old one never again. The
 * retirements travel with `Identity.Members`: a node that never applied the
 * removal (it was away, or a snapshot carried it past the removal and the
 * re-add) learns it from a peer that did, instead of refusing the new folder
 * for good. A folder made to join (`--join`) that a peer still knows under a
 * predecessor's incarnation is refused by that peer until it applies or
 * hears of the removal, but does not stop: only a founding folder that its
 * peers know under another incarnation has certainly lost its state.
 *
 * The decisions themselves are {@linkcode IdentityBook}'s (no I/O), which the
 * randomized KV simulation runs for every simulated folder.
 *
 * @module
 */
import { RefusedError } from "../net/errors.ts";
import {
  type AppliedOptions,
  type FolderRecord,
  IdentityBook,
  type IdentityConflictError,
  type IdentityGossip,
  type StartMode,
} from "./identity_book.ts";
import type { CallContext, RpcServer } from "../net/rpc_server.ts";
import type { MemberHello, MemberOptions } from "../net/tcp.ts";
import type { Transport } from "../net/transport.ts";
import { writeFileDurably } from "../raft/high_water_mark.ts";
import { StorageLossError } from "../store/storage_errors.ts";
import { folderLogKind } from "../raft/segment_choice.ts";

/**
 * Options of {@linkcode NodeIdentity.open}.
 *
 * @example
 * ```ts
 * import type { NodeIdentityOptions } from "@distkit/distkit/rsm";
 *
 * const options: NodeIdentityOptions = { id: "1", members: ["0", "1", "2"], mode: "join" };
 * ```
 */
export interface NodeIdentityOptions {
  /** This node's id. */
  id: string;
  /** Every member's node id (this one's included). */
  members: string[];
  /** The cluster id. Default `""`. */
  cluster?: string;
  /** How to start an empty folder. Default `"bootstrap"`. */
  mode?: StartMode;
  /** Where refusals are reported. Default: nowhere. */
  log?: (line: string) => void;
  /** Called once when this node learns it is not the one its peers know. */
  onConflict?: (error: IdentityConflictError) => void;
  /**
   * Called when the incarnation this node knew `node` by is retired (made
   * durable first): close the connections it made, so its next one is
   * checked again.
   */
  onRetired?: (node: string) => void;
}

/**
 * A node's identity (its folder's `node.json`) and what it knows of its
 * peers'; the handshake's {@linkcode MemberOptions} for the node's server
 * and its peer clients. The decisions are {@linkcode IdentityBook}'s; this
 * class makes each change durable before the answer that rests on it.
 *
 * @example
 * ```ts
 * import { NodeIdentity } from "@distkit/distkit/rsm";
 *
 * const dir = await Deno.makeTempDir();
 * const identity = await NodeIdentity.open(dir, { id: "0", members: ["0", "1", "2"] });
 * identity.node; // "0"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class NodeIdentity implements MemberOptions {
  /** This node's id. */
  readonly node: string;
  /** Its folder's incarnation. */
  readonly incarnation: string;
  /** Whether `open` created the folder's identity (the folder was empty). */
  readonly created: boolean;
  readonly #dir: string;
  readonly #book: IdentityBook;
  readonly #onConflict: ((error: IdentityConflictError) => void) | undefined;
  readonly #onRetired: ((node: string) => void) | undefined;
  #reported = false;
  /** Writes of node.json, one at a time, each of the record as it is when the write starts. */
  #writing: Promise<unknown> = Promise.resolve();

  private constructor(
    dir: string,
    record: FolderRecord,
    created: boolean,
    options: NodeIdentityOptions,
  ) {
    this.#dir = dir;
    this.#book = new IdentityBook(record, { members: options.members, dir, log: options.log });
    this.node = record.id;
    this.incarnation = record.incarnation;
    this.created = created;
    this.#onConflict = options.onConflict;
    this.#onRetired = options.onRetired;
  }

  /**
   * Reads the identity of the folder `dir` (`node.json`), or creates it (a
   * fresh incarnation) when the folder has none.
   *
   * @throws {Error} when the folder belongs to another node or cluster, or
   * `node.json` cannot be read.
   */
  static async open(dir: string, options: NodeIdentityOptions): Promise<NodeIdentity> {
    await Deno.mkdir(dir, { recursive: true });
    const cluster = options.cluster ?? "";
    const file = `${dir}/node.json`;
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(file);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (text === undefined) {
      // node.json is written before any store of the folder: beside one, it was lost (with the
      // incarnation the peers know). Made anew, the node would learn only from its peers' refusal
      // that it lost its state, and the message would say its folder was created empty.
      const log = await folderLogKind(dir);
      if (log !== undefined) {
        throw new StorageLossError(
          file,
          `the folder's identity record is gone, though its Raft log (${
            log === "kv" ? "raft.kv" : "raft.log"
          }) is there`,
        );
      }
      const mode = options.mode ?? "bootstrap";
      const record: FolderRecord = {
        id: options.id,
        cluster,
        incarnation: crypto.randomUUID(),
        created: mode,
        members: {},
        ...(mode === "join" ? { waitsForBinding: true } : {}),
        // A founding member starts from the founding membership: every node of the list.
        ...(mode === "bootstrap" ? { applied: { index: 0, members: [...options.members] } } : {}),
      };
      await writeRecord(dir, record);
      return new NodeIdentity(dir, record, true, options);
    }
    const record = parseRecord(file, text);
    if (record.id !== options.id) {
      throw new Error(
        `the data folder ${dir} belongs to node ${JSON.stringify(record.id)}, not ${options.id}; ` +
          `give every node its own folder`,
      );
    }
    if (record.cluster !== undefined && record.cluster !== cluster) {
      throw new Error(
        `the data folder ${dir} belongs to cluster ${JSON.stringify(record.cluster)}, not ` +
          `${JSON.stringify(cluster)}; start the node with the cluster id its folder was made for`,
      );
    }
    // A folder made before identities has no incarnation (nor, maybe, a cluster): it gets them
    // now. One made before `applied` was recorded starts from the founding membership, as a new
    // founding folder does, so that its next removal retires (a joining one starts from the
    // first membership it applies).
    const baseline = record.applied === undefined && record.created === "bootstrap";
    const upgraded = record.incarnation === "" || record.cluster === undefined || baseline;
    if (record.incarnation === "") record.incarnation = crypto.randomUUID();
    record.cluster ??= cluster;
    if (baseline) record.applied = { index: 0, members: [...options.members] };
    const full = record as FolderRecord;
    if (upgraded) await writeRecord(dir, full);
    return new NodeIdentity(dir, full, false, options);
  }

  /** How this folder was started when it was created. */
  get mode(): StartMode {
    return this.#book.record().created;
  }

  /**
   * Whether this folder votes and campaigns only once a membership binds it
   * (Raft's `joined` option): a joining folder made by this version.
   */
  get waitsForBinding(): boolean {
    const record = this.#book.record();
    return record.created === "join" && record.waitsForBinding === true;
  }

  /** The conflict that stopped this node, if one did. */
  get conflict(): IdentityConflictError | undefined {
    return this.#book.conflict;
  }

  /** The incarnation this node knows `node` by, if any (sent to that node in the handshake). */
  knownIncarnation(node: string): string | undefined {
    return this.#book.known(node);
  }

  /** The handshake's check (see {@linkcode IdentityBook.check}); what it recorded is durable first. */
  async check(peer: MemberHello | undefined, expected: string | undefined): Promise<
    string | undefined
  > {
    const refusal = this.#book.check(peer, expected);
    await this.#settle();
    return refusal;
  }

  /**
   * Records (durably) that `node` is known as `incarnation` from now on:
   * how a node is added back as a new member.
   */
  admit(node: string, incarnation: string): Promise<void> {
    this.#book.admit(node, incarnation);
    return this.#settle();
  }

  /**
   * The membership at log `index` (an entry as it is applied, or a
   * snapshot's, set by the entry at `setAt`) has these members: those the
   * last applied one had and this one drops are retired (see
   * {@linkcode IdentityBook.applied}).
   */
  applied(members: Iterable<string>, index: number, options?: AppliedOptions): Promise<void> {
    this.#book.applied(members, index, options);
    return this.#settle();
  }

  /** Retires the incarnation `node` is known by: the entry at `index` removed it. */
  retire(node: string, index: number): Promise<void> {
    this.#book.retire(node, index);
    return this.#settle();
  }

  /** Takes in what a peer knows (see {@linkcode IdentityBook.learn}). */
  learn(from: string, gossip: Pick<IdentityGossip, "members" | "retired">): Promise<void> {
    this.#book.learn(from, gossip);
    return this.#settle();
  }

  /** The log index of the latest removal known (see {@linkcode IdentityBook.removalFloor}). */
  removalFloor(): number {
    return this.#book.removalFloor();
  }

  /** What `Identity.Members` answers: this node, its incarnation, the incarnations and removals it knows. */
  describe(): IdentityGossip {
    return this.#book.describe();
  }

  /**
   * Writes the record if it changed, after the writes before; resolves when
   * every change made so far is on disk. Reports a conflict once.
   */
  #settle(): Promise<void> {
    const conflict = this.#book.conflict;
    if (conflict && !this.#reported) {
      this.#reported = true;
      this.#onConflict?.(conflict);
    }
    if (this.#book.take()) {
      const record = this.#book.record();
      this.#writing = this.#writing.catch(() => {}).then(() => writeRecord(this.#dir, record));
    }
    const retired = this.#book.takeRetired();
    const written = this.#writing.then(() => {});
    if (retired.length > 0 && this.#onRetired) {
      const tell = this.#onRetired;
      written.then(() => retired.forEach((node) => tell(node)), () => {});
    }
    return written;
  }
}

function parseRecord(file: string, text: string): Omit<FolderRecord, "cluster"> & {
  cluster: string | undefined;
} {
  let raw: Partial<FolderRecord>;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `${file} is not JSON (${(err as Error).message}); it records which node and ` +
        `incarnation the folder is: restore it, or treat the node as lost`,
    );
  }
  if (typeof raw?.id !== "string") throw new Error(`${file} names no node id ("id")`);
  const members = raw.members ?? {};
  for (const v of Object.values(members)) {
    if (typeof v !== "string") throw new Error(`${file}: "members" maps node ids to incarnations`);
  }
  return {
    id: raw.id,
    cluster: typeof raw.cluster === "string" ? raw.cluster : undefined,
    incarnation: typeof raw.incarnation === "string" ? raw.incarnation : "",
    created: raw.created === "join" ? "join" : "bootstrap",
    members,
    ...(raw.retired !== undefined && typeof raw.retired === "object"
      ? { retired: raw.retired }
      : {}),
    ...(raw.waitsForBinding === true ? { waitsForBinding: true } : {}),
    ...(raw.applied !== undefined && typeof raw.applied === "object" &&
        Number.isSafeInteger(raw.applied?.index) && Array.isArray(raw.applied?.members)
      ? { applied: raw.applied }
      : {}),
  };
}

/** Writes node.json atomically (see {@linkcode writeFileDurably}). */
function writeRecord(dir: string, record: FolderRecord): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n");
  return writeFileDurably(`${dir}/node.json`, bytes);
}

/**
 * Serves `Identity.Members` on `rpc` and asks every peer for it every
 * `intervalMs` (see the module doc). Returns the function that stops asking.
 *
 * @example
 * ```ts ignore
 * import { NodeIdentity, shareIdentities } from "@distkit/distkit/rsm";
 * import { RpcServer, TcpTransport } from "@distkit/distkit/net";
 *
 * const identity = await NodeIdentity.open("data/0", { id: "0", members: ["0", "1"] });
 * const transport = new TcpTransport({ peers: { "1": "127.0.0.1:7002" }, member: identity });
 * const stop = shareIdentities(identity, new RpcServer(), { transport, peers: ["1"] });
 * stop();
 * ```
 */
export function shareIdentities(
  identity: NodeIdentity,
  rpc: RpcServer,
  options: {
    transport: Transport;
    peers: string[];
    intervalMs?: number;
    log?: (line: string) => void;
    /** The address this node listens on, told to every peer it asks (so a node that moved is found). */
    address?: string;
    /**
     * Called when a peer, proven a member by its connection's handshake,
     * says it listens at `address` (which may differ from what this node
     * was started with: the peer moved).
     */
    onPeerAddress?: (node: string, address: string) => void;
  },
): () => void {
  rpc.addService("Identity", {
    Members: (args: unknown, context: CallContext) => {
      const address = (args as { address?: unknown } | null)?.address;
      if (context.member !== undefined && typeof address === "string") {
        options.onPeerAddress?.(context.member, address);
      }
      return identity.describe();
    },
  });
  /** The last refusal reported per peer, so a lasting one is reported once. */
  const reported = new Map<string, string>();
  const ends = options.peers.map((peer) => ({ peer, end: options.transport.connect(peer) }));
  let stopped = false;
  const ask = async () => {
    await Promise.all(ends.map(async ({ peer, end }) => {
      try {
        const args = options.address === undefined ? {} : { address: options.address };
        const answer = await end.call("Identity.Members", args, { timeoutMs: 1000 });
        const { members, retired } = (answer ?? {}) as { members?: unknown; retired?: unknown };
        if (!stopped && members !== null && typeof members === "object") {
          await identity.learn(peer, {
            members: members as Record<string, string>,
            retired: retired !== null && typeof retired === "object"
              ? retired as IdentityGossip["retired"]
              : undefined,
          });
        }
        reported.delete(peer);
      } catch (err) {
        // A peer that is down: nothing to say. One that refuses this node: say why, once.
        if (err instanceof RefusedError && reported.get(peer) !== err.message) {
          reported.set(peer, err.message);
          options.log?.(`node ${peer} refuses this node: ${err.message}`);
        }
      }
    }));
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const round = () => {
    ask().then(() => {
      if (!stopped) timer = setTimeout(round, options.intervalMs ?? 1000);
    });
  };
  round();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
