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
 * incarnation it knew ({@linkcode NodeIdentity.retire}), so the node's new
 * folder is accepted on first contact and the old one never again.
 *
 * @module
 */
import { RefusedError } from "../net/errors.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import type { MemberHello, MemberOptions } from "../net/tcp.ts";
import type { Transport } from "../net/transport.ts";
import { writeFileDurably } from "../raft/high_water_mark.ts";

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
   * Incarnations of peers that were removed from the cluster, never to be
   * accepted again, and the log index of the latest membership entry that
   * retired one (so a replayed entry retires nothing twice).
   */
  retired?: Record<string, { index: number; incarnations: string[] }>;
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
}

/**
 * A node's identity (its folder's `node.json`) and what it knows of its
 * peers'; the handshake's {@linkcode MemberOptions} for the node's server
 * and its peer clients.
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
  readonly #record: FolderRecord;
  readonly #members: Set<string>;
  readonly #log: (line: string) => void;
  readonly #onConflict: ((error: IdentityConflictError) => void) | undefined;
  #conflict: IdentityConflictError | undefined;
  /** Writes of node.json, one at a time. */
  #writing: Promise<unknown> = Promise.resolve();

  private constructor(
    dir: string,
    record: FolderRecord,
    created: boolean,
    options: NodeIdentityOptions,
  ) {
    this.#dir = dir;
    this.#record = record;
    this.node = record.id;
    this.incarnation = record.incarnation;
    this.created = created;
    this.#members = new Set(options.members);
    this.#log = options.log ?? (() => {});
    this.#onConflict = options.onConflict;
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
      const record: FolderRecord = {
        id: options.id,
        cluster,
        incarnation: crypto.randomUUID(),
        created: options.mode ?? "bootstrap",
        members: {},
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
    // A folder made before identities has no incarnation (nor, maybe, a cluster): it gets them now.
    const upgraded = record.incarnation === "" || record.cluster === undefined;
    if (record.incarnation === "") record.incarnation = crypto.randomUUID();
    record.cluster ??= cluster;
    const full = record as FolderRecord;
    if (upgraded) await writeRecord(dir, full);
    return new NodeIdentity(dir, full, false, options);
  }

  /** How this folder was started when it was created. */
  get mode(): StartMode {
    return this.#record.created;
  }

  /** The conflict that stopped this node, if one did. */
  get conflict(): IdentityConflictError | undefined {
    return this.#conflict;
  }

  knownIncarnation(node: string): string | undefined {
    return this.#record.members[node];
  }

  async check(peer: MemberHello | undefined, expected: string | undefined): Promise<
    string | undefined
  > {
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
    if (peer.node === this.node || !this.#members.has(peer.node)) {
      return `node ${JSON.stringify(peer.node)} is not another member of this cluster ` +
        `(members: ${[...this.#members].join(", ")}); check its --id and --peers`;
    }
    if (peer.peerIncarnation !== null && peer.peerIncarnation !== this.incarnation) {
      this.#stop(peer.node, peer.peerIncarnation);
      return `node ${this.node} is not the one node ${peer.node} knows (incarnation ` +
        `${this.incarnation}, not ${peer.peerIncarnation}); it has stopped: ${
          this.#conflict!.message
        }`;
    }
    const recorded = this.#record.members[peer.node];
    if (recorded === undefined && this.#isRetired(peer.node, peer.incarnation)) {
      const reason = `node ${peer.node} presents data folder incarnation ${peer.incarnation}, ` +
        `which was removed from the cluster; start it on a new, empty folder with --join and add ` +
        `it back (distkit kv member add ${peer.node})`;
      this.#log(`refused node ${peer.node}: ${reason}`);
      return reason;
    }
    // First contact records it; one recorded meanwhile (by gossip) is compared.
    const known = await this.#admitFirst(peer.node, peer.incarnation);
    if (known === peer.incarnation) return undefined;
    const reason = `node ${peer.node} presents data folder incarnation ${peer.incarnation}, and ` +
      `node ${this.node} knows node ${peer.node} as incarnation ${known}: its data folder was ` +
      `lost or replaced, so it no longer holds what it acknowledged and must not vote; stop it, ` +
      `remove it from the cluster and add it back as a new member (README: "What survives what")`;
    this.#log(`refused node ${peer.node}: ${reason}`);
    return reason;
  }

  /**
   * Records (durably) that `node` is known as `incarnation` from now on:
   * how a node is added back as a new member.
   */
  admit(node: string, incarnation: string): Promise<void> {
    const write = this.#writing.catch(() => {}).then(async () => {
      if (this.#record.members[node] === incarnation) return;
      const members = { ...this.#record.members, [node]: incarnation };
      await writeRecord(this.#dir, { ...this.#record, members });
      this.#record.members = members;
    });
    this.#writing = write;
    return write;
  }

  /**
   * Records `incarnation` for `node` unless one is recorded by the time the
   * write runs (writes run one at a time); resolves with the one recorded.
   */
  #admitFirst(node: string, incarnation: string): Promise<string> {
    const write = this.#writing.catch(() => {}).then(async () => {
      const known = this.#record.members[node];
      if (known !== undefined) return known;
      const members = { ...this.#record.members, [node]: incarnation };
      await writeRecord(this.#dir, { ...this.#record, members });
      this.#record.members = members;
      return incarnation;
    });
    this.#writing = write;
    return write;
  }

  /**
   * The membership entry (or snapshot) at log `index` no longer has `node`:
   * the incarnation this node knows it by is retired (refused from now on),
   * so that once the operator adds the node back as a new member, its new
   * folder's incarnation is accepted on first contact. Called as membership
   * entries are applied; an entry applied again (after a restart) retires
   * nothing twice.
   */
  retire(node: string, index: number): Promise<void> {
    const write = this.#writing.catch(() => {}).then(async () => {
      if (node === this.node) return;
      const before = this.#record.retired?.[node];
      if (before !== undefined && before.index >= index) return;
      const known = this.#record.members[node];
      const members = { ...this.#record.members };
      delete members[node];
      const incarnations = [...(before?.incarnations ?? [])];
      if (known !== undefined && !incarnations.includes(known)) incarnations.push(known);
      const retired = { ...this.#record.retired, [node]: { index, incarnations } };
      await writeRecord(this.#dir, { ...this.#record, members, retired });
      this.#record.members = members;
      this.#record.retired = retired;
      if (known !== undefined) {
        this.#log(
          `node ${node} left the cluster (log index ${index}): incarnation ${known} retired`,
        );
      }
    });
    this.#writing = write;
    return write;
  }

  #isRetired(node: string, incarnation: string): boolean {
    return this.#record.retired?.[node]?.incarnations.includes(incarnation) ?? false;
  }

  /**
   * Takes in what a peer knows: its own incarnation is checked by the
   * handshake; the others it knows are recorded when this node knows none
   * for them, and what it knows of this node must be this incarnation.
   */
  async learn(from: string, members: Record<string, string>): Promise<void> {
    for (const [node, incarnation] of Object.entries(members)) {
      if (typeof incarnation !== "string" || !this.#members.has(node)) continue;
      if (node === this.node) {
        if (incarnation !== this.incarnation) this.#stop(from, incarnation);
      } else if (
        this.#record.members[node] === undefined && !this.#isRetired(node, incarnation)
      ) {
        await this.#admitFirst(node, incarnation);
      }
    }
  }

  /** What `Identity.Members` answers: this node, its incarnation, and the incarnations it knows. */
  describe(): { node: string; incarnation: string; members: Record<string, string> } {
    return { node: this.node, incarnation: this.incarnation, members: { ...this.#record.members } };
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
    this.#onConflict?.(this.#conflict);
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
  },
): () => void {
  rpc.addService("Identity", { Members: () => identity.describe() });
  /** The last refusal reported per peer, so a lasting one is reported once. */
  const reported = new Map<string, string>();
  const ends = options.peers.map((peer) => ({ peer, end: options.transport.connect(peer) }));
  let stopped = false;
  const ask = async () => {
    await Promise.all(ends.map(async ({ peer, end }) => {
      try {
        const answer = await end.call("Identity.Members", {}, { timeoutMs: 1000 });
        const members = (answer as { members?: unknown })?.members;
        if (!stopped && members !== null && typeof members === "object") {
          await identity.learn(peer, members as Record<string, string>);
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
