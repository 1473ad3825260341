/**
 * `distkit raft` commands: run a Raft node over TCP with Deno KV storage,
 * serving a replicated log (`Log.Append`, `Log.Read`, `Log.Status`).
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { EXIT, parseFlags, UsageProblem } from "./util.ts";
import { ArgumentsError } from "../net/errors.ts";
import { consoleLogger } from "../net/logger.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpTransport } from "../net/tcp.ts";
import { DenoKvStorage } from "../raft/kv_storage.ts";
import { NotLeaderError } from "../raft/errors.ts";
import { RaftNode } from "../raft/node.ts";
import { SUMMARIES } from "./summaries.ts";

interface RaftCommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

/** The answer of `Log.Append`: the index the command committed at, or who to ask instead. */
export type AppendReply = { index: number } | { notLeader: true; leader: string | null };

/**
 * A replicated append-only log on a Raft node: the state machine of
 * `distkit raft serve`. Commands are applied in order, each once; a snapshot
 * every `snapshotEvery` entries keeps the Raft log short.
 */
export class ReplicatedLog {
  readonly node: RaftNode;
  /** Every applied command with its index, in order. */
  readonly entries: [number, unknown][] = [];
  readonly #snapshotEvery: number;
  readonly done: Promise<void>;

  constructor(node: RaftNode, snapshotEvery: number) {
    this.node = node;
    this.#snapshotEvery = snapshotEvery;
    this.done = this.#apply();
  }

  async #apply(): Promise<void> {
    for await (const item of this.node.applied()) {
      if (item.type === "snapshot") {
        const restored = JSON.parse(new TextDecoder().decode(item.data)) as [number, unknown][];
        this.entries.length = 0;
        this.entries.push(...restored);
        continue;
      }
      if (item.type === "internal") continue;
      const last = this.entries.at(-1)?.[0] ?? 0;
      if (item.index <= last) throw new Error(`index ${item.index} applied twice`);
      this.entries.push([item.index, item.command]);
      if (this.#snapshotEvery > 0 && this.entries.length % this.#snapshotEvery === 0) {
        const data = new TextEncoder().encode(JSON.stringify(this.entries));
        await this.node.snapshot(item.index, data).catch(() => {});
      }
    }
  }

  /** The RPC methods: `Append({command})`, `Read({from})`, `Status()`. */
  service(): object {
    return {
      Append: async (args: unknown): Promise<AppendReply> => {
        if (typeof args !== "object" || args === null || !("command" in args)) {
          throw new ArgumentsError("Append takes { command }");
        }
        try {
          const { index, term } = await this.node.propose((args as { command: unknown }).command);
          await this.node.waitApplied(index, term);
          return { index };
        } catch (err) {
          if (err instanceof NotLeaderError) return { notLeader: true, leader: err.leader };
          throw err;
        }
      },
      Read: (args: unknown) => {
        const from = typeof args === "object" && args !== null && "from" in args
          ? Number(args.from)
          : 0;
        return this.entries.filter(([index]) => index >= from);
      },
      Status: () => this.node.status(),
    };
  }
}

function addressOf(spec: string): { id: string; address: string } {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new UsageProblem(`--peer must look like id=host:port, got "${spec}"`);
  return { id: spec.slice(0, eq), address: spec.slice(eq + 1) };
}

const serve: RaftCommand = {
  summary: "run a Raft node over TCP with Deno KV storage, serving a replicated log",
  usage:
    `usage: distkit raft serve --id <id> --listen <host:port> --peer <id=host:port>... --data <file.kv>
                          [--tick-ms 50] [--snapshot-every 0]

Runs one member of a Raft cluster until interrupted. Every member lists all
members (itself included) with --peer. Clients call Log.Append({command}),
Log.Read({from}) and Log.Status() on --listen (see \`distkit net call\`).

options:
  --id <id>              this member's id
  --listen <host:port>   address to serve on
  --peer <id=host:port>  a member, repeated for every member
  --data <file.kv>       Deno KV file for this member's state (one process per file)
  --tick-ms <n>          Raft tick (default 50; heartbeats every 2, elections after 10-20)
  --snapshot-every <n>   snapshot the log every n entries (default 0: never)

exit status: 0 stopped by a signal, 2 usage error, 3 could not start`,
  async run(args) {
    let values;
    let peers: Record<string, string>;
    try {
      ({ values } = parseFlags(args, {
        id: { type: "string" },
        listen: { type: "string" },
        peer: { type: "string", multiple: true },
        data: { type: "string" },
        "tick-ms": { type: "string" },
        "snapshot-every": { type: "string" },
      }));
      const peerList = values.peer as unknown as string[] | undefined;
      if (
        typeof values.id !== "string" || typeof values.listen !== "string" ||
        !peerList?.length || typeof values.data !== "string"
      ) {
        throw new UsageProblem("--id, --listen, --peer and --data are required");
      }
      peers = Object.fromEntries(peerList.map(addressOf).map(({ id, address }) => [id, address]));
    } catch (err) {
      console.error(`distkit raft serve: ${(err as Error).message}\n\n${this.usage}`);
      return EXIT.usage;
    }
    const [id, listen, data] = [values.id, values.listen, values.data];
    const [hostname, port] = [
      listen.slice(0, listen.lastIndexOf(":")),
      Number(listen.slice(listen.lastIndexOf(":") + 1)),
    ];
    let storage;
    try {
      storage = await DenoKvStorage.open(data);
    } catch (err) {
      console.error(`distkit raft serve: ${(err as Error).message}`);
      return EXIT.noAnswer;
    }
    const server = new RpcServer();
    const transport = new TcpTransport({ peers, timeoutMs: 1000 });
    let node: RaftNode | undefined;
    let listener;
    let log: ReplicatedLog;
    try {
      node = await RaftNode.start({
        id,
        peers: Object.keys(peers),
        transport,
        server,
        storage,
        tickMs: Number(values["tick-ms"] ?? 50),
        logger: consoleLogger(),
      });
      log = new ReplicatedLog(node, Number(values["snapshot-every"] ?? 0));
      server.addService("Log", log.service());
      listener = serveTcp(server, { hostname, port });
    } catch (err) {
      console.error(`distkit raft serve: ${(err as Error).message}`);
      await node?.stop();
      await transport.close();
      await storage.close();
      return EXIT.noAnswer;
    }
    console.log(`raft member ${id} serving on ${listener.address}`);
    const stop = new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGINT", resolve);
      Deno.addSignalListener("SIGTERM", resolve);
    });
    await stop;
    await node.stop();
    await listener.close();
    await transport.close();
    await log.done.catch(() => {});
    await storage.close();
    await delay(0);
    return EXIT.ok;
  },
};

/** The `distkit raft` command group. */
export const raftCommands: { summary: string; commands: Record<string, RaftCommand> } = {
  summary: SUMMARIES.raft,
  commands: { serve },
};
