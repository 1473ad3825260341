/**
 * Runs wrk (https://github.com/wg/wrk), an independent HTTP load generator,
 * with the Lua scripts in `bench/wrk/`, and reads its summary: the same
 * figures our own driver reports, measured by a program we did not write.
 *
 * @module
 */
import { cpuMs, type LoadResult } from "./kv_load.ts";

/** The folder of the wrk scripts. */
export const WRK_SCRIPTS = new URL("./wrk/", import.meta.url).pathname;

/** What {@linkcode runWrk} reports: wrk's figures and its own CPU time. */
export type WrkResult = LoadResult & { cpuMs: number };

/**
 * Runs `wrk` against `url` with `script` (a file in `bench/wrk/`): first
 * `warmupSeconds` not counted, then `seconds` timed. `onTimed` is called as
 * the timed run starts.
 */
export async function runWrk(options: {
  wrk: string;
  script: string;
  url: string;
  clients: number;
  seconds: number;
  warmupSeconds: number;
  onTimed?: () => void;
}): Promise<WrkResult> {
  const { wrk, url, clients } = options;
  const threads = Math.min(2, clients);
  const args = (seconds: number) => [
    `-t${threads}`,
    `-c${clients}`,
    `-d${seconds}s`,
    "--latency",
    "-s",
    `${WRK_SCRIPTS}${options.script}`,
    url,
  ];
  if (options.warmupSeconds > 0) {
    await output(new Deno.Command(wrk, { args: args(options.warmupSeconds), stdout: "piped" }));
  }
  const child = new Deno.Command(wrk, { args: args(options.seconds), stdout: "piped" }).spawn();
  options.onTimed?.();
  let used = 0;
  // wrk's CPU time, read while it still runs (after exit /proc has no entry).
  const sampler = setInterval(() => {
    const ms = cpuMs(child.pid);
    if (ms >= used) used = ms;
  }, 200);
  try {
    const { stdout, success, code } = await child.output();
    const text = new TextDecoder().decode(stdout);
    if (!success) throw new Error(`wrk exited with ${code}: ${text.slice(0, 500)}`);
    return { ...parseWrk(text), cpuMs: used };
  } finally {
    clearInterval(sampler);
  }
}

async function output(command: Deno.Command): Promise<void> {
  const out = await command.output();
  if (!out.success) throw new Error(`wrk exited with ${out.code}`);
}

/** Milliseconds in wrk's `1.23ms`, `850.00us` or `1.20s`. */
function duration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) throw new Error(`wrk printed a duration I cannot read: ${text}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
  return Number(match[1]) * scale;
}

/**
 * wrk's `--latency` summary as a {@linkcode LoadResult}. Errors are the
 * answers other than 2xx/3xx, socket errors and timeouts together.
 */
export function parseWrk(text: string): LoadResult {
  const requests = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(text);
  const p50 = /^\s*50%\s+(\S+)/m.exec(text);
  const p99 = /^\s*99%\s+(\S+)/m.exec(text);
  if (!requests || !p50 || !p99) {
    throw new Error(`wrk printed no summary I can read:\n${text.slice(0, 500)}`);
  }
  const seconds = duration(requests[2] + requests[3]) / 1000;
  const ops = Number(requests[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0;
  const errors = non2xx + socketErrors;
  return {
    ops: ops - non2xx,
    seconds,
    perSecond: (ops - non2xx) / seconds,
    p50: duration(p50[1]),
    p99: duration(p99[1]),
    errors,
    ...(errors ? { firstError: `${non2xx} non-2xx answers, ${socketErrors} socket errors` } : {}),
  };
}
