/**
 * Invariants, checked always, not only in tests: a broken invariant means the
 * node's state can no longer be trusted, so it stops rather than going on.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import { defaultCodec } from "../net/codec.ts";
import type { Entry, NodeId, SnapshotMeta } from "./types.ts";

/**
 * A Raft safety invariant was violated: a bug, or storage that lost or
 * altered acknowledged data. The node that throws it must not go on.
 *
 * @example
 * ```ts
 * import { RaftInvariantError } from "@distkit/distkit/raft";
 *
 * new RaftInvariantError("commit index went back from 7 to 5").message;
 * // "Raft invariant violated: commit index went back from 7 to 5 (this is a bug or corrupted storage; stop this node and report it)"
 * ```
 */
export class RaftInvariantError extends Error {
  /**
   * Creates the error.
   *
   * @param what The invariant that was broken.
   */
  constructor(what: string) {
    super(
      `Raft invariant violated: ${what} (this is a bug or corrupted storage; stop this node and report it)`,
    );
    this.name = "RaftInvariantError";
  }
}

/** Throws a {@linkcode RaftInvariantError} when `condition` is false. */
export function invariant(condition: boolean, what: string): asserts condition {
  if (!condition) throw new RaftInvariantError(what);
}

/**
 * What a core reports of its log as it goes, for checks that span a whole
 * run of many nodes (see {@linkcode AppliedLedger}). Every call is made
 * synchronously from inside the core; an observer that throws stops that
 * node.
 *
 * @example
 * ```ts
 * import type { RaftObserver } from "@distkit/distkit/raft";
 *
 * const leaders: string[] = [];
 * const observer: RaftObserver = { leader: (node, term) => leaders.push(`${node}@${term}`) };
 * ```
 */
export interface RaftObserver {
  /** `node` became the leader of `term`. */
  leader?(node: NodeId, term: number): void;
  /** `node` handed out these committed entries for applying, in order. */
  applied?(node: NodeId, entries: readonly Entry[]): void;
  /** `node` installed a snapshot from the leader: everything through `meta.index` is applied there. */
  installed?(node: NodeId, meta: SnapshotMeta): void;
  /**
   * `node` is about to remove these entries from its log: a new leader's
   * entries replace them, or an installed snapshot that did not match the
   * log discards them. (Compaction is not removal: those entries are applied.)
   */
  removed?(node: NodeId, entries: readonly Entry[]): void;
}

/** The first application of an index, as the ledger keeps it. */
interface LedgerEntry {
  term: number;
  /** The entry itself; undefined when it was known only from a snapshot's meta. */
  entry: Entry | undefined;
  /** The node that applied it first. */
  node: NodeId;
}

/**
 * A whole-run witness of Raft's state machine safety, for simulations where
 * every node's core shares it (pass it as the `observer` option): it keeps
 * the first (term, entry) applied at each index by any node, and checks
 * that every later apply, snapshot install and log truncation on every node
 * agrees with it. An entry once applied anywhere is never replaced at its
 * index on any node, and at most one node leads each term. The first
 * violation is thrown (from inside the core that caused it) and kept in
 * {@linkcode AppliedLedger.violation}.
 *
 * @example
 * ```ts
 * import { AppliedLedger } from "@distkit/distkit/raft";
 * import assert from "node:assert/strict";
 *
 * const ledger = new AppliedLedger();
 * ledger.applied("a", [{ index: 1, term: 1, kind: "command", command: "x" }]);
 * ledger.removed("b", [{ index: 1, term: 2, kind: "command", command: "y" }]); // never applied: fine
 * assert.throws(() => ledger.removed("c", [{ index: 1, term: 1, kind: "command", command: "x" }]));
 * assert.ok(ledger.violation);
 * ```
 */
export class AppliedLedger implements RaftObserver {
  readonly #applied = new Map<number, LedgerEntry>();
  readonly #leaders = new Map<number, NodeId>();
  #violation: RaftInvariantError | undefined;

  /** The first violation seen, if any. */
  get violation(): RaftInvariantError | undefined {
    return this.#violation;
  }

  /** Snapshots installed from a leader, on any node, over the run. */
  installs = 0;

  /** How many indexes have been applied somewhere. */
  get size(): number {
    return this.#applied.size;
  }

  /** Throws the first violation seen, if any. */
  check(): void {
    if (this.#violation) throw this.#violation;
  }

  /** One leader per term over the whole run (a node cannot lead a term twice either: its vote is durable). */
  leader(node: NodeId, term: number): void {
    const known = this.#leaders.get(term);
    if (known !== undefined) {
      this.#fail(`${node} became leader of term ${term}, which ${known} led already`);
    }
    this.#leaders.set(term, node);
  }

  /** Every apply agrees with the first apply at its index. */
  applied(node: NodeId, entries: readonly Entry[]): void {
    for (const e of entries) {
      const first = this.#applied.get(e.index);
      if (first === undefined) {
        this.#applied.set(e.index, { term: e.term, entry: e, node });
        continue;
      }
      if (first.term !== e.term || (first.entry !== undefined && !sameEntry(first.entry, e))) {
        this.#fail(
          `${node} applied ${describe(e)} at index ${e.index}, but ${first.node} applied ` +
            `${first.entry ? describe(first.entry) : `term ${first.term}`} there first`,
        );
      }
      first.entry ??= e;
    }
  }

  /** A snapshot's last entry agrees with what was applied at its index. */
  installed(node: NodeId, meta: SnapshotMeta): void {
    this.installs++;
    const first = this.#applied.get(meta.index);
    if (first === undefined) {
      this.#applied.set(meta.index, { term: meta.term, entry: undefined, node });
    } else if (first.term !== meta.term) {
      this.#fail(
        `${node} installed a snapshot through index ${meta.index} of term ${meta.term}, ` +
          `but ${first.node} applied an entry of term ${first.term} there`,
      );
    }
  }

  /** No applied entry is ever removed from any node's log. */
  removed(node: NodeId, entries: readonly Entry[]): void {
    for (const e of entries) {
      const first = this.#applied.get(e.index);
      if (first !== undefined && first.term === e.term) {
        this.#fail(
          `${describe(e)} at index ${e.index}, applied by ${first.node}, ` +
            `is being removed from the log of ${node}`,
        );
      }
    }
  }

  #fail(what: string): never {
    const err = new RaftInvariantError(`whole run: ${what}`);
    this.#violation ??= err;
    throw err;
  }
}

function describe(e: Entry): string {
  const what = e.kind === "command"
    ? `command ${JSON.stringify(e.command) ?? String(e.command)}`
    : e.kind === "membership"
    ? `membership ${JSON.stringify(e.membership)}`
    : "no-op";
  return `the entry of term ${e.term} (${what})`;
}

function sameEntry(a: Entry, b: Entry): boolean {
  return a.term === b.term && sameValue(payload(a), payload(b));
}

/** What an entry carries, with its kind, for comparing entries of any kind. */
function payload(e: Entry): unknown {
  switch (e.kind) {
    case "command":
      return ["command", e.command];
    case "noop":
      return ["noop"];
    case "membership":
      return ["membership", e.membership];
  }
}

/** Equal as the wire sees them: a proposer's `undefined` arrives elsewhere as `null`. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  try {
    const x = defaultCodec.encode(a);
    const y = defaultCodec.encode(b);
    return x.length === y.length && x.every((byte, i) => byte === y[i]);
  } catch {
    return isDeepStrictEqual(a, b); // not encodable (a pure core's test commands): compare as is
  }
}
