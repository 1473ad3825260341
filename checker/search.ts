/**
 * The linearizability search of Wing & Gong with Lowe's memoization, as in
 * porcupine: a depth-first search over call/return entries in a dancing-links
 * list, caching every (set of linearized operations, state) pair already
 * explored. Resumable, so partitions can be interleaved.
 *
 * The search runs on integers. Each distinct state gets a small id
 * (interning): by `===` when the model has no `equal`, else by the model's
 * `hash`, else by a structural fingerprint of the state (checked against
 * `equal` on the first states; when they disagree, the search starts over
 * without interning, comparing states with `equal` like porcupine). Model
 * steps are memoized per (state id, operation) while that pays (steps must
 * be pure functions, as porcupine also requires), and the cache is an
 * open-addressing table over typed arrays, so the inner loop allocates
 * nothing. A cache hit still means an `equal` state with the same operations
 * linearized (a fingerprint that tells apart states `equal` takes as the
 * same could only cost hits, never add one), so the verdicts, and the partial
 * linearizations, are those of porcupine's search.
 *
 * @module
 */
import type { Operation } from "./types.ts";

/** A deterministic model reduced to what the search needs. */
export interface SearchModel<S> {
  init(): S;
  step(state: S, input: unknown, output: unknown): S | undefined;
  equal(a: S, b: S): boolean;
  /** A hash consistent with `equal`, when the model has one. */
  hash?(state: S): number;
  /**
   * States are compared with `===` (no custom `equal`): they can then key a
   * Map directly, which hashes them natively.
   */
  identity: boolean;
}

/** Where a search stands after a slice of work ("full": its `maxStates` budget is spent). */
export type SearchStatus = "running" | "linearizable" | "illegal" | "full";

/**
 * The most cache entries (and interned states) one search ever holds,
 * whatever its budget: V8's Map and Set hold at most 2^24 entries, and the
 * interning maps have one entry per state, so the search stops well before.
 */
export const MAX_STATES_LIMIT = 1 << 23;

// How states get their ids.
/** `===` states: a Map from state to id. */
const IDENTITY = 0;
/** The model's `hash`, then `equal` within a bucket. */
const HASH = 1;
/** A structural fingerprint, then `equal` within a bucket. */
const FINGERPRINT = 2;
/** No ids: each new state gets a fresh one, and the cache compares states with `equal`. */
const NONE = 3;

/** Fingerprinted states checked against all earlier ones with `equal`. */
const GUARDED_STATES = 200;
/** Unequal states with one fingerprint, at most (more: the fingerprint does not see enough). */
const MAX_COLLISIONS = 32;
/** Memoized transitions kept at most. */
const MAX_MEMO = 1 << 21;
const GOLDEN = 0x9e3779b1 | 0;
/** Returned by a transition when the search must start over in NONE mode. */
const RESTART = -2;

function mix(a: number, b: number): number {
  let h = (Math.imul(a, GOLDEN) + b) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The search over one partition. */
export class Search<S> {
  readonly #model: SearchModel<S>;
  readonly #n: number;
  readonly #words: number;
  readonly #inputs: unknown[];
  readonly #outputs: unknown[];
  /** Call and return entries in time order (calls 0..n-1, returns n..2n-1). */
  readonly #order: Int32Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #head: number;
  /** The set of linearized operations, and its Zobrist hash. */
  readonly #bits: Int32Array;
  readonly #zobrist: Int32Array;
  #hash = 0;

  // States by id.
  #intern: number;
  #states: S[] = [];
  #stateCount = 0;
  #ids = new Map<S, number>();
  #byHash = new Map<number, number | number[]>();
  /** Primitive values met while fingerprinting, by id. */
  #prims = new Map<unknown, number>();

  // Transition memo: (state id, op) → next state id, or -1 when the step is impossible.
  /** Per slot: from state id (-1: empty), op, to state id. */
  #memo: Int32Array = new Int32Array(0);
  #memoMask = 0;
  #memoCount = 0;
  #memoHits = 0;
  #memoOn = false;

  // The cache: an open-addressing table of key indexes (-1: empty), and the keys in the order
  // they were added: hash, state id (or group), bits. With interned states the keys are
  // (bits, state id); in NONE mode they are bits, each group listing the states seen with them.
  #slots: Int32Array = new Int32Array(0);
  #slotMask = 0;
  #count = 0;
  #keyHash: Int32Array = new Int32Array(0);
  #keyState: Int32Array = new Int32Array(0);
  #keyBits: Int32Array = new Int32Array(0);
  #groups: number[][] = [];

  readonly #stackOps: Int32Array;
  readonly #stackStates: Int32Array;
  #depth = 0;
  #state = 0;
  #entry = -1;
  #status: SearchStatus = "running";
  /** Track the longest linearizable sequence each operation was part of. */
  readonly #partial: boolean;
  #longest: (number[] | undefined)[];
  /** The length of `#longest[op]` (0: none yet). */
  readonly #best: Int32Array;
  /** `#prefixMin[k]`: the least `#best` of the operations at stack positions 0..k. */
  readonly #prefixMin: Int32Array;
  #deepest = -1;
  #stuckOn = -1;
  /** Iterations run so far. */
  steps = 0;
  /** Cache entries plus fingerprinted primitives allowed (see {@linkcode MAX_STATES_LIMIT}). */
  readonly #maxStates: number;

  constructor(
    model: SearchModel<S>,
    operations: Operation[],
    options: { partial?: boolean; maxStates?: number } = {},
  ) {
    this.#maxStates = Math.min(options.maxStates ?? MAX_STATES_LIMIT, MAX_STATES_LIMIT);
    this.#model = model;
    const n = operations.length;
    this.#n = n;
    this.#words = Math.max(1, Math.ceil(n / 32));
    this.#inputs = new Array(n);
    this.#outputs = new Array(n);
    for (let i = 0; i < n; i++) {
      const op = operations[i];
      this.#inputs[i] = op.input;
      this.#outputs[i] = op.unknown ? undefined : op.output;
    }
    // By time; at equal times calls come first, so touching operations overlap.
    const times: number[] = new Array(2 * n);
    const order: number[] = new Array(2 * n);
    for (let i = 0; i < n; i++) {
      const op = operations[i];
      times[i] = op.call;
      times[n + i] = op.unknown ? Infinity : op.return;
      order[i] = i;
      order[n + i] = n + i;
    }
    order.sort((a, b) => times[a] - times[b] || (a < n ? 0 : 1) - (b < n ? 0 : 1) || a - b);
    // The fixed-size arrays share one buffer (small partitions are common, allocations count).
    this.#partial = options.partial ?? false;
    const words = this.#words;
    const partialSize = this.#partial ? n : 0;
    const buffer = new Int32Array(2 * n + 2 * (2 * n + 1) + words + 3 * n + 2 * partialSize);
    let at = 0;
    const view = (length: number) => buffer.subarray(at, at += length);
    this.#order = view(2 * n);
    this.#next = view(2 * n + 1);
    this.#prev = view(2 * n + 1);
    this.#bits = view(words);
    this.#zobrist = view(n);
    this.#stackOps = view(n);
    this.#stackStates = view(n);
    this.#best = view(partialSize);
    this.#prefixMin = view(partialSize);
    for (let e = 0; e < 2 * n; e++) this.#order[e] = order[e];
    this.#head = 2 * n;
    let seed = 0x9e3779b9;
    for (let i = 0; i < n; i++) {
      seed = (seed + 0x6d2b79f5) | 0;
      let z = seed;
      z = Math.imul(z ^ (z >>> 15), z | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      this.#zobrist[i] = z ^ (z >>> 14);
    }
    this.#longest = new Array(n);
    this.#intern = model.identity ? IDENTITY : model.hash ? HASH : FINGERPRINT;
    this.#start();
    if (n === 0) this.#status = "linearizable";
  }

  /** (Re)starts the search from nothing linearized, in the current interning mode. */
  #start(): void {
    const next = this.#next;
    const prev = this.#prev;
    let last = this.#head;
    for (const e of this.#order) {
      next[last] = e;
      prev[e] = last;
      last = e;
    }
    next[last] = -1;
    this.#bits.fill(0);
    this.#hash = 0;
    this.#depth = 0;
    this.#states = [];
    this.#stateCount = 0;
    this.#ids = new Map();
    this.#byHash = new Map();
    this.#prims = new Map();
    this.#memoOn = this.#intern !== NONE;
    this.#memoCount = this.#memoHits = 0;
    // Small partitions are common: start small.
    const size = this.#n > 64 ? 1024 : 256;
    this.#growMemo(this.#memoOn ? size : 0);
    this.#slots = new Int32Array(size).fill(-1);
    this.#slotMask = size - 1;
    this.#count = 0;
    this.#keyHash = new Int32Array(size / 2);
    this.#keyState = new Int32Array(size / 2);
    this.#keyBits = new Int32Array((size / 2) * this.#words);
    this.#groups = [];
    this.#longest = new Array(this.#n);
    this.#best.fill(0);
    this.#deepest = this.#stuckOn = -1;
    const init = this.#model.init();
    if (this.#intern === NONE) {
      this.#states[0] = init;
      this.#stateCount = 1;
      this.#state = 0;
    } else {
      this.#state = this.#internState(init);
    }
    this.#entry = next[this.#head];
  }

  /** The search's outcome so far. */
  get status(): SearchStatus {
    return this.#status;
  }

  /** A linearization (operation indexes in order), once linearizable. */
  linearization(): number[] {
    const out = new Array<number>(this.#depth);
    for (let k = 0; k < this.#depth; k++) out[k] = this.#stackOps[k];
    return out;
  }

  /** For each operation, the longest linearizable sequence containing it (with `partial`). */
  longest(): number[][] {
    return Array.from({ length: this.#n }, (_, i) => this.#longest[i] ?? []);
  }

  /**
   * What the search holds: cache entries (or states, where there are more),
   * plus the primitives met while fingerprinting.
   */
  get size(): number {
    return Math.max(this.#count, this.#stateCount) + this.#prims.size;
  }

  /** The operation that could not be placed at the deepest point reached. */
  get stuckOn(): number {
    return this.#stuckOn;
  }

  /** Runs at most `budget` iterations; returns the status after them. */
  run(budget: number): SearchStatus {
    if (this.#status !== "running") return this.#status;
    const n = this.#n;
    const next = this.#next;
    const prev = this.#prev;
    const bits = this.#bits;
    const zobrist = this.#zobrist;
    const head = this.#head;
    const stackOps = this.#stackOps;
    const stackStates = this.#stackStates;
    let interned = this.#intern !== NONE;
    const partial = this.#partial;
    let entry = this.#entry;
    let state = this.#state;
    let hash = this.#hash;
    let depth = this.#depth;
    let steps = 0;
    while (steps < budget) {
      steps++;
      if (entry < n) {
        const op = entry;
        const after = interned ? this.#transition(state, op) : this.#stepFresh(state, op);
        if (after >= 0) {
          const word = op >>> 5;
          const mask = 1 << (op & 31);
          bits[word] |= mask;
          const h = hash ^ zobrist[op];
          if (interned ? this.#remember(h, after) : this.#rememberByEqual(h, after)) {
            stackOps[depth] = op;
            stackStates[depth] = state;
            if (partial) this.#pushed(depth, op);
            depth++;
            state = after;
            hash = h;
            // Lift the call and its return out of the list.
            const ret = op + n;
            next[prev[op]] = next[op];
            prev[next[op]] = prev[op];
            next[prev[ret]] = next[ret];
            if (next[ret] !== -1) prev[next[ret]] = prev[ret];
            entry = next[head];
            if (entry === -1) {
              this.#status = "linearizable";
              break;
            }
            if (this.size >= this.#maxStates) {
              this.#status = "full";
              break;
            }
            continue;
          }
          bits[word] &= ~mask;
        } else if (after === RESTART) {
          // The fingerprint disagrees with `equal`: start over, comparing states with `equal`.
          this.#intern = NONE;
          this.#start();
          interned = false;
          entry = this.#entry;
          state = this.#state;
          hash = 0;
          depth = 0;
          continue;
        }
        entry = next[entry];
        continue;
      }
      // A return: its operation must come before anything later, and nothing fits. Backtrack.
      if (depth > this.#deepest) {
        this.#deepest = depth;
        this.#stuckOn = entry - n;
      }
      if (partial && depth > 0 && this.#prefixMin[depth - 1] < depth) this.#recordPartial(depth);
      if (depth === 0) {
        this.#status = "illegal";
        break;
      }
      depth--;
      const op = stackOps[depth];
      state = stackStates[depth];
      bits[op >>> 5] &= ~(1 << (op & 31));
      hash ^= zobrist[op];
      // Unlift, in reverse order: the return, then the call.
      const ret = op + n;
      next[prev[ret]] = ret;
      if (next[ret] !== -1) prev[next[ret]] = ret;
      next[prev[op]] = op;
      prev[next[op]] = op;
      entry = next[op];
    }
    this.#entry = entry;
    this.#state = state;
    this.#hash = hash;
    this.#depth = depth;
    this.steps += steps;
    return this.#status;
  }

  /** The id of a state, interning it; RESTART when the fingerprint proves inconsistent. */
  #internState(state: S): number {
    const model = this.#model;
    const states = this.#states;
    if (this.#intern === IDENTITY) {
      const id = this.#ids.get(state);
      if (id !== undefined) return id;
      this.#ids.set(state, this.#stateCount);
    } else {
      const h = this.#intern === HASH ? model.hash!(state) | 0 : this.#fingerprint(state, 0);
      const bucket = this.#byHash.get(h);
      if (bucket === undefined) this.#byHash.set(h, this.#stateCount);
      else if (typeof bucket === "number") {
        if (model.equal(states[bucket], state)) return bucket;
        this.#byHash.set(h, [bucket, this.#stateCount]);
      } else {
        for (const id of bucket) if (model.equal(states[id], state)) return id;
        // A fingerprint blind to what tells these states apart (private fields, say).
        if (this.#intern === FINGERPRINT && bucket.length >= MAX_COLLISIONS) return RESTART;
        bucket.push(this.#stateCount);
      }
      if (this.#intern === FINGERPRINT && this.#stateCount < GUARDED_STATES) {
        // A new fingerprint: no earlier state may be equal to this one.
        for (let id = 0; id < this.#stateCount; id++) {
          if (model.equal(states[id], state)) return RESTART;
        }
      }
    }
    states[this.#stateCount] = state;
    return this.#stateCount++;
  }

  /**
   * A hash of a state's structure: primitives by value (through a Map, which
   * hashes strings natively), arrays, sets, maps and objects by their
   * elements, in any order (so it also suits `equal`s that ignore order).
   */
  #fingerprint(value: unknown, depth: number): number {
    if (typeof value !== "object" || value === null) {
      if (typeof value === "function") return 0x2f;
      let id = this.#prims.get(value);
      if (id === undefined) {
        id = this.#prims.size + 1;
        this.#prims.set(value, id);
      }
      return mix(id, 0x51);
    }
    if (depth > 8) return 0x3d;
    let h = 0;
    let size = 0;
    if (value instanceof Map) {
      for (const [k, v] of value) {
        h = (h + mix(this.#fingerprint(k, depth + 1), this.#fingerprint(v, depth + 1))) | 0;
      }
      size = value.size;
    } else if (value instanceof Set || Array.isArray(value)) {
      for (const v of value) h = (h + mix(this.#fingerprint(v, depth + 1), 0x17)) | 0;
      size = value instanceof Set ? value.size : value.length;
    } else if (ArrayBuffer.isView(value)) {
      return mix(value.byteLength, 0x29);
    } else if (value instanceof Date) {
      return mix(this.#fingerprint(value.getTime(), depth + 1), 0x2b);
    } else {
      const record = value as Record<string, unknown>;
      for (const k of Object.keys(record)) {
        h = (h + mix(this.#fingerprint(k, depth + 1), this.#fingerprint(record[k], depth + 1))) | 0;
        size++;
      }
    }
    return mix(h, size);
  }

  /** The state id after `op` from state id `from`, or -1: the model step, memoized while that pays. */
  #transition(from: number, op: number): number {
    let slot = 0;
    const memo = this.#memo;
    if (this.#memoOn) {
      const mask = this.#memoMask;
      slot = (Math.imul(from, GOLDEN) ^ Math.imul(op + 1, 0x85ebca6b)) & mask;
      for (;;) {
        const s = memo[3 * slot];
        if (s === -1) break;
        if (s === from && memo[3 * slot + 1] === op) {
          this.#memoHits++;
          return memo[3 * slot + 2];
        }
        slot = (slot + 1) & mask;
      }
    }
    const current = this.#states[from];
    const after = this.#model.step(current, this.#inputs[op], this.#outputs[op]);
    const to = after === undefined ? -1 : after === current ? from : this.#internState(after);
    if (!this.#memoOn || to === RESTART) return to;
    if (++this.#memoCount >= MAX_MEMO || (this.#memoCount & 0xfff) === 0) {
      // Most lookups miss (most (state, operation) pairs come once): stop memoizing.
      if (this.#memoHits < this.#memoCount || this.#memoCount >= MAX_MEMO) {
        this.#memoOn = false;
        this.#growMemo(0);
        return to;
      }
    }
    memo[3 * slot] = from;
    memo[3 * slot + 1] = op;
    memo[3 * slot + 2] = to;
    if (this.#memoCount * 2 > this.#memoMask) this.#growMemo((this.#memoMask + 1) * 2);
    return to;
  }

  /** Resizes the memo to `size` slots (a power of two, or 0), keeping its entries. */
  #growMemo(size: number): void {
    const old = this.#memo;
    const memo = new Int32Array(3 * size).fill(-1);
    const mask = size - 1;
    this.#memo = memo;
    this.#memoMask = mask;
    if (size === 0) return;
    for (let i = 0; i < old.length; i += 3) {
      const from = old[i];
      if (from === -1) continue;
      let slot = (Math.imul(from, GOLDEN) ^ Math.imul(old[i + 1] + 1, 0x85ebca6b)) & mask;
      while (memo[3 * slot] !== -1) slot = (slot + 1) & mask;
      memo[3 * slot] = from;
      memo[3 * slot + 1] = old[i + 1];
      memo[3 * slot + 2] = old[i + 2];
    }
  }

  /** The model step in NONE mode: a tentative id for a new state. */
  #stepFresh(from: number, op: number): number {
    const current = this.#states[from];
    const after = this.#model.step(current, this.#inputs[op], this.#outputs[op]);
    if (after === undefined) return -1;
    if (after === current) return from;
    // Kept only if the cache takes it (see #rememberByEqual).
    this.#states[this.#stateCount] = after;
    return this.#stateCount;
  }

  /** Adds (bits, state id) to the cache; false when it was there already. */
  #remember(hash: number, state: number): boolean {
    const words = this.#words;
    const bits = this.#bits;
    const keyBits = this.#keyBits;
    const slots = this.#slots;
    const mask = this.#slotMask;
    const h = hash ^ Math.imul(state + 1, GOLDEN);
    let slot = h & mask;
    for (;;) {
      const e = slots[slot];
      if (e === -1) break;
      if (this.#keyHash[e] === h && this.#keyState[e] === state) {
        let i = 0;
        const base = e * words;
        while (i < words && keyBits[base + i] === bits[i]) i++;
        if (i === words) return false;
      }
      slot = (slot + 1) & mask;
    }
    slots[slot] = this.#newKey(h, state);
    if (this.#count * 2 > mask) this.#rehash();
    return true;
  }

  /** The same in NONE mode: keyed by bits, then a scan of the group with `equal`. */
  #rememberByEqual(hash: number, state: number): boolean {
    const words = this.#words;
    const bits = this.#bits;
    const keyBits = this.#keyBits;
    const slots = this.#slots;
    const mask = this.#slotMask;
    let slot = hash & mask;
    for (;;) {
      const e = slots[slot];
      if (e === -1) break;
      if (this.#keyHash[e] === hash) {
        let i = 0;
        const base = e * words;
        while (i < words && keyBits[base + i] === bits[i]) i++;
        if (i === words) {
          const group = this.#groups[this.#keyState[e]];
          const states = this.#states;
          const s = states[state];
          for (let k = 0; k < group.length; k++) {
            const other = group[k];
            if (other === state || this.#model.equal(states[other], s)) return false;
          }
          group.push(state);
          if (state === this.#stateCount) this.#stateCount++;
          return true;
        }
      }
      slot = (slot + 1) & mask;
    }
    slots[slot] = this.#newKey(hash, this.#groups.push([state]) - 1);
    if (state === this.#stateCount) this.#stateCount++;
    if (this.#count * 2 > mask) this.#rehash();
    return true;
  }

  /** A new key (hash, state id or group, the current bits); returns its index. */
  #newKey(h: number, state: number): number {
    const e = this.#count++;
    if (e === this.#keyHash.length) {
      const grow = (a: Int32Array): Int32Array => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#keyHash = grow(this.#keyHash);
      this.#keyState = grow(this.#keyState);
      this.#keyBits = grow(this.#keyBits);
    }
    this.#keyHash[e] = h;
    this.#keyState[e] = state;
    this.#keyBits.set(this.#bits, e * this.#words);
    return e;
  }

  /** Doubles the slots. */
  #rehash(): void {
    const size = this.#slots.length * 2;
    const slots = new Int32Array(size).fill(-1);
    const mask = size - 1;
    for (let e = 0; e < this.#count; e++) {
      let slot = this.#keyHash[e] & mask;
      while (slots[slot] !== -1) slot = (slot + 1) & mask;
      slots[slot] = e;
    }
    this.#slots = slots;
    this.#slotMask = mask;
  }

  /** Keeps `#prefixMin` up to date when `op` is pushed at stack position `k`. */
  #pushed(k: number, op: number): void {
    const best = this.#best[op];
    const before = k === 0 ? best : this.#prefixMin[k - 1];
    this.#prefixMin[k] = best < before ? best : before;
  }

  /**
   * Some operation on the stack (of `depth`) was never part of a sequence
   * this long: record the stack as its longest one, as porcupine does at
   * every backtrack (the prefix minimum spares the loop when none would gain).
   */
  #recordPartial(depth: number): void {
    const seq = new Array<number>(depth);
    let min = Infinity;
    for (let k = 0; k < depth; k++) {
      const op = this.#stackOps[k];
      seq[k] = op;
      if (this.#best[op] < depth) {
        this.#best[op] = depth;
        this.#longest[op] = seq;
      }
      min = Math.min(min, this.#best[op]);
      this.#prefixMin[k] = min;
    }
  }
}
