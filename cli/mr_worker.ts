/**
 * The standalone MapReduce worker: `deno task compile:worker` compiles this
 * entry point into `distkit-mr-worker`, which takes the options of
 * `distkit mr worker` (`--coordinator host:port --app wc|PATH`).
 *
 * @module
 */
import { mrCommands } from "./mr_commands.ts";

if (import.meta.main) {
  const args = Deno.args;
  const worker = mrCommands.commands.worker;
  if (args.includes("--help") || args.includes("-h")) {
    console.log(worker.usage.replace("distkit mr worker", "distkit-mr-worker"));
    Deno.exit(0);
  }
  Deno.exit(await worker.run(args));
}
