/**
 * What the timing apps use to see whether workers ran at the same time:
 * each task marks its run with a file `mr-worker-<phase>-<pid>` in the
 * working directory for a second and counts the marks it sees.
 *
 * @module
 */

/**
 * Marks this process as running `phase`, counts the processes marked so
 * (this one included), holds the mark for a second, and removes it.
 */
export async function nparallel(phase: string): Promise<number> {
  const mine = `mr-worker-${phase}-${Deno.pid}`;
  await Deno.writeTextFile(mine, "x");
  let running = 0;
  for await (const entry of Deno.readDir(".")) {
    if (entry.name.startsWith(`mr-worker-${phase}-`)) running++;
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await Deno.remove(mine);
  return running;
}

/** The seconds since the epoch, with a tenth. */
export function now(): string {
  return (Date.now() / 1000).toFixed(1);
}
