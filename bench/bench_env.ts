/**
 * What a benchmark's report says about where it ran (the machine, the
 * commit) and the markdown table it prints, shared by the benchmarks that
 * write into BENCHMARKS.md.
 *
 * @module
 */
const ROOT = new URL("..", import.meta.url).pathname;

/** Rows of a markdown table, columns padded; `right[i]`: column i is right-aligned. */
export function markdownTable(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => r[i].length)));
  const cell = (s: string, i: number) => right[i] ? s.padStart(widths[i]) : s.padEnd(widths[i]);
  const line = (r: string[]) => `| ${r.map(cell).join(" | ")} |`;
  const rule = `| ${
    widths.map((w, i) => right[i] ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(" | ")
  } |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** `git args...` in the repository, its output trimmed; "" when git fails. */
export async function git(...args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

/** The machine in a few words: cores, CPU model, memory. */
export function machine(): string {
  const cores = navigator.hardwareConcurrency;
  let model = "";
  try {
    model = /model name\s*:\s*(.*)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "";
  } catch { /* not Linux */ }
  const memory = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
  return `${cores} cores${model ? ` (${model})` : ""}, ${memory} GiB`;
}
