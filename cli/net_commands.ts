/**
 * The `distkit net` commands: serve a health/echo service over TCP, call any
 * method on any distkit server, and run a simulated workload.
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import type { Clock } from "../net/clock.ts";
import { defaultClock } from "../net/env.ts";
import { delay } from "../net/async.ts";
import {
  ClientDeadline,
  durationMs,
  EXIT,
  EXIT_HELP,
  exitCodeOf,
  type FlagSpec,
  parseFlags,
  UsageProblem,
} from "./util.ts";
import { RpcError } from "../net/errors.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { simulate } from "../net/sim/simulate.ts";
import { serveTcp, TcpClient } from "../net/tcp.ts";
import { SUMMARIES } from "./summaries.ts";

/** The shape `cli.ts` expects of a module's commands (kept structural: no import cycle). */
interface NetCommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

function parse(args: string[], options: ParseArgsConfig["options"]): Parsed {
  return parseFlags(args, options as FlagSpec);
}

function integer(text: string | boolean | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageProblem(`--${name} must be a non-negative integer, got "${text}"`);
  }
  return n;
}

/** Wraps a command body: usage errors exit 2, RPC failures 3 (4 when refused), with a clear message. */
function command(
  summary: string,
  usage: string,
  body: (args: string[]) => Promise<number>,
): NetCommand {
  return {
    summary,
    usage,
    run: async (args) => {
      try {
        return await body(args);
      } catch (err) {
        if (err instanceof UsageProblem) {
          console.error(`distkit net: ${err.message}\n\n${usage}`);
          return EXIT.usage;
        }
        if (err instanceof RpcError) {
          console.error(`distkit net: ${err.name} (${err.code}): ${err.message}`);
          return exitCodeOf(err);
        }
        console.error(`distkit net: ${(err as Error).message}`);
        return EXIT.noAnswer;
      }
    },
  };
}

/** The services `distkit net serve` hosts, timed on `clock` (the simulation's, in one). */
export function demoServices(clock: Clock = defaultClock("demoServices")): RpcServer {
  const server = new RpcServer();
  const started = clock.now();
  server.addService("Health", {
    Ping: () => "pong",
    Uptime: () => Math.round(clock.now() - started),
  });
  server.addService("Echo", { Echo: (args: unknown) => args });
  return server;
}

const serve = command(
  "serve Health.Ping, Health.Uptime and Echo.Echo over TCP until interrupted",
  `usage: distkit net serve [--host 127.0.0.1] [--port 7000]

Starts a distkit RPC server over TCP; stop it with Ctrl-C.

options:
  --host <name>   address to listen on (default 127.0.0.1)
  --port <n>      port to listen on; 0 picks a free one (default 7000)`,
  async (args) => {
    const { values } = parse(args, { host: { type: "string" }, port: { type: "string" } });
    const server = serveTcp(demoServices(), {
      hostname: values.host as string | undefined ?? "127.0.0.1",
      port: integer(values.port, "port", 7000),
    });
    console.log(`serving Health and Echo on ${server.address}; Ctrl-C stops`);
    const stopped = new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
    await stopped;
    await server.close();
    return 0;
  },
);

const call = command(
  "call a method on a distkit TCP server and print the reply as JSON",
  `usage: distkit net call <host:port> <Service.Method> [json-args] [--timeout 5s]

Example: distkit net call 127.0.0.1:7000 Echo.Echo '{"hello": [1, 2]}'

options:
  --timeout <duration>  give up after this long: 5s, 500ms (default 5s)

${EXIT_HELP}`,
  async (args) => {
    const { values, positionals } = parse(args, { timeout: { type: "string" } });
    const [address, method, json] = positionals;
    if (address === undefined || method === undefined || positionals.length > 3) {
      throw new UsageProblem("expected <host:port> <Service.Method> [json-args]");
    }
    let callArgs: unknown = undefined;
    if (json !== undefined) {
      try {
        callArgs = JSON.parse(json);
      } catch (err) {
        throw new UsageProblem(`json-args is not valid JSON: ${(err as Error).message}`);
      }
    }
    const timeoutMs = durationMs(values.timeout, "--timeout") ?? 5000;
    const client = new TcpClient(address, { timeoutMs });
    const deadline = new ClientDeadline([address], timeoutMs);
    try {
      const reply = await client.call(method, callArgs, { signal: deadline.signal });
      console.log(JSON.stringify(reply, (_, v) => v instanceof Uint8Array ? [...v] : v, 2));
      return EXIT.ok;
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      // Said plainly when nothing listens there; otherwise the failure's own words.
      const { code, message } = await deadline.explain(err);
      const prefix = message === err.message ? `${err.name} (${err.code}): ` : "";
      console.error(`distkit net call: ${prefix}${message}`);
      return code;
    } finally {
      await deadline.dispose();
      await client.close();
    }
  },
);

const simulateCommand = command(
  "run clients against servers on the simulated network in virtual time and print its counters",
  `usage: distkit net simulate [--seed n] [--servers 5] [--clients 20] [--seconds 60] [--unreliable] [--reordering]

Clients call random servers for the given span of virtual time; the same seed
prints the same figures, and a trace digest that tells runs apart.

options:
  --seed <n>       seed for every random choice (default: SEED or random)
  --servers <n>    number of servers (default 5)
  --clients <n>    number of concurrent clients (default 20)
  --seconds <n>    virtual seconds to run (default 60)
  --unreliable     drop 10 % of requests and replies, delay requests 0-26 ms
  --reordering     delay 2/3 of replies by 200-2200 ms`,
  async (args) => {
    const { values } = parse(args, {
      seed: { type: "string" },
      servers: { type: "string" },
      clients: { type: "string" },
      seconds: { type: "string" },
      unreliable: { type: "boolean" },
      reordering: { type: "boolean" },
    });
    const report = await simulatedWorkload({
      seed: values.seed === undefined ? undefined : integer(values.seed, "seed", 0),
      servers: Math.max(1, integer(values.servers, "servers", 5)),
      clients: Math.max(1, integer(values.clients, "clients", 20)),
      seconds: integer(values.seconds, "seconds", 60),
      unreliable: values.unreliable === true,
      reordering: values.reordering === true,
    });
    for (const [key, value] of Object.entries(report)) console.log(`${key.padEnd(16)} ${value}`);
    return 0;
  },
);

/** What {@linkcode simulatedWorkload} reports. */
export interface WorkloadReport {
  seed: number;
  virtualSeconds: number;
  wallMs: number;
  calls: number;
  succeeded: number;
  failed: number;
  bytes: number;
  traceDigest: string;
}

/** Runs clients against servers on a simulated network and reports its counters. */
export async function simulatedWorkload(options: {
  seed?: number;
  servers: number;
  clients: number;
  seconds: number;
  unreliable: boolean;
  reordering: boolean;
}): Promise<WorkloadReport> {
  const wall = performance.now();
  return await simulate(async ({ seed, clock, random, net }) => {
    net.setReliable(!options.unreliable);
    net.setLongReordering(options.reordering);
    const names = Array.from({ length: options.servers }, (_, i) => `server-${i}`);
    for (const name of names) net.addServer(name, demoServices(clock));
    let succeeded = 0;
    let failed = 0;
    const end = options.seconds * 1000;
    // Fold the trace into the digest as it grows: kept whole, a long run's
    // trace would hold millions of events (about 250 MB per 10 virtual minutes).
    const traceDigest = new TraceDigest();
    const drain = () => {
      for (const e of net.trace) traceDigest.add(`${e.at}${e.kind}${e.end}${e.method}`);
      net.trace.length = 0;
    };
    await Promise.all(Array.from({ length: options.clients }, async (_, c) => {
      const transport = net.transportFor(`client-${c}`);
      const ends = names.map((name) => transport.connect(name));
      while (clock.now() < end) {
        await delay(random.int(100), { clock });
        try {
          await random.pick(ends).call("Echo.Echo", { from: c, at: clock.now() }, {
            timeoutMs: 3000,
          });
          succeeded++;
        } catch {
          failed++;
        }
        if (net.trace.length >= 10_000) drain();
      }
    }));
    drain();
    return {
      seed,
      virtualSeconds: clock.now() / 1000,
      wallMs: Math.round(performance.now() - wall),
      calls: net.totalCalls,
      succeeded,
      failed,
      bytes: net.totalBytes,
      traceDigest: traceDigest.hex(),
    };
  }, { seed: options.seed, trace: true });
}

/**
 * FNV-1a, 32 bits, twice with different offsets, over the lines joined by
 * "\n", fed one line at a time: a synchronous digest (a real async op such as
 * crypto.subtle would stall virtual time).
 */
class TraceDigest {
  #a = 0x811c9dc5;
  #b = 0x01000193 ^ 0x5bd1e995;
  #first = true;

  add(line: string): void {
    if (!this.#first) this.#update("\n");
    this.#first = false;
    this.#update(line);
  }

  #update(text: string): void {
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
    }
    this.#a = a;
    this.#b = b;
  }

  hex(): string {
    return [this.#a, this.#b].map((x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
  }
}

/** The `distkit net` command group. */
export const netCommands: { summary: string; commands: Record<string, NetCommand> } = {
  summary: SUMMARIES.net,
  commands: { serve, call, simulate: simulateCommand },
};
