/**
 * An inverted index: for each word, how many documents contain it and
 * which (sorted, comma-separated): `"<n> <doc1>,<doc2>"`.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";
import { compareKeys } from "../app.ts";
import { countWords } from "./wc.ts";

/** Emits (word, document) once for every distinct word of the document. */
export function map(document: string, contents: string): KeyValue[] {
  return [...countWords(contents).keys()].map((w) => [w, document]);
}

/** The number of documents and their sorted names (a document counts once). */
export function reduce(_key: string, values: string[]): string {
  const docs = [...new Set(values)].sort(compareKeys);
  return `${docs.length} ${docs.join(",")}`;
}
