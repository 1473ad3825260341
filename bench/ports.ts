/**
 * Ports for the benchmark's clusters from a range the caller names
 * (`--ports 23000-23999`), so a benchmark can share a machine with other
 * work that owns other ports. Each port handed out is free when taken;
 * a cursor walks the range, so consecutive clusters use different ports
 * and a closing cluster's sockets never meet the next one's.
 *
 * @module
 */

const HOST = "127.0.0.1";

/** An inclusive range of TCP ports on 127.0.0.1 to take free ports from. */
export class PortRange {
  readonly low: number;
  readonly high: number;
  #next: number;

  constructor(low: number, high: number) {
    if (!(Number.isInteger(low) && Number.isInteger(high) && 1024 <= low && low <= high)) {
      throw new RangeError(`a port range is two integers LOW-HIGH with 1024 <= LOW <= HIGH`);
    }
    if (high > 65535) throw new RangeError(`ports end at 65535, got ${high}`);
    this.low = low;
    this.high = high;
    this.#next = low;
  }

  /** Parses `"LOW-HIGH"`; throws a RangeError saying what is wrong. */
  static parse(text: string): PortRange {
    const match = /^(\d+)-(\d+)$/.exec(text.trim());
    if (!match) throw new RangeError(`--ports takes LOW-HIGH (e.g. 23000-23999), got "${text}"`);
    return new PortRange(Number(match[1]), Number(match[2]));
  }

  /** How many ports the range holds. */
  get size(): number {
    return this.high - this.low + 1;
  }

  /**
   * `n` ports p, each free and with p + `offset` free too (for a node's
   * second listener), all inside the range; throws when the range has no
   * room for them.
   */
  take(n: number, offset = 0): number[] {
    const ports: number[] = [];
    const held: Deno.Listener[] = [];
    try {
      for (let tried = 0; ports.length < n && tried < this.size; tried++) {
        const port = this.#advance();
        const pair = offset === 0 ? [port] : [port, port + offset];
        if (pair.some((p) => p > this.high || ports.includes(p) || ports.includes(p - offset))) {
          continue;
        }
        const listeners = pair.map(tryListen);
        held.push(...listeners.filter((l): l is Deno.Listener => l !== undefined));
        if (listeners.every((l) => l !== undefined)) ports.push(port);
      }
    } finally {
      for (const l of held) l.close();
    }
    if (ports.length < n) {
      throw new RangeError(
        `ports ${this.low}-${this.high} have no room for ${n} free ports` +
          (offset ? ` each with a free port ${offset} above` : "") +
          "; widen the range or free some of it",
      );
    }
    return ports;
  }

  #advance(): number {
    const port = this.#next;
    this.#next = port >= this.high ? this.low : port + 1;
    return port;
  }
}

function tryListen(port: number): Deno.Listener | undefined {
  try {
    return Deno.listen({ hostname: HOST, port });
  } catch {
    return undefined;
  }
}
