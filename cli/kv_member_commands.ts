/**
 * `distkit kv member list | add | remove | promote`: runtime membership of
 * a KV cluster, over TCP (the nodes' `Member` service).
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
  parseCommandArgs,
  secretFrom,
  usageError,
} from "./util.ts";
import { TcpTransport } from "../net/tcp.ts";
import { parseAddress } from "../net/address.ts";
import { mayHaveApplied } from "../rsm/errors.ts";
import type { MemberList, MemberReply } from "../rsm/members.ts";
import { ReplicaClient } from "../rsm/replica_client.ts";

const OPS = ["list", "add", "remove", "promote"] as const;
type Op = typeof OPS[number];

const METHODS: Record<Op, string> = {
  list: "Member.List",
  add: "Member.Add",
  remove: "Member.Remove",
  promote: "Member.Promote",
};

/** How a list prints: one line per member. */
function printList(list: MemberList): void {
  console.log(`leader ${list.leader}, commit index ${list.commitIndex}`);
  for (const m of list.members) {
    const state = m.behind === 0
      ? "caught up"
      : `${m.behind} behind${m.caughtUp ? "" : " (catching up)"}`;
    console.log(`  node ${m.id}  ${m.role.padEnd(7)}  match ${m.match}  ${state}`);
  }
}

/** The `kv serve` command that starts `node` on a new folder to join the cluster. */
function serveCommand(node: number, peers: string[], cluster: string, secretFile: unknown): string {
  const access = (cluster === "" ? "" : ` --cluster-id ${cluster}`) +
    (typeof secretFile === "string" ? ` --secret-file ${secretFile}` : "");
  return `distkit kv serve --id ${node} --peers ${peers.join(",")} --data <a new, empty folder> ` +
    `--join${access}`;
}

/** Identity.Members of every node but `node`, until none knows `node` (it left): who still does. */
async function waitForgotten(
  transport: TcpTransport,
  nodes: string[],
  node: string,
  signal: AbortSignal,
): Promise<string[]> {
  let pending = nodes.filter((n) => n !== node);
  while (pending.length > 0 && !signal.aborted) {
    const still: string[] = [];
    await Promise.all(pending.map(async (peer) => {
      try {
        const answer = await transport.connect(peer).call<{ members?: Record<string, string> }>(
          "Identity.Members",
          {},
          { timeoutMs: 1000, signal },
        );
        if (answer?.members?.[node] !== undefined) still.push(peer);
      } catch {
        still.push(peer); // down or slow: it cannot be said to have forgotten
      }
    }));
    pending = still;
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 100));
  }
  return pending;
}

/** `distkit kv member`. */
export const member: CliCommand = {
  summary: "list the members, add a node (as a learner), promote a learner, remove a node",
  usage: `usage: distkit kv member list --endpoints <host:port,...>
       distkit kv member add --endpoints <host:port,...> [--address <host:port>] <id>
       distkit kv member promote --endpoints <host:port,...> [--wait] <id>
       distkit kv member remove --endpoints <host:port,...> <id>

Changes the members of a running cluster, one at a time, through its leader.
<id> is a node's position in --endpoints (its --id): a node is replaced under
its own id (remove it, then add it back on a new folder), at the same address
or, with --address, at a new one.

  list     each member: voter or learner, the last log index it has, how far behind it is
  add      adds <id> as a learner (it receives the log, does not vote), and prints the
           \`kv serve --join\` command that starts it on a new, empty folder (at
           --address when given: the other nodes learn it when it first calls them)
  promote  makes learner <id> a voter; refused while it is more than 100 entries behind
           the commit index or still needs the leader's snapshot (--wait: retry until it
           has caught up, or until --timeout)
  remove   removes <id>; its folder's incarnation is then refused by every node, and the
           command waits until every reachable node has forgotten it

Each change is idempotent (one already made is answered as done), so a change whose outcome
is unknown may be sent again.

options:
  --endpoints <list>       every node's TCP address, comma-separated, in the nodes' order
  --timeout <duration>     give up after this long (default 10s)
  --wait                   (promote) wait until the learner has caught up
  --address <host:port>    (add) where the node will listen, if not its old address
${ACCESS_HELP}

${EXIT_HELP}
A change the leader refused (a learner not caught up, the last voter, another change in
progress) exits 1 with the reason.`,
  async run(args) {
    const parsed = parseCommandArgs("kv member", this, args, {
      endpoints: { type: "string" },
      timeout: { type: "string" },
      wait: { type: "boolean" },
      address: { type: "string" },
      "cluster-id": { type: "string" },
      "secret-file": { type: "string" },
    });
    if (!parsed) return EXIT.usage;
    const [op, ...operands] = parsed.positionals;
    if (!OPS.includes(op as Op)) {
      return usageError(
        "kv member",
        this,
        `expected one of ${OPS.join(", ")}, got ${op ?? "nothing"}`,
      );
    }
    const list = parsed.values.endpoints;
    if (typeof list !== "string") return usageError("kv member", this, "--endpoints is required");
    const peers = list.split(",").filter((p) => p !== "");
    if (operands.length !== (op === "list" ? 0 : 1)) {
      return usageError(
        "kv member",
        this,
        op === "list" ? "list takes no operand" : `${op} takes a node id`,
      );
    }
    const node = operands[0];
    if (node !== undefined && !(/^\d+$/.test(node) && Number(node) < peers.length)) {
      return usageError(
        "kv member",
        this,
        `node ${JSON.stringify(node)} is not a position in --endpoints (0..${peers.length - 1}); ` +
          `a node is added under its position in the list every node was started with`,
      );
    }
    const moveTo = parsed.values.address;
    if (moveTo !== undefined && op !== "add") {
      return usageError("kv member", this, "--address is an option of add only");
    }
    if (typeof moveTo === "string") {
      try {
        parseAddress(moveTo);
      } catch (err) {
        return usageError("kv member", this, `--address: ${(err as Error).message}`);
      }
    }
    let timeoutMs: number;
    let transport: TcpTransport;
    const cluster = typeof parsed.values["cluster-id"] === "string"
      ? parsed.values["cluster-id"]
      : "";
    try {
      timeoutMs = durationMs(parsed.values.timeout, "--timeout") ?? 10_000;
      transport = new TcpTransport({
        peers: Object.fromEntries(peers.map((address, i) => [String(i), address])),
        timeoutMs: 2500,
        backoff: { failFast: true },
        cluster,
        secret: secretFrom(parsed.values["secret-file"]),
      });
    } catch (err) {
      return usageError("kv member", this, (err as Error).message);
    }
    const ids = peers.map((_, i) => String(i));
    const client = new ReplicaClient(transport, ids, { service: "kv" });
    const deadline = new ClientDeadline(peers, timeoutMs);
    const signal = deadline.signal;
    const call = async () => {
      const reply = await client.call<Omit<Extract<MemberReply, { status: "ok" }>, "status">>(
        METHODS[op as Op],
        node === undefined ? {} : { node },
        { operation: `member ${op}`, write: op !== "list", signal },
      );
      return reply as Extract<MemberReply, { status: "ok" }>;
    };
    try {
      let reply = await call();
      while (
        op === "promote" && parsed.values.wait && "refused" in reply && reply.refused.retryable
      ) {
        await new Promise((r) => setTimeout(r, 200));
        if (signal.aborted) break;
        reply = await call();
      }
      if ("refused" in reply) {
        console.error(`distkit kv member ${op}: refused: ${reply.refused.reason}`);
        return EXIT.no;
      }
      if ("unknown" in reply) {
        console.error(`distkit kv member ${op}: ${reply.unknown}`);
        return EXIT.noAnswer;
      }
      if ("list" in reply) {
        printList(reply.list);
        return EXIT.ok;
      }
      console.log(reply.outcome.note);
      if (op === "remove") {
        const still = await waitForgotten(transport, ids, node!, signal);
        if (still.length > 0) {
          console.error(
            `nodes ${
              still.join(", ")
            } did not confirm (down or slow) that they forgot node ${node}'s ` +
              `folder; they will when they apply the change: wait until they run and have caught up ` +
              `before starting node ${node} on a new folder`,
          );
          return EXIT.noAnswer;
        }
        console.log(
          `every node has forgotten node ${node}'s folder; to bring it back on a new one: ` +
            `distkit kv member add --endpoints ${list} ${node}`,
        );
      }
      // An add answered "already a voter" (a retry, or the wrong id) needs no new folder: telling
      // the operator to start one would start a second node under a voter's id.
      const isVoter = reply.outcome.members.members.some((m) =>
        m.id === node && m.role === "voter"
      );
      if (op === "add" && !isVoter) {
        // At its new address, if it moves: the list every node and client should use from now on.
        const after = peers.map((p, i) =>
          String(i) === node && typeof moveTo === "string" ? moveTo : p
        );
        console.log(
          `start it on a new, empty folder (with any other option the other nodes run with, ` +
            `such as --http-offset or --tick-ms):\n  ${
              serveCommand(Number(node), after, cluster, parsed.values["secret-file"])
            }`,
        );
        console.log(
          `then, once it has caught up (distkit kv member list), promote it:\n  ` +
            `distkit kv member promote --endpoints ${after.join(",")} --wait ${node}`,
        );
        if (after.join(",") !== list) {
          console.log(
            `the other nodes dial node ${node} at its new address once it has called them; ` +
              `use this list in every node's --peers at its next start, and in clients' --endpoints:\n  ` +
              after.join(","),
          );
        }
      }
      printList(reply.outcome.members);
      return EXIT.ok;
    } catch (err) {
      const { code, message } = await deadline.explain(err);
      if (op !== "list" && mayHaveApplied(err)) {
        console.error(
          `distkit kv member ${op}: the change may or may not have been made (${message}); ` +
            `run \`distkit kv member list\` to find out, or send it again (changes are idempotent)`,
        );
        return EXIT.noAnswer;
      }
      console.error(`distkit kv member ${op}: ${message}`);
      return code;
    } finally {
      await deadline.dispose();
      await transport.close();
    }
  },
};
