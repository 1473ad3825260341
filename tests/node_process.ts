/**
 * Node processes for the process tests: `distkit ... serve` children on
 * 127.0.0.1 that can be killed (SIGKILL by default) and restarted with the
 * same arguments, free ports, and one-shot CLI runs.
 */

export const HOST = "127.0.0.1";
const CLI = new URL("../cli.ts", import.meta.url).href;

/** One node process, restartable with the same arguments (and data folder). */
export class NodeProcess {
  readonly args: string[];
  readonly address: string;
  readonly #ready: string;
  #child?: Deno.ChildProcess;
  #exited?: Promise<[Deno.CommandStatus, void, void]>;
  stderr = "";
  stdout = "";

  /** `ready`: what the node prints on stdout once it serves. */
  constructor(address: string, args: string[], options: { ready?: string } = {}) {
    this.address = address;
    this.args = args;
    this.#ready = options.ready ?? "serving on";
  }

  /** Starts the process and waits until it says it serves. */
  async start(): Promise<void> {
    this.stdout = "";
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-net=${HOST}`,
        "--allow-read",
        "--allow-write",
        "--unstable-kv",
        CLI,
        ...this.args,
      ],
      env: { DISTKIT_SECRET: "" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const decoder = new TextDecoder();
    const serving = Promise.withResolvers<void>();
    const out = (async () => {
      for await (const chunk of child.stdout) {
        this.stdout += decoder.decode(chunk);
        if (this.stdout.includes(this.#ready)) serving.resolve();
      }
    })();
    const err = (async () => {
      for await (const chunk of child.stderr) this.stderr += decoder.decode(chunk);
    })();
    this.#exited = Promise.all([child.status, out, err]);
    const gone = this.#exited.then(() => {
      throw new Error(`${this.address} exited at start: ${this.stderr}`);
    });
    await Promise.race([serving.promise, gone]);
  }

  /** Waits until the process exits on its own; its exit code. */
  async exit(): Promise<number> {
    if (!this.#exited) throw new Error(`${this.address} is not running`);
    const [status] = await this.#exited;
    this.#child = undefined;
    return status.code;
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    if (!this.#child) return;
    try {
      this.#child.kill(signal);
    } catch { /* gone already */ }
    await this.#exited;
    this.#child = undefined;
  }
}

/** `n` free ports on 127.0.0.1 (all held until the set is complete). */
export function freePorts(n: number): number[] {
  const held = Array.from({ length: n }, () => Deno.listen({ hostname: HOST, port: 0 }));
  const ports = held.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of held) l.close();
  return ports;
}

/** Runs `distkit <args>` once; its exit code and output. */
export async function runCli(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-net=${HOST}`, "--allow-read", CLI, ...args],
    env: { DISTKIT_SECRET: "" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}
