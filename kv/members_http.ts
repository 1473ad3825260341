/**
 * The HTTP API's `/members`: the membership of the cluster, and changes to
 * it, under the HTTP API's rules (a follower sends the client to the
 * leader; every error answer to a change says whether it may have been
 * made).
 *
 * | request                              | does                                  |
 * | ------------------------------------ | ------------------------------------- |
 * | `GET /members`                       | the members, from the leader          |
 * | `POST /members/<id>`                 | adds node `<id>` as a learner         |
 * | `POST /members/<id>?op=promote`      | promotes learner `<id>` to voter      |
 * | `DELETE /members/<id>`               | removes node `<id>`                   |
 *
 * @module
 */
import { UnknownServiceError } from "../net/errors.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import type { MemberReply } from "../rsm/members.ts";

/**
 * Options of {@linkcode serveMembersHttp}.
 *
 * @example
 * ```ts
 * import type { MembersHttpOptions } from "@distkit/distkit/kv";
 *
 * const options: MembersHttpOptions = {
 *   path: "/members",
 *   redirect: (leader) => new Response(null, { status: 503, headers: { "x-leader": String(leader) } }),
 * };
 * ```
 */
export interface MembersHttpOptions {
  /** The request's path as sent (`/members` or `/members/<id>`). */
  path: string;
  /** The answer that sends the client to `leader` (307, or 503 while none is known). */
  redirect: (leader: string | null, extra: Record<string, unknown>) => Response;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Answers a request under `/members` through the node's own `Member`
 * service on `rpc` (see `serveMembers`: the same checks as over TCP).
 *
 * @example
 * ```ts ignore
 * import { serveMembersHttp } from "@distkit/distkit/kv";
 *
 * const response = await serveMembersHttp(rpc, request, {
 *   path: "/members",
 *   redirect: () => new Response(null, { status: 503 }),
 * });
 * ```
 */
export async function serveMembersHttp(
  rpc: RpcServer,
  req: Request,
  options: MembersHttpOptions,
): Promise<Response> {
  const url = new URL(req.url);
  const change = req.method !== "GET";
  // Every refusal of a change says whether it may have been made; these certainly were not.
  const definite = change ? { mayHaveApplied: false } : {};
  const rest = options.path.slice("/members".length);
  let node: string | undefined;
  if (rest !== "") {
    try {
      node = decodeURIComponent(rest.slice(1));
    } catch {
      return json(400, { error: "the node id is not valid percent-encoded UTF-8", ...definite });
    }
    if (!rest.startsWith("/") || node === "" || node.includes("/")) {
      return json(404, { error: "not found; use /members or /members/<id>", ...definite });
    }
  }
  const op = url.searchParams.get("op");
  let method: string;
  if (req.method === "GET" && node === undefined) {
    method = "Member.List";
  } else if (node === undefined) {
    return json(405, {
      error: `${req.method} /members needs a node id: /members/<id>`,
      ...definite,
    }, {
      allow: "GET",
    });
  } else if (req.method === "POST" && (op === null || op === "promote")) {
    method = op === "promote" ? "Member.Promote" : "Member.Add";
  } else if (req.method === "DELETE") {
    method = "Member.Remove";
  } else if (req.method === "POST") {
    return json(400, {
      error: `POST takes no op or ?op=promote, got ${JSON.stringify(op)}`,
      ...definite,
    });
  } else {
    return json(405, { error: `${req.method} is not supported on /members/<id>`, ...definite }, {
      allow: "POST, DELETE",
    });
  }
  let reply: MemberReply;
  try {
    reply = await rpc.dispatch(method, node === undefined ? {} : { node }) as MemberReply;
  } catch (err) {
    if (!(err instanceof UnknownServiceError)) throw err;
    return json(404, { error: "this node does not serve membership changes", ...definite });
  }
  return answer(reply, options, definite);
}

function answer(
  reply: MemberReply,
  options: MembersHttpOptions,
  definite: Record<string, unknown>,
): Response {
  switch (reply.status) {
    case "not-leader":
      return options.redirect(reply.leader, definite);
    case "retry":
      return json(503, { error: `${reply.reason}; use another node`, ...definite }, {
        "retry-after": "1",
      });
    case "ok":
      break;
  }
  if ("list" in reply) return json(200, reply.list);
  if ("outcome" in reply) return json(200, reply.outcome);
  if ("refused" in reply) {
    const { reason, retryable } = reply.refused;
    return json(
      409,
      { error: reason, retryable, ...definite },
      retryable ? { "retry-after": "1" } : {},
    );
  }
  return json(503, { error: reply.unknown, mayHaveApplied: true, outcome: "unknown" });
}
