/**
 * distkit: build, run and test fault-tolerant distributed systems in Deno.
 *
 * The root module re-exports the modules that are available; import a
 * sub-path (`@distkit/distkit/net`, ...) to load only what you need.
 *
 * @example
 * ```ts
 * import { RpcServer, simulate } from "@distkit/distkit";
 *
 * await simulate(async ({ net }) => {
 *   const server = new RpcServer();
 *   server.addService("Hello", { Greet: (name: string) => `hello, ${name}` });
 *   net.addServer("s", server);
 *   const end = net.makeEnd("c");
 *   net.connect("c", "s");
 *   net.enable("c", true);
 *   console.log(await end.call("Hello.Greet", "world"));
 * }, { seed: 1 });
 * ```
 *
 * @module
 */
export * from "./net/mod.ts";
export * from "./raft/mod.ts";
export * from "./rsm/mod.ts";
export * from "./checker/mod.ts";
export * from "./kv/mod.ts";
export * from "./shard/mod.ts";
export * from "./mapreduce/mod.ts";
export * from "./pb/mod.ts";
