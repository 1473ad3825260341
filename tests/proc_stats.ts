/**
 * A process's resident memory and open files, for the process tests that
 * bound them. Deno lets a program read `/proc` only with all permissions,
 * so this asks `cat` and `ls` (the tests run with `--allow-run`). Linux only.
 */

async function run(cmd: string, args: string[]): Promise<string | undefined> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
  return out.success ? new TextDecoder().decode(out.stdout) : undefined;
}

/** Process `pid`'s resident memory (VmRSS) in bytes, or undefined when it is gone. */
export async function residentBytes(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const status = await run("cat", [`/proc/${pid}/status`]);
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status ?? "")?.[1]);
  return Number.isFinite(kib) && kib > 0 ? kib * 1024 : undefined;
}

/** How many file descriptors process `pid` has open, or undefined when it is gone. */
export async function openFiles(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const list = await run("ls", [`/proc/${pid}/fd`]);
  return list === undefined ? undefined : list.split("\n").filter((l) => l !== "").length;
}
