/**
 * Word count: every maximal run of letters (Unicode letters, as Go's
 * `unicode.IsLetter`) is a word; the output is each word's count.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";

const LETTER = /^\p{L}$/u;

/** 1 for the ASCII letters A-Z and a-z, by code. */
const ASCII_LETTER = new Uint8Array(128);
for (let c = 0x41; c <= 0x5a; c++) ASCII_LETTER[c] = ASCII_LETTER[c | 0x20] = 1;

/**
 * What the regular expression said of each character of the Basic
 * Multilingual Plane so far: 0 not asked yet, 1 a letter, 2 not. Texts
 * repeat their few non-ASCII characters (quotes, dashes, accents) often.
 */
const BMP_LETTER = new Uint8Array(0x10000);

function isLetterCode(c: number): boolean {
  if (c < 0x80) return ASCII_LETTER[c] === 1;
  if (c < 0x10000) {
    const known = BMP_LETTER[c];
    if (known !== 0) return known === 1;
    const letter = LETTER.test(String.fromCharCode(c));
    BMP_LETTER[c] = letter ? 1 : 2;
    return letter;
  }
  return LETTER.test(String.fromCodePoint(c));
}

/**
 * Calls `emit` with every word of `text` (a maximal run of letters), in order.
 *
 * @example
 * ```ts
 * import { words } from "@distkit/distkit/mapreduce";
 *
 * const out: string[] = [];
 * words("It's 2 o'clock", (w) => out.push(w));
 * out; // ["It", "s", "o", "clock"]
 * ```
 */
export function words(text: string, emit: (word: string) => void): void {
  let start = -1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    let width = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = ((c - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        width = 2;
      }
    }
    if (isLetterCode(c)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      emit(text.slice(start, i));
      start = -1;
    }
    i += width - 1;
  }
  if (start >= 0) emit(text.slice(start));
}

/**
 * Emits every distinct word of the input once, with its number of
 * occurrences there. (The course's wc emits (word, "1") for each
 * occurrence; counting in the mapper gives the same output with far fewer
 * pairs between the phases.)
 */
export function map(_filename: string, contents: string): KeyValue[] {
  return new WordCounter().add(contents).pairs();
}

/**
 * The same pairs as {@linkcode map}, counting the input a piece at a time
 * (pieces end at line ends, so no word is cut): memory stays at the size
 * of a piece and of the vocabulary, whatever the input's size.
 */
export async function mapStream(
  _filename: string,
  pieces: AsyncIterable<string>,
): Promise<KeyValue[]> {
  const counter = new WordCounter();
  for await (const piece of pieces) counter.add(piece);
  return counter.pairs();
}

/**
 * The words of `text` with their counts.
 *
 * @example
 * ```ts
 * import { countWords } from "@distkit/distkit/mapreduce";
 *
 * countWords("a b a").get("a"); // 2
 * ```
 */
export function countWords(text: string): Map<string, number> {
  return new WordCounter().add(text).counts();
}

/**
 * Counts words (maximal runs of letters) over any number of texts. A hash
 * table of its own, hashing each word as it is scanned and comparing it in
 * place, so a word seen before costs no new string (the cost of word count
 * is almost all there).
 *
 * @example
 * ```ts
 * import { WordCounter } from "@distkit/distkit/mapreduce";
 *
 * const counter = new WordCounter().add("a b a\n").add("b c\n");
 * counter.counts().get("b"); // 2
 * ```
 */
export class WordCounter {
  #mask = 4095;
  #hashes = new Int32Array(4096);
  #counts = new Int32Array(4096);
  #keys: (string | undefined)[] = new Array(4096);
  #size = 0;

  /** Distinct words so far. */
  get size(): number {
    return this.#size;
  }

  /** Counts the words of `text` (a word is never continued from the last text). */
  add(text: string): this {
    let mask = this.#mask;
    let hashes = this.#hashes;
    let counts = this.#counts;
    let keys = this.#keys;
    const n = text.length;
    let i = 0;
    while (i < n) {
      // Skip to a letter. ASCII is tested inline (no call): a small job runs
      // this loop mostly before V8 has optimized it, where calls cost most.
      let c = text.charCodeAt(i);
      if (c < 0x80) {
        if (ASCII_LETTER[c] === 0) {
          i++;
          continue;
        }
      } else {
        const width = codeWidth(text, i, c);
        if (!isLetterCode(width === 2 ? codePointAt(text, i) : c)) {
          i += width;
          continue;
        }
      }
      const start = i;
      let h = 0x811c9dc5;
      while (i < n) {
        c = text.charCodeAt(i);
        if (c < 0x80) {
          if (ASCII_LETTER[c] === 0) break;
          h = Math.imul(h ^ c, 0x01000193);
          i++;
          continue;
        }
        const width = codeWidth(text, i, c);
        if (!isLetterCode(width === 2 ? codePointAt(text, i) : c)) break;
        h = Math.imul(h ^ c, 0x01000193);
        if (width === 2) h = Math.imul(h ^ text.charCodeAt(i + 1), 0x01000193);
        i += width;
      }
      const len = i - start;
      let slot = h & mask;
      while (true) {
        const key = keys[slot];
        if (key === undefined) {
          keys[slot] = ownCopy(text.slice(start, i));
          hashes[slot] = h;
          counts[slot] = 1;
          if (++this.#size * 2 > mask) {
            this.#grow();
            mask = this.#mask;
            hashes = this.#hashes;
            counts = this.#counts;
            keys = this.#keys;
          }
          break;
        }
        if (hashes[slot] === h && key.length === len && sameRegion(key, text, start)) {
          counts[slot]++;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
    return this;
  }

  /** Each word with its count. */
  counts(): Map<string, number> {
    const result = new Map<string, number>();
    const keys = this.#keys;
    for (let s = 0; s < keys.length; s++) {
      if (keys[s] !== undefined) result.set(keys[s]!, this.#counts[s]);
    }
    return result;
  }

  /** Each word with its count, as map output pairs. */
  pairs(): KeyValue[] {
    const out: KeyValue[] = [];
    const keys = this.#keys;
    for (let s = 0; s < keys.length; s++) {
      if (keys[s] !== undefined) out.push([keys[s]!, String(this.#counts[s])]);
    }
    return out;
  }

  /** Rehashes into a table twice the size. */
  #grow(): void {
    const old = { keys: this.#keys, hashes: this.#hashes, counts: this.#counts };
    const mask = this.#mask * 2 + 1;
    const keys: (string | undefined)[] = new Array(mask + 1);
    const hashes = new Int32Array(mask + 1);
    const counts = new Int32Array(mask + 1);
    for (let s = 0; s < old.keys.length; s++) {
      if (old.keys[s] === undefined) continue;
      let t = old.hashes[s] & mask;
      while (keys[t] !== undefined) t = (t + 1) & mask;
      keys[t] = old.keys[s];
      hashes[t] = old.hashes[s];
      counts[t] = old.counts[s];
    }
    this.#mask = mask;
    this.#keys = keys;
    this.#hashes = hashes;
    this.#counts = counts;
  }
}

/** 2 when a surrogate pair starts at i, else 1. */
function codeWidth(text: string, i: number, c: number): number {
  if (c < 0xd800 || c > 0xdbff || i + 1 >= text.length) return 1;
  const low = text.charCodeAt(i + 1);
  return low >= 0xdc00 && low <= 0xdfff ? 2 : 1;
}

function codePointAt(text: string, i: number): number {
  return text.codePointAt(i)!;
}

/**
 * The string in a copy of its own: V8 makes a longer slice a view of the
 * text it came from, which would keep every piece of input that brought a
 * new long word alive as long as the counts.
 */
function ownCopy(s: string): string {
  return s.length < 13 ? s : (" " + s).slice(1);
}

function sameRegion(key: string, text: string, start: number): boolean {
  for (let k = 0; k < key.length; k++) {
    if (key.charCodeAt(k) !== text.charCodeAt(start + k)) return false;
  }
  return true;
}

/** The word's count: the sum of its values (each "1", or a combined count). */
export function reduce(_key: string, values: string[]): string {
  let n = 0;
  for (let i = 0; i < values.length; i++) n += Number(values[i]);
  return String(n);
}

/** Partial counts add up: the same as reduce. */
export const combine: (key: string, values: string[]) => string = reduce;
