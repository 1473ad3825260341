/**
 * The net layer: how distkit's nodes talk, and the simulation they are
 * tested in.
 *
 * - {@linkcode RpcServer} hosts named services; a {@linkcode ClientEnd}
 *   calls them; a {@linkcode Transport} hands out ends by peer name.
 * - The simulation kernel (`net/sim/`, 6.824's labrpc and more):
 *   {@linkcode SimNetwork} has labrpc's fault model (lost requests and
 *   replies, long delays, reordering) plus partitions and per-link rules;
 *   with a {@linkcode VirtualClock} and a seeded {@linkcode Random} a whole
 *   cluster runs deterministically ({@linkcode simulate}).
 * - TCP: {@linkcode serveTcp}, {@linkcode TcpClient}, {@linkcode TcpTransport}
 *   (cluster id, shared secret and node identity checked in a handshake),
 *   and {@linkcode parseAddress}, the one parser of `"host:port"`.
 * - Every failure is a typed {@linkcode RpcError}; the library's records go
 *   to a {@linkcode Logger}.
 *
 * What it is not: it knows nothing of Raft or of any service, and it does
 * not retry on its own (a caller decides what a lost reply means). Its frame
 * codec is internal.
 *
 * @example
 * ```ts
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ net }) => {
 *   const server = new RpcServer();
 *   server.addService("Math", { Add: ({ a, b }: { a: number; b: number }) => a + b });
 *   net.addServer("calc", server);
 *   const end = net.makeEnd("me");
 *   net.connect("me", "calc");
 *   net.enable("me", true);
 *   assert.equal(await end.call("Math.Add", { a: 2, b: 3 }), 5);
 * }, { seed: 1 });
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./codec.ts";
export * from "./clock.ts";
export * from "./random.ts";
export * from "./async.ts";
export * from "./rpc_server.ts";
export * from "./transport.ts";
export * from "./sim/network.ts";
export * from "./sim/simulate.ts";
export * from "./env.ts";
export { formatAddr } from "./frame.ts";
export * from "./frame_limits.ts";
export * from "./tcp.ts";
export * from "./address.ts";
export * from "./http_parse.ts";
export * from "./http_server.ts";
export {
  lightFromRequest,
  type LightRequest,
  type LightResponse,
  normalizeMethod,
  responseFromLight,
} from "./http_light.ts";
export * from "./version.ts";
export * from "./logger.ts";
export { utf8Length } from "./bytes.ts";
