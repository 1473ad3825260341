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
  ClientDeadline,
  durationMs,
  EXIT,
  EXIT_HELP,
  operands,
  OUTPUT_FLAGS,
  OUTPUT_HELP,
  outputFormat,
  parseCommandArgs,
  secretFrom,
  usageError,
  UsageProblem,
  waitForSignal,
} from "./util.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { AddressTransport, serveTcp } from "../net/tcp.ts";
import { AddressError, parseAddress } from "../net/address.ts";
import { PrimaryBackupClerk } from "../pb/kv_clerk.ts";
import { PB_KV_SERVICE } from "../pb/kv_protocol.ts";
import { PrimaryBackupServer } from "../pb/kv_server.ts";
import { LockClerk } from "../pb/lock_clerk.ts";
import { LockServer } from "../pb/lock_server.ts";
import { ViewClerk, ViewServer } from "../pb/view.ts";
import { SUMMARIES } from "./summaries.ts";

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

/**
 * An address that names a server to others (in views, to clients): it must
 * be reachable as written, so not a wildcard host and not port 0.
 */
function nameAddress(address: string, option: string): string {
  // Parsed as a listening address, so that port 0 gets the message below.
  const { hostname, port } = parseAddress(address, { listen: true });
  if (port === 0 || ["0.0.0.0", "::"].includes(hostname)) {
    throw new UsageProblem(
      `${option} ${address} is this server's name to the others, so it must be reachable as ` +
        `written: give a host others can reach and a fixed port (not 0.0.0.0, :: or port 0)`,
    );
  }
  return address;
}

/** One action of an {@linkcode actionCommand}: its options, its own help, and its body. */
interface Action {
  options: Record<string, { type: "string" | "boolean" }>;
  /** The action's help: its usage line, what it does, its options. */
  usage: string;
  run: (p: Parsed) => Promise<number>;
}

/**
 * A command whose first operand picks what it does (`serve`, `get`...):
 * each action parses its own options and has its own help; a usage problem
 * prints the action's help (the command's, when no action was chosen).
 */
function actionCommand(
  name: string,
  summary: string,
  usage: string,
  actions: Record<string, Action>,
): CliCommand & { help(args: string[]): string } {
  const chosenBy = (action: string | undefined) =>
    action !== undefined && Object.hasOwn(actions, action) ? actions[action] : undefined;
  return {
    summary,
    usage,
    help(args) {
      return chosenBy(args[0])?.usage ?? usage;
    },
    async run(args) {
      const [action, ...rest] = args;
      const chosen = chosenBy(action);
      if (chosen === undefined) {
        return usageError(name, this, `expected one of: ${Object.keys(actions).join(", ")}`);
      }
      const own = { ...this, usage: chosen.usage };
      const parsed = parseCommandArgs(`${name} ${action}`, own, rest, {
        ...ACCESS_OPTIONS,
        ...chosen.options,
      });
      if (!parsed) return EXIT.usage;
      try {
        return await chosen.run(parsed);
      } catch (err) {
        if (
          err instanceof UsageProblem || err instanceof RangeError || err instanceof AddressError
        ) {
          return usageError(`${name} ${action}`, own, err.message);
        }
        console.error(`distkit ${name} ${action}: ${(err as Error).message}`);
        return EXIT.noAnswer;
      }
    },
  };
}

/**
 * Runs a client action with a {@linkcode ClientDeadline} over `addresses`:
 * its failure is printed with what was tried, and mapped to its exit code.
 */
async function clientAction(
  what: string,
  addresses: string[],
  timeoutMs: number,
  op: (signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const deadline = new ClientDeadline(addresses, timeoutMs);
  try {
    return await op(deadline.signal);
  } catch (err) {
    if (err instanceof UsageProblem) throw err;
    const { code, message } = await deadline.explain(err);
    console.error(`distkit ${what}: ${message}`);
    return code;
  } finally {
    await deadline.dispose();
  }
}

/**
 * Serves the node `setUp` makes on `listen` until SIGINT or SIGTERM; the
 * node's `close` stops its own work first.
 */
async function serveUntilSignal(
  listen: string,
  values: Parsed["values"],
  setUp: (rpc: RpcServer, transport: AddressTransport) => {
    close(): void | Promise<void>;
    what: string;
  },
): Promise<number> {
  const rpc = new RpcServer();
  // Bound before the node starts: a node that pings the view service (and
  // may be made primary) must be reachable, and one that cannot listen must
  // never have pinged.
  // A malformed address is the command line's fault (exit 2), not a failure to listen (exit 3).
  // Port 0 is allowed: the view service may take any free port.
  const where = parseAddress(listen, { listen: true });
  let listener;
  try {
    listener = serveTcp(rpc, { ...where, ...access(values, true) });
  } catch (err) {
    console.error((err as Error).message);
    return EXIT.noAnswer;
  }
  // Peers are named by their address; a dead one is reported at once, not retried.
  const transport = new AddressTransport({
    timeoutMs: 1000,
    backoff: { failFast: true },
    ...access(values),
  });
  try {
    const node = setUp(rpc, transport);
    console.log(`${node.what} listening on ${listener.address}`);
    await waitForSignal();
    await node.close();
  } finally {
    await listener.close();
    await transport.close();
  }
  return 0;
}

/** Runs `op` with a transport to address-named peers, closed afterwards. */
async function withTransport<T>(
  values: Parsed["values"],
  op: (transport: AddressTransport) => Promise<T>,
): Promise<T> {
  const transport = new AddressTransport({
    timeoutMs: 1000,
    backoff: { failFast: true },
    ...access(values),
  });
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
       distkit pb view get --endpoints <host:port> [--timeout 10s]

serve: runs the view service until SIGINT or SIGTERM. Servers ping it every 100 ms;
       one that misses 5 pings is dead.
get:   prints the current view as JSON: {"num":..,"primary":"host:port","backup":".."}

options:
  --listen <host:port>     where the view service listens
  --endpoints <host:port>  get: the view service's address (--view: the old spelling)
  --timeout <duration>     get: give up after this long: 10s, 500ms (default 10s)
${ACCESS_HELP}`,
  {
    serve: {
      options: { listen: { type: "string" } },
      usage: `usage: distkit pb view serve --listen <host:port>

Runs the view service until SIGINT or SIGTERM. Servers ping it every 100 ms; one
that misses 5 pings is dead.

options:
  --listen <host:port>     where the view service listens
${ACCESS_HELP}`,
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
      options: { endpoints: { type: "string" }, timeout: { type: "string" }, ...OUTPUT_FLAGS },
      usage: `usage: distkit pb view get --endpoints <host:port> [--timeout 10s]

Prints the current view as JSON: {"num":..,"primary":"host:port","backup":".."}.

options:
  --endpoints <host:port>  the view service's address (--view: the old spelling)
  --timeout <duration>     give up after this long: 10s, 500ms (default 10s)
  -o, --output json        the only format (JSON) is the default
${ACCESS_HELP}

${EXIT_HELP}`,
      run: ({ values }) => {
        const address = required(values, "endpoints");
        parseAddress(address);
        return withTransport(
          values,
          (transport) =>
            clientAction("pb view get", [address], timeoutOf(values), async () => {
              console.log(JSON.stringify(await new ViewClerk(transport.connect(address)).get()));
              return EXIT.ok;
            }),
        );
      },
    },
  },
);

/** `--timeout` in milliseconds (default 10 s), as the other client commands take it. */
function timeoutOf(values: Parsed["values"]): number {
  return durationMs(values.timeout, "--timeout") ?? 10_000;
}

const LOCK_CLIENT_OPTIONS = {
  primary: { type: "string" },
  backup: { type: "string" },
  timeout: { type: "string" },
  ...OUTPUT_FLAGS,
} as const;

/** `lock` or `unlock` NAME: prints true or false; exit 0 for true, 1 for false. */
function lockAction(kind: "lock" | "unlock"): Action {
  return {
    options: LOCK_CLIENT_OPTIONS,
    usage:
      `usage: distkit pb lock ${kind} NAME --primary <host:port> --backup <host:port> [--timeout 10s]
                         [-o json]

${
        kind === "lock"
          ? "Takes the lock NAME; prints true (exit 0), or false if it is held (exit 1)."
          : "Releases the lock NAME; prints true (exit 0), or false if it was not held (exit 1)."
      }
A retried request is answered once (at-most-once).

options:
  --primary <host:port>    the primary's address
  --backup <host:port>     the backup's address
  --timeout <duration>     give up after this long: 10s, 500ms (default 10s)
${OUTPUT_HELP}
${ACCESS_HELP}

${EXIT_HELP}`,
    run: ({ values, positionals }: Parsed) => {
      const [name] = operands(positionals, 1, "one lock NAME");
      const servers = { primary: required(values, "primary"), backup: required(values, "backup") };
      const timeoutMs = timeoutOf(values);
      const format = outputFormat(values);
      return withTransport(values, (transport) =>
        clientAction(
          `pb lock ${kind}`,
          [servers.primary, servers.backup],
          timeoutMs,
          async (signal) => {
            // The command's --timeout bounds it.
            const clerk = new LockClerk(transport, servers, { deadlineMs: Infinity });
            const changed = kind === "lock"
              ? await clerk.lock(name, { signal })
              : await clerk.unlock(name, { signal });
            console.log(
              format === "json"
                ? JSON.stringify({ op: kind, name, result: changed })
                : String(changed),
            );
            return changed ? EXIT.ok : EXIT.no;
          },
        ));
    },
  };
}

const lock = actionCommand(
  "pb lock",
  "the lock service: serve a primary or backup, lock or unlock a name",
  `usage: distkit pb lock serve --listen <host:port> --primary <host:port> --backup <host:port>
       distkit pb lock lock NAME --primary <host:port> --backup <host:port> [--timeout 10s]
       distkit pb lock unlock NAME --primary <host:port> --backup <host:port> [--timeout 10s]

serve:  runs the primary or the backup (whichever --listen is) until SIGINT or SIGTERM.
        The primary hands every operation to the backup before it answers; when the
        primary stops, clients go to the backup, which goes on alone. Nothing is
        written to disk. A restarted backup is sent the primary's whole state (within
        about a second) and serves no one until then; a restarted primary is refused
        by the backup, which keeps every lock and serves. If the backup cannot be
        reached, the primary serves alone and checks every second for the backup,
        bringing it up to date when it answers. Not survived: the primary failing while
        it serves alone with the backup alive but cut off (the backup then serves an
        old state), or both servers failing. Once the backup has taken over, it serves
        alone until both are restarted (which loses the locks).
lock:   takes the lock NAME; prints true (exit 0), or false if it is held (exit 1).
unlock: releases NAME; prints true (exit 0), or false if it was not held (exit 1).
A retried request is answered once (at-most-once).

options:
  --listen <host:port>     this server's address: the primary's or the backup's
  --primary <host:port>    the primary's address
  --backup <host:port>     the backup's address
  --timeout <duration>     a client gives up after this long: 10s, 500ms (default 10s; exit 3)
${OUTPUT_HELP}
${ACCESS_HELP}

${EXIT_HELP}`,
  {
    serve: {
      options: {
        listen: { type: "string" },
        primary: { type: "string" },
        backup: { type: "string" },
      },
      usage:
        `usage: distkit pb lock serve --listen <host:port> --primary <host:port> --backup <host:port>

Runs the primary or the backup (whichever --listen is) until SIGINT or SIGTERM.
The primary hands every operation to the backup before it answers; when the
primary stops, clients go to the backup, which goes on alone. Nothing is written
to disk. See \`distkit pb lock --help\` for what is survived and what is not.

options:
  --listen <host:port>     this server's address: the primary's or the backup's
  --primary <host:port>    the primary's address
  --backup <host:port>     the backup's address
${ACCESS_HELP}`,
      run: ({ values }) => {
        const listen = required(values, "listen");
        const primary = nameAddress(required(values, "primary"), "--primary");
        const backup = nameAddress(required(values, "backup"), "--backup");
        if (listen !== primary && listen !== backup) {
          throw new UsageProblem("--listen must be the --primary or the --backup address");
        }
        return serveUntilSignal(listen, values, (rpc, transport) => {
          const server = new LockServer({ id: listen, primary, backup, transport, server: rpc });
          return {
            close: () => server.stop(),
            what: `lock service ${listen === primary ? "primary" : "backup"}`,
          };
        });
      },
    },
    lock: lockAction("lock"),
    unlock: lockAction("unlock"),
  },
);

/** `get KEY`, `put KEY VALUE` or `append KEY VALUE` through a clerk. */
function kvAction(kind: "get" | "put" | "append"): Action {
  const operandsText = kind === "get" ? "KEY" : "KEY VALUE";
  const what = {
    get: 'Prints the value of KEY ("" when it has none).',
    put: "Sets KEY to VALUE. A retried write takes effect once.",
    append: "Appends VALUE to KEY's value. A retried write takes effect once.",
  }[kind];
  return {
    options: {
      endpoints: { type: "string" },
      timeout: { type: "string" },
      ...OUTPUT_FLAGS,
    } as const,
    usage:
      `usage: distkit pb kv ${kind} ${operandsText} --endpoints <host:port> [--timeout 10s] [-o json]

${what}

options:
  --endpoints <host:port>  the view service's address (--view: the old spelling)
  --timeout <duration>     give up after this long: 10s, 500ms (default 10s)
${OUTPUT_HELP}
${ACCESS_HELP}

${EXIT_HELP}`,
    run: ({ values, positionals }: Parsed) => {
      const [key, value] = kind === "get"
        ? operands(positionals, 1, "one KEY")
        : operands(positionals, 2, "KEY VALUE");
      const viewService = required(values, "endpoints");
      parseAddress(viewService);
      const timeoutMs = timeoutOf(values);
      const format = outputFormat(values);
      return withTransport(
        values,
        (transport) =>
          clientAction(`pb kv ${kind}`, [viewService], timeoutMs, async (signal) => {
            const clerk = new PrimaryBackupClerk(transport, { viewService, timeoutMs });
            if (kind === "get") {
              const found = await clerk.get(key, { signal });
              console.log(format === "json" ? JSON.stringify({ key, value: found }) : found);
            } else {
              if (kind === "put") await clerk.put(key, value, { signal });
              else await clerk.append(key, value, { signal });
              if (format === "json") console.log(JSON.stringify({ op: kind, key, ok: true }));
            }
            return EXIT.ok;
          }),
      );
    },
  };
}

const kv = actionCommand(
  "pb kv",
  "the primary/backup key/value service: serve one server, or get, put, append",
  `usage: distkit pb kv serve --listen <host:port> --view <host:port>
       distkit pb kv get KEY --endpoints <host:port> [--timeout 10s] [-o json]
       distkit pb kv put KEY VALUE --endpoints <host:port> [--timeout 10s] [-o json]
       distkit pb kv append KEY VALUE --endpoints <host:port> [--timeout 10s] [-o json]

serve:  runs one server until SIGINT or SIGTERM. It pings the view service, which
        makes the first server the primary and the next the backup; the primary
        copies its state to each new backup and hands it every request before it
        answers. Start as many as you like: the others wait, idle, to become the
        backup. Nothing is written to disk: the data lives while a primary or its
        up-to-date backup does.
get:    prints the value of KEY ("" when it has none).
put:    sets KEY to VALUE.  append: appends VALUE to KEY's value.
A retried write takes effect once.

options:
  --listen <host:port>     this server's address (its name in views)
  --view <host:port>       serve: the view service's address
  --endpoints <host:port>  get, put, append: the view service's address (--view: old spelling)
  --timeout <duration>     a client gives up after this long: 10s, 500ms (default 10s; exit 3)
${OUTPUT_HELP}
${ACCESS_HELP}

${EXIT_HELP}`,
  {
    serve: {
      options: { listen: { type: "string" }, view: { type: "string" } },
      usage: `usage: distkit pb kv serve --listen <host:port> --view <host:port>

Runs one server until SIGINT or SIGTERM. It pings the view service, which makes
the first server the primary and the next the backup; the others wait, idle, to
become the backup. Nothing is written to disk.

options:
  --listen <host:port>     this server's address (its name in views)
  --view <host:port>       the view service's address
${ACCESS_HELP}`,
      run: ({ values }) => {
        const listen = nameAddress(required(values, "listen"), "--listen");
        const viewService = required(values, "view");
        parseAddress(viewService);
        return serveUntilSignal(listen, values, (rpc, transport) => {
          const server = new PrimaryBackupServer(listen, { transport, viewService });
          rpc.addService(PB_KV_SERVICE, server.methods());
          return { close: () => server.close(), what: "key/value server" };
        });
      },
    },
    get: kvAction("get"),
    put: kvAction("put"),
    append: kvAction("append"),
  },
);

/** The `distkit pb` command group. */
export const pbCommands: {
  summary: string;
  commands: Record<string, CliCommand & { help(args: string[]): string }>;
} = {
  summary: SUMMARIES.pb,
  commands: { view, kv, lock },
};
