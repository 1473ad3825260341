/**
 * `distkit pb` commands: the view service, the primary/backup key/value
 * service and the primary/backup lock service as processes over TCP, and
 * their clients. Servers are named by their TCP address (`host:port`).
 *
 * @module
 */
import {
  ACCESS_HELP,
  type CliCommand,
  parseCommandArgs,
  secretFrom,
  usageError,
  waitForSignal,
} from "../net/cli_util.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { AddressTransport, serveTcp } from "../net/tcp.ts";
import { parseAddress } from "../kv/hosting.ts";
import { ViewClerk, ViewServer } from "./view.ts";

type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

const ACCESS_OPTIONS = {
  "cluster-id": { type: "string" },
  "secret-file": { type: "string" },
} as const;

/** The cluster id and secret of the access options. */
function access(values: Parsed["values"], warn = false): { cluster: string; secret?: string } {
  const id = values["cluster-id"];
  return {
    cluster: typeof id === "string" ? id : "",
    secret: secretFrom(values["secret-file"], warn),
  };
}

/** A required option's text. */
function required(values: Parsed["values"], name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageProblem(`--${name} is required`);
  return v;
}

class UsageProblem extends Error {}

/**
 * A command whose first operand picks what it does (`serve`, `get`...):
 * each action parses its own options; a usage problem prints the usage.
 */
function actionCommand(
  name: string,
  summary: string,
  usage: string,
  actions: Record<
    string,
    { options: Record<string, { type: "string" | "boolean" }>; run: (p: Parsed) => Promise<number> }
  >,
): CliCommand {
  return {
    summary,
    usage,
    async run(args) {
      const [action, ...rest] = args;
      const chosen = action !== undefined && Object.hasOwn(actions, action)
        ? actions[action]
        : undefined;
      if (chosen === undefined) {
        return usageError(name, this, `expected one of: ${Object.keys(actions).join(", ")}`);
      }
      const parsed = parseCommandArgs(`${name} ${action}`, this, rest, {
        ...ACCESS_OPTIONS,
        ...chosen.options,
      });
      if (!parsed) return 2;
      try {
        return await chosen.run(parsed);
      } catch (err) {
        if (err instanceof UsageProblem || err instanceof RangeError) {
          return usageError(`${name} ${action}`, this, err.message);
        }
        console.error(`distkit ${name} ${action}: ${(err as Error).message}`);
        return 3;
      }
    },
  };
}

/**
 * Serves `services` on `listen` until SIGINT or SIGTERM; `close` stops the
 * node's own work first.
 */
async function serveUntilSignal(
  listen: string,
  values: Parsed["values"],
  setUp: (rpc: RpcServer) => { close(): void | Promise<void>; what: string },
): Promise<number> {
  const rpc = new RpcServer();
  const node = setUp(rpc);
  let listener;
  try {
    listener = serveTcp(rpc, { ...parseAddress(listen), ...access(values, true) });
  } catch (err) {
    await node.close();
    console.error(`cannot listen on ${listen}: ${(err as Error).message}`);
    return 1;
  }
  console.log(`${node.what} listening on ${listener.address}`);
  await waitForSignal();
  await node.close();
  await listener.close();
  return 0;
}

/** Runs `op` with a transport to address-named peers, closed afterwards. */
async function withTransport<T>(
  values: Parsed["values"],
  op: (transport: AddressTransport) => Promise<T>,
): Promise<T> {
  const transport = new AddressTransport({ timeoutMs: 1000, ...access(values) });
  try {
    return await op(transport);
  } finally {
    await transport.close();
  }
}

const view = actionCommand(
  "pb view",
  "the view service: serve it, or read the current view",
  `usage: distkit pb view serve --listen <host:port>
       distkit pb view get --view <host:port>

serve: runs the view service until SIGINT or SIGTERM. Servers ping it every 100 ms;
       one that misses 5 pings is dead.
get:   prints the current view as JSON: {"num":..,"primary":"host:port","backup":".."}

options:
  --listen <host:port>     where the view service listens
  --view <host:port>       the view service's address
${ACCESS_HELP}`,
  {
    serve: {
      options: { listen: { type: "string" } },
      run: ({ values }) => {
        const listen = required(values, "listen");
        return serveUntilSignal(listen, values, (rpc) => {
          const vs = new ViewServer();
          rpc.addService("View", vs.methods());
          return { close: () => vs.close(), what: "view service" };
        });
      },
    },
    get: {
      options: { view: { type: "string" } },
      run: ({ values }) => {
        const address = required(values, "view");
        parseAddress(address);
        return withTransport(values, async (transport) => {
          console.log(JSON.stringify(await new ViewClerk(transport.connect(address)).get()));
          return 0;
        });
      },
    },
  },
);

/** The `distkit pb` command group. */
export const pbCommands: { summary: string; commands: Record<string, CliCommand> } = {
  summary: "primary/backup replication: the view service, a key/value service, a lock service",
  commands: { view },
};
