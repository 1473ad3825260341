/**
 * Builders shared by the tests of stored services (not published).
 *
 * @module
 */
import { concatBytes } from "../net/bytes.ts";
import type { StateStore } from "../store/state_store.ts";
import { storeSource } from "./stored_machine.ts";

/** The whole stream a leader sends of `store` (its snapshot, as a follower receives it), in one array. */
export async function streamOf(store: StateStore): Promise<Uint8Array> {
  const stream = await storeSource(store).open();
  const parts: Uint8Array[] = [];
  try {
    for await (const part of stream.pages()) parts.push(part);
  } finally {
    stream.close();
  }
  return concatBytes(parts, parts.reduce((n, p) => n + p.length, 0));
}
