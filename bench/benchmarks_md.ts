/**
 * Writes a benchmark's results into BENCHMARKS.md, between its markers
 * (appending a new section with a heading the first time), formatted the
 * way `deno fmt --check` wants it.
 *
 * @module
 */
const ROOT = new URL("..", import.meta.url).pathname;

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` with `summary`. */
export async function writeSection(name: string, heading: string, summary: string): Promise<void> {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const path = `${ROOT}BENCHMARKS.md`;
  const text = await Deno.readTextFile(path);
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  const block = `${start}\n\n${summary}\n\n${end}`;
  const updated = from >= 0 && to > from
    ? text.slice(0, from) + block + text.slice(to + end.length)
    : `${text.trimEnd()}\n\n## ${heading}\n\n${block}\n`;
  await Deno.writeTextFile(path, updated);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path], cwd: ROOT }).output();
  console.log(`wrote the results into ${path}`);
}
