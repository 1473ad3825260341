/**
 * The net layer: one transport interface, a deterministic fault-injecting
 * simulated network for tests, and a real TCP transport.
 *
 * - {@linkcode RpcServer} hosts named services; {@linkcode ClientEnd} calls them.
 * - {@linkcode SimNetwork} has the course's labrpc fault model plus partitions
 *   and per-link rules; with a {@linkcode VirtualClock} and a seeded
 *   {@linkcode Random} a whole cluster runs deterministically
 *   ({@linkcode simulate}).
 * - Every failure is a typed {@linkcode RpcError}.
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
export * from "./frame.ts";
export * from "./tcp.ts";
export * from "./http_parse.ts";
export * from "./http_server.ts";
export * from "./event_summary.ts";
export * from "./version.ts";
export * from "./logger.ts";
export { utf8Length } from "./bytes.ts";
