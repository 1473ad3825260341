/**
 * Builders shared by the Raft unit tests (not published).
 *
 * @module
 */
import type { AppendMessage, Entry } from "./types.ts";

/** A command entry at `index` of `term`. */
export function cmd(index: number, term: number, command: unknown = `c${index}`): Entry {
  return { index, term, kind: "command", command };
}

/** Command entries `from`..`to`, all of `term`. */
export function run(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(cmd(i, term));
  return out;
}

/** An append message; entries, commit and seq default to empty, 0 and 0. */
export function append(
  fields:
    & Pick<AppendMessage, "from" | "to" | "term" | "prevIndex" | "prevTerm">
    & Partial<AppendMessage>,
): AppendMessage {
  return { type: "append", entries: [], commit: 0, seq: 0, ...fields };
}
