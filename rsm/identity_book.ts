/**
 * The decisions of data folder identities (see `identity.ts`), without any
 * I/O: which peer to accept, what to record, what to retire, what to tell
 * peers. `NodeIdentity` keeps one in `node.json`; the randomized KV
 * simulation runs the same book for each simulated folder, so the code that
 * decides is the code that is simulated.
 *
 * What a book records, and why it stays sound:
 * - a peer's incarnation, on first contact (trust on first use), or as a peer
 *   that knows it reports it;
 * - retirements: the incarnations of a node that a committed membership
 *   entry removed. A node retires a peer when it applies a membership entry
 *   that drops a member of the membership it applied before (a spare never
 *   added is not retired by an unrelated change). Retirements travel with
 *   the gossip, with the log index of the removal: a node that never applies
 *   the removal itself (it was away, or a snapshot carried it past the
 *   removal and the re-add) learns it from a peer that did, and a node that
 *   learned it need not apply it again (a removal it replays later retires
 *   nothing twice). A retirement's index is always that of a committed
 *   removal; the incarnation it names is the one the retiring node knew at
 *   that point, which trust on first use can make wrong (a node that met a
 *   re-added folder before it applied the removal). A node that applied or
 *   heard of the same removal keeps its own view of it, so such a mistake
 *   reaches only nodes that knew nothing of that removal yet.
 * - What makes accepting a re-added node's new folder safe on a node that
 *   lags: such a node's log may still hold a membership in which that node
 *   id is the removed folder, so it must not campaign until its log reaches
 *   the removal ({@linkcode IdentityBook.removalFloor}, passed to Raft as
 *   `campaignAfter`). It may follow a leader and vote: a vote counts in the
 *   candidate's membership, not the voter's.
 *
 * @module
 */
import type { MemberHello } from "../net/tcp.ts";

/**
 * How a node's empty data folder is started: as a founding member of a new
 * cluster (`"bootstrap"`, the default of `kv serve`) or as a member joining
 * an existing one (`"join"`, `kv serve --join`).
 *
 * @example
 * ```ts
 * import type { StartMode } from "@distkit/distkit/rsm";
 *
 * const mode: StartMode = "join";
 * ```
 */
export type StartMode = "bootstrap" | "join";

/**
 * The incarnations of one node that were removed from the cluster, and the
 * log index of the latest removal known.
 *
 * @example
 * ```ts
 * import type { Retirement } from "@distkit/distkit/rsm";
 *
 * const retirement: Retirement = { index: 42, incarnations: ["9a1d7c3e"] };
 * ```
 */
export interface Retirement {
  /** The log index of the latest membership entry known to have removed the node. */
  index: number;
  /** Its incarnations removed so far: never accepted again. */
  incarnations: string[];
}

/**
 * What `node.json` holds.
 *
 * @example
 * ```ts
 * import type { FolderRecord } from "@distkit/distkit/rsm";
 *
 * const record: FolderRecord = {
 *   id: "1",
 *   cluster: "orders",
 *   incarnation: "0f6c2b1e-3a5d-4c4e-9a57-0d2c8f1e6b3a",
 *   created: "bootstrap",
 *   members: { "0": "9a1d7c3e-1b2f-4e5a-8c6d-7e8f9a0b1c2d" },
 * };
 * ```
 */
export interface FolderRecord {
  /** The node id the folder belongs to. */
  id: string;
  /** The cluster id it was created for. */
  cluster: string;
  /** The folder's incarnation: random, made when the folder was created. */
  incarnation: string;
  /** How the empty folder was started. */
  created: StartMode;
  /** The incarnation of each peer, as first heard from it. */
  members: Record<string, string>;
  /**
   * Incarnations of nodes removed from the cluster, never to be accepted
   * again (this node's own predecessors included: a peer that still knows
   * one has not applied its removal yet).
   */
  retired?: Record<string, Retirement>;
  /**
   * The latest membership this node applied and its log index (0: the
   * founding membership), so that a removal is told from a node never added.
   */
  applied?: { index: number; members: string[] };
  /**
   * A joining folder made by a version that binds folders into memberships
   * (`Membership.bindings`): it votes and campaigns only once a membership
   * binds it (Raft's `joined` option). A joining folder made before that
   * lacks it and votes as a voter, bound or not, so that an upgraded cluster
   * whose voters all joined keeps a quorum.
   */
  waitsForBinding?: boolean;
}

/**
 * What a node tells its peers (`Identity.Members`): itself, the
 * incarnations it knows, and the retirements it knows.
 *
 * @example
 * ```ts
 * import type { IdentityGossip } from "@distkit/distkit/rsm";
 *
 * const gossip: IdentityGossip = {
 *   node: "0",
 *   incarnation: "a",
 *   members: { "1": "b" },
 *   retired: { "2": { index: 9, incarnations: ["c"] } },
 * };
 * ```
 */
export interface IdentityGossip {
  /** The node that answers. */
  node: string;
  /** Its incarnation. */
  incarnation: string;
  /** The incarnation it knows each peer by. */
  members: Record<string, string>;
  /** The removals it knows of. */
  retired?: Record<string, Retirement>;
}

/**
 * This node's folder is not the one its peers know: they know this node id
 * under another incarnation, so its state was lost or the folder replaced.
 *
 * @example
 * ```ts
 * import { IdentityConflictError } from "@distkit/distkit/rsm";
 *
 * const err = new IdentityConflictError({
 *   node: "1", dir: "data/1", mine: "b", peer: "0", theirs: "a", created: "bootstrap",
 * });
 * err.message.includes("new member"); // true
 * ```
 */
export class IdentityConflictError extends Error {
  /**
   * Creates the error.
   *
   * @param facts Which node and folder, its incarnation, the peer and the incarnation it knows.
   */
  constructor(
    facts: {
      node: string;
      dir: string;
      mine: string;
      peer: string;
      theirs: string;
      created: StartMode;
    },
  ) {
    const { node, dir, mine, peer, theirs, created } = facts;
    const why = created === "bootstrap"
      ? `node ${node} had state in this cluster and lost it: its data folder ${dir} was ` +
        `created empty (incarnation ${mine}), as for a new cluster, but node ${peer} knows ` +
        `node ${node} as incarnation ${theirs}`
      : `node ${node} joined with a new data folder ${dir} (incarnation ${mine}), but node ` +
        `${peer} still knows node ${node} as incarnation ${theirs}: it was not added as a new member`;
    super(
      `${why}. It must not vote or acknowledge anything, so it stops. To bring it back, ` +
        `remove node ${node} from the cluster and add it back as a new member ` +
        `(README: "What survives what"); do not copy another node's folder into it`,
    );
    this.name = "IdentityConflictError";
  }
}

/**
 * Options of {@linkcode IdentityBook}.
 *
 * @example
 * ```ts
 * import type { IdentityBookOptions } from "@distkit/distkit/rsm";
 *
 * const options: IdentityBookOptions = { members: ["0", "1", "2"], dir: "data/1" };
 * ```
 */
export interface IdentityBookOptions {
  /** Every member's node id (this one's included). */
  members: Iterable<string>;
  /** The folder, as named in messages. */
  dir: string;
  /** Where retirements and refusals are reported. Default: nowhere. */
  log?: (line: string) => void;
}

/**
 * What else {@linkcode IdentityBook.applied} is told of a membership.
 *
 * @example
 * ```ts
 * import type { AppliedOptions } from "@distkit/distkit/rsm";
 *
 * const options: AppliedOptions = { setAt: 40, bindings: { "0": "9a1d7c3e" } };
 * ```
 */
export interface AppliedOptions {
  /** The log index of the entry that set it (a snapshot's `membershipIndex`). Default: its index. */
  setAt?: number;
  /** The folders it binds voters to (`Membership.bindings`). */
  bindings?: Record<string, string>;
}

/**
 * A folder's identity record and the rules that change it; every method is
 * synchronous and says whether the record changed, for the caller to make
 * durable before it acts on the answer.
 *
 * @example
 * ```ts
 * import { IdentityBook } from "@distkit/distkit/rsm";
 *
 * const book = new IdentityBook(
 *   { id: "0", cluster: "", incarnation: "a", created: "bootstrap", members: {} },
 *   { members: ["0", "1"], dir: "data/0" },
 * );
 * book.check({ node: "1", incarnation: "b", peerIncarnation: null }, "1"); // undefined: accepted
 * book.known("1"); // "b"
 * ```
 */
export class IdentityBook {
  readonly #record: FolderRecord;
  readonly #members: Set<string>;
  readonly #dir: string;
  readonly #log: (line: string) => void;
  #conflict: IdentityConflictError | undefined;
  /** Whether the record changed since {@linkcode IdentityBook.take} last said so. */
  #changed = false;
  /** Nodes whose known incarnation was retired since {@linkcode IdentityBook.takeRetired}. */
  #retiredNow = new Set<string>();

  /**
   * Opens the book of `record` (kept, and changed in place).
   *
   * @param record The folder's record.
   * @param options The cluster's node ids and the folder's name.
   */
  constructor(record: FolderRecord, options: IdentityBookOptions) {
    this.#record = record;
    this.#members = new Set(options.members);
    this.#dir = options.dir;
    this.#log = options.log ?? (() => {});
  }

  /** This node's id. */
  get node(): string {
    return this.#record.id;
  }

  /** This folder's incarnation. */
  get incarnation(): string {
    return this.#record.incarnation;
  }

  /** The conflict that stopped this node, if one did. */
  get conflict(): IdentityConflictError | undefined {
    return this.#conflict;
  }

  /** A copy of the record, as it should be on disk now. */
  record(): FolderRecord {
    return structuredClone(this.#record);
  }

  /** Whether the record changed since the last call (then it must be written). */
  take(): boolean {
    const changed = this.#changed;
    this.#changed = false;
    return changed;
  }

  /**
   * The nodes whose known incarnation was retired since the last call: the
   * connections they opened under it must be closed, so that their next one
   * is checked again.
   */
  takeRetired(): string[] {
    const nodes = [...this.#retiredNow];
    this.#retiredNow.clear();
    return nodes;
  }

  /** The incarnation this node knows `node` by, if any. */
  known(node: string): string | undefined {
    return this.#record.members[node];
  }

  /**
   * Checks the other end of a handshake (see `MemberOptions.check`):
   * returns why it is refused, or undefined. First contact records the
   * peer's incarnation.
   */
  check(peer: MemberHello | undefined, expected: string | undefined): string | undefined {
    if (this.#conflict) return `node ${this.node} has stopped: ${this.#conflict.message}`;
    if (peer === undefined) {
      return expected === undefined
        ? undefined // a client, not a node
        : `it did not say which node it is; check that a distkit node of the same version, ` +
          `of this cluster, runs at node ${expected}'s address`;
    }
    if (expected !== undefined && peer.node !== expected) {
      return `it is node ${JSON.stringify(peer.node)}, not node ${expected}; give every node ` +
        `and client the same --peers list, in the same order`;
    }
    if (peer.peerNode != null && peer.peerNode !== this.node) {
      // It dialled another member and reached this one: its --peers list is not this
      // cluster's (another order, another address). That says nothing about this folder.
      return `node ${peer.node} dialled node ${peer.peerNode} at this address, which is node ` +
        `${this.node}'s: node ${peer.node}'s --peers list does not match this cluster's; give ` +
        `every node and client the same --peers list, in the same order`;
    }
    if (peer.node === this.node || !this.#members.has(peer.node)) {
      return `node ${JSON.stringify(peer.node)} is not another member of this cluster ` +
        `(members: ${[...this.#members].join(", ")}); check its --id and --peers`;
    }
    if (peer.peerIncarnation !== null && peer.peerIncarnation !== this.incarnation) {
      // The incarnation of another member, from an older node that does not say whom it
      // dialled: the same mistake as above.
      const other = this.#memberKnownAs(peer.peerIncarnation);
      if (other !== undefined) {
        return `node ${peer.node} dialled node ${other} (incarnation ${peer.peerIncarnation}) ` +
          `at this address, which is node ${this.node}'s: node ${peer.node}'s --peers list ` +
          `does not match this cluster's; give every node and client the same --peers list, ` +
          `in the same order`;
      }
      const stale = this.#staleName(peer.peerIncarnation);
      if (stale) {
        return `node ${peer.node} still knows node ${this.node} as incarnation ` +
          `${peer.peerIncarnation}, ${stale}; it is refused until it applies that removal`;
      }
      this.#stop(peer.node, peer.peerIncarnation);
      return `node ${this.node} is not the one node ${peer.node} knows (incarnation ` +
        `${this.incarnation}, not ${peer.peerIncarnation}); it has stopped: ${
          this.#conflict!.message
        }`;
    }
    if (this.#isRetired(peer.node, peer.incarnation)) {
      const reason = `node ${peer.node} presents data folder incarnation ${peer.incarnation}, ` +
        `which was removed from the cluster; start it on a new, empty folder with --join and ` +
        `add it back (distkit kv member add ${peer.node})`;
      this.#log(`refused node ${peer.node}: ${reason}`);
      return reason;
    }
    const known = this.#record.members[peer.node];
    if (known === undefined) {
      this.#admit(peer.node, peer.incarnation);
      return undefined;
    }
    if (known === peer.incarnation) return undefined;
    const reason = `node ${peer.node} presents data folder incarnation ${peer.incarnation}, and ` +
      `node ${this.node} knows node ${peer.node} as incarnation ${known}: its data folder was ` +
      `lost or replaced, so it no longer holds what it acknowledged and must not vote; stop it, ` +
      `remove it from the cluster and add it back as a new member (README: "What survives what")`;
    this.#log(`refused node ${peer.node}: ${reason}`);
    return reason;
  }

  /** Records that `node` is known as `incarnation` from now on (an operator's decision). */
  admit(node: string, incarnation: string): void {
    if (this.#record.members[node] !== incarnation) this.#admit(node, incarnation);
  }

  /**
   * Takes in what peer `from` knows: the removals it knows first (so a
   * re-added node's new incarnation is not taken for the retired one), then
   * the incarnations it knows of nodes this one knows none for; what it
   * knows of this node must be this incarnation or a retired one.
   */
  learn(from: string, gossip: Pick<IdentityGossip, "members" | "retired">): void {
    for (const [node, retirement] of Object.entries(gossip.retired ?? {})) {
      if (this.#members.has(node) && isRetirement(retirement)) this.#hear(node, retirement);
    }
    for (const [node, incarnation] of Object.entries(gossip.members ?? {})) {
      if (typeof incarnation !== "string" || !this.#members.has(node)) continue;
      if (node === this.node) {
        if (incarnation !== this.incarnation && !this.#staleName(incarnation)) {
          this.#stop(from, incarnation);
        }
      } else if (
        this.#record.members[node] === undefined && !this.#isRetired(node, incarnation)
      ) {
        this.#admit(node, incarnation);
      }
    }
  }

  /**
   * This node applied `members` (voters and learners) as the membership at
   * log `index`: an entry's, or a snapshot's, which says in `setAt` the
   * index of the entry that set it (`SnapshotMeta.membershipIndex`). The
   * members of the membership it applied before that this one drops were
   * removed at `setAt`, and the incarnations it knew them by are retired. A
   * membership applied again (a restart replays the log) changes nothing;
   * the first one a folder applies (a joining folder's) only becomes the one
   * to compare with. The folders it binds (`options.bindings`) are taken in
   * (see {@linkcode IdentityBook.bound}).
   */
  applied(members: Iterable<string>, index: number, options: AppliedOptions = {}): void {
    const { setAt, bindings } = options;
    const before = this.#record.applied;
    if (before !== undefined && index <= before.index) return;
    const now = [...new Set(members)].sort();
    for (const node of before?.members ?? []) {
      if (now.includes(node)) continue;
      if (setAt === undefined) {
        // A snapshot that does not say where its membership was set: a removal heard of since
        // the membership applied before is taken for this one, for the incarnation known now
        // may be the one added back since (KV simulation seed 2212916457).
        const heard = this.#record.retired?.[node]?.index;
        if (heard !== undefined && before !== undefined && heard > before.index) continue;
      }
      this.retire(node, setAt ?? index);
    }
    this.#record.applied = { index, members: now };
    this.#changed = true;
    if (bindings !== undefined) this.#bind(bindings, setAt ?? index);
  }

  /**
   * A membership applied, set at log index `setAt`, binds these voters to
   * these folders (`Membership.bindings`, what Raft counts votes and
   * acknowledgements by): each is that node's folder from then on. A
   * retirement of a bound folder by a removal before `setAt` was a mistake
   * of trust on first use (a node that met the re-added folder before it
   * applied the removal retires the new folder with the old one, and the
   * gossip spreads it), so the binding undoes it; a folder known by first
   * contact gives way to the bound one. A removal after `setAt` stands.
   */
  #bind(bindings: Record<string, string>, setAt: number): void {
    for (const [node, incarnation] of Object.entries(bindings)) {
      if (node === this.node || !this.#members.has(node)) continue;
      const retirement = this.#record.retired?.[node];
      if (retirement?.incarnations.includes(incarnation)) {
        if (retirement.index > setAt) continue; // removed since it was bound
        const incarnations = retirement.incarnations.filter((i) => i !== incarnation);
        this.#record.retired = {
          ...this.#record.retired,
          [node]: { index: retirement.index, incarnations },
        };
        this.#changed = true;
      }
      const known = this.#record.members[node];
      if (known === incarnation) continue;
      if (known !== undefined) this.#retiredNow.add(node); // the other folder's connections close
      this.#admit(node, incarnation);
      this.#log(
        `node ${node} is incarnation ${incarnation}, as the membership set at log index ` +
          `${setAt} binds it${known === undefined ? "" : ` (not ${known})`}`,
      );
    }
  }

  /**
   * The membership entry at log `index` removed `node`: the incarnation this
   * node knows it by is retired (refused from now on), so that once the
   * operator adds it back as a new member, its new folder's incarnation is
   * accepted on first contact. A removal known already (applied, or heard
   * from a peer) retires nothing twice.
   */
  retire(node: string, index: number): void {
    if (node === this.node) return;
    const before = this.#record.retired?.[node];
    if (before !== undefined && before.index >= index) return;
    const known = this.#record.members[node];
    const incarnations = [...(before?.incarnations ?? [])];
    if (known !== undefined && !incarnations.includes(known)) incarnations.push(known);
    delete this.#record.members[node];
    this.#record.retired = { ...this.#record.retired, [node]: { index, incarnations } };
    this.#changed = true;
    if (known !== undefined) {
      this.#retiredNow.add(node);
      this.#log(`node ${node} left the cluster (log index ${index}): incarnation ${known} retired`);
    }
  }

  /**
   * The log index of the latest removal this node knows of (applied, or
   * heard from a peer; 0: none). A node whose log ends below it must not
   * campaign (`CoreOptions.campaignAfter`): its log may still hold a
   * membership in which a re-added node is its removed folder, and this
   * book accepts the new folder, so the new folder's vote would count in the
   * old one's place (KV simulation seed 201517461: a lagging node that had
   * heard of a removal won an election that way and overwrote a committed
   * entry).
   */
  removalFloor(): number {
    let floor = 0;
    for (const r of Object.values(this.#record.retired ?? {})) floor = Math.max(floor, r.index);
    return floor;
  }

  /** What `Identity.Members` answers. */
  describe(): IdentityGossip {
    return {
      node: this.node,
      incarnation: this.incarnation,
      members: { ...this.#record.members },
      retired: structuredClone(this.#record.retired ?? {}),
    };
  }

  /**
   * A removal of `node` heard from a peer. One this node knows already (it
   * applied it, or heard of it or of a later one) adds nothing: this node
   * retired what it knew by then, and a peer's view of the same removal
   * must not retire an incarnation this node met since. A node that never
   * applied the removal (it caught up by a snapshot past it) takes it in.
   */
  #hear(node: string, heard: Retirement): void {
    const before = this.#record.retired?.[node];
    if (before !== undefined && before.index >= heard.index) return;
    const incarnations = [...(before?.incarnations ?? [])];
    for (const incarnation of heard.incarnations) {
      if (!incarnations.includes(incarnation)) incarnations.push(incarnation);
    }
    const index = heard.index;
    this.#record.retired = { ...this.#record.retired, [node]: { index, incarnations } };
    const known = this.#record.members[node];
    if (known !== undefined && incarnations.includes(known)) {
      delete this.#record.members[node];
      this.#retiredNow.add(node);
      this.#log(
        `node ${node}'s incarnation ${known} was removed (log index ${heard.index}), ` +
          `as a peer reports: retired`,
      );
    }
    this.#changed = true;
  }

  /** The other member this node knows as `incarnation`, if any. */
  #memberKnownAs(incarnation: string): string | undefined {
    for (const [node, known] of Object.entries(this.#record.members)) {
      if (node !== this.node && known === incarnation) return node;
    }
    return undefined;
  }

  /**
   * Why a peer may know this node by `theirs` without this folder having
   * lost anything: `theirs` is a retired predecessor of this node, or this
   * folder was made to join (a peer that has not applied the removal of its
   * predecessor yet still knows that one). Undefined: `theirs` is a conflict.
   */
  #staleName(theirs: string): string | undefined {
    if (this.#isRetired(this.node, theirs)) return "a predecessor removed from the cluster";
    if (this.#record.created === "join") {
      return "maybe a predecessor whose removal it has not applied yet (this folder was made " +
        "to join as a new member; if this node was not removed and added back with " +
        "`distkit kv member remove` and `add`, its data folder was lost: remove it and add it back)";
    }
    return undefined;
  }

  #admit(node: string, incarnation: string): void {
    this.#record.members = { ...this.#record.members, [node]: incarnation };
    this.#changed = true;
  }

  #isRetired(node: string, incarnation: string): boolean {
    return this.#record.retired?.[node]?.incarnations.includes(incarnation) ?? false;
  }

  #stop(peer: string, theirs: string): void {
    if (this.#conflict) return;
    this.#conflict = new IdentityConflictError({
      node: this.node,
      dir: this.#dir,
      mine: this.incarnation,
      peer,
      theirs,
      created: this.#record.created,
    });
    this.#log(this.#conflict.message);
  }
}

function isRetirement(value: unknown): value is Retirement {
  const r = value as Retirement;
  return r !== null && typeof r === "object" && Number.isSafeInteger(r.index) &&
    Array.isArray(r.incarnations) && r.incarnations.every((i) => typeof i === "string");
}
