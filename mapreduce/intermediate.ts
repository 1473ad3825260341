/**
 * The intermediate files of a job: one per map task, `mr-<m>`, holding a
 * section per reduce task. A reduce task reads its section of each, by
 * offset. (One file per map task and reduce task, the course's `mr-<m>-<r>`,
 * made nMap × nReduce files: on small inputs their creation, not their
 * size, cost most of a map task's file work.)
 *
 * The file: a 16-byte line `mr1 <nReduce, 11 digits>\n`, then nReduce + 1
 * lines of 16 bytes, `<offset, 15 digits>\n`: where each section starts and,
 * last, where the file ends. Each section is a JSON array of its keys and
 * values one after the other (`["k1","v1","k2","v2"]`) and a newline: one
 * native `JSON.stringify` per section to write, one `JSON.parse` to read.
 *
 * @module
 */

const LINE = 16;
const MAGIC = "mr1 ";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An intermediate file that is not one: what is wrong, and that the job
 * should run again.
 */
export class DamagedFileError extends Error {
  /**
   * Creates the error.
   *
   * @param path The file.
   * @param problem What is wrong with it.
   */
  constructor(path: string, problem: string) {
    super(
      `${path} is damaged: ${problem} (written by another version of distkit, or changed ` +
        `since); run the job again`,
    );
    this.name = "DamagedFileError";
  }
}

/** The intermediate file of map task `m`. */
export function intermediateName(dir: string, m: number): string {
  return `${dir}/mr-${m}`;
}

/**
 * The file's bytes for the sections `parts[r]` (each a flat list of keys
 * and values), in pieces to write one after the other: the header, then
 * each section.
 */
export function encodeIntermediate(parts: readonly string[][]): Uint8Array[] {
  const sections = parts.map((part) => encoder.encode(JSON.stringify(part) + "\n"));
  let at = LINE * (parts.length + 2);
  let header = MAGIC + digits(parts.length, LINE - MAGIC.length - 1) + "\n";
  for (const section of sections) {
    header += digits(at, LINE - 1) + "\n";
    at += section.length;
  }
  header += digits(at, LINE - 1) + "\n";
  const head = encoder.encode(header);
  // Fixed widths, ASCII only: the offsets above count on it.
  if (head.length !== LINE * (parts.length + 2)) {
    throw new Error(`an intermediate file's header came to ${head.length} bytes`);
  }
  return [head, ...sections];
}

function digits(n: number, width: number): string {
  const s = String(n);
  if (s.length > width || !Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${n} does not fit an intermediate file's header`);
  }
  return s.padStart(width, "0");
}

/**
 * Section `r` of the intermediate file at `path`, as the flat list of keys
 * and values it holds.
 *
 * @throws {DamagedFileError} when the file is not an intermediate file of
 * at least `r + 1` sections, or the section is not a list of strings.
 */
export function readSection(path: string, r: number): string[] {
  const text = readSectionText(path, r);
  let flat: unknown;
  try {
    flat = JSON.parse(text);
  } catch {
    throw new DamagedFileError(
      path,
      `section ${r} is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  if (!Array.isArray(flat) || flat.length % 2 !== 0) {
    throw new DamagedFileError(path, `section ${r} is not a list of keys and values`);
  }
  for (let i = 0; i < flat.length; i++) {
    if (typeof flat[i] !== "string") {
      throw new DamagedFileError(
        path,
        `section ${r} holds ${JSON.stringify(flat[i])}, not a string`,
      );
    }
  }
  return flat;
}

function readSectionText(path: string, r: number): string {
  const file = Deno.openSync(path);
  try {
    // The first line and the offsets up to section r's end, in one read.
    const head = readAt(file, 0, LINE * (r + 3));
    const magic = decoder.decode(head.subarray(0, LINE));
    if (!magic.startsWith(MAGIC) || !/^\d{11}\n$/.test(magic.slice(MAGIC.length))) {
      throw new DamagedFileError(path, `it starts with ${JSON.stringify(magic)}`);
    }
    const sections = Number(magic.slice(MAGIC.length, -1));
    if (r >= sections) {
      throw new DamagedFileError(
        path,
        `it has ${sections} sections, and reduce task ${r} was asked for`,
      );
    }
    const start = offsetAt(path, head, r + 1);
    const end = offsetAt(path, head, r + 2);
    if (start < LINE * (sections + 2) || end < start) {
      throw new DamagedFileError(path, `section ${r} runs from ${start} to ${end}`);
    }
    const body = readAt(file, start, end - start);
    if (body.length !== end - start) throw new DamagedFileError(path, "it is cut short");
    return decoder.decode(body);
  } finally {
    file.close();
  }
}

function offsetAt(path: string, head: Uint8Array, line: number): number {
  const text = decoder.decode(head.subarray(LINE * line, LINE * (line + 1)));
  if (!/^\d{15}\n$/.test(text)) {
    throw new DamagedFileError(path, `header line ${line} is ${JSON.stringify(text)}`);
  }
  return Number(text.slice(0, -1));
}

/** Up to `length` bytes from `position` (fewer only at the file's end). */
function readAt(file: Deno.FsFile, position: number, length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  file.seekSync(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = file.readSync(buffer.subarray(filled));
    if (n === null || n === 0) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}
