/**
 * Values on the `distkit kv` command line, binary-safe: an operand as text
 * (refused when the shell handed over bytes that are not UTF-8), in hex or
 * base64, from a file or from stdin (`-`); and a value printed as text, hex,
 * base64, JSON or into a file.
 *
 * @module
 */
import { decodeUtf8 } from "../net/bytes.ts";
import { UsageProblem } from "./util.ts";
import type { KvValue } from "../kvstate/value.ts";

/** How the value operands are written: as text, `--hex` or `--base64`. */
export type ValueEncoding = "text" | "hex" | "base64";

/** The encoding the flags ask for (at most one of `--hex`, `--base64`). */
export function encodingOf(values: Record<string, unknown>): ValueEncoding {
  if (values.hex === true && values.base64 === true) {
    throw new UsageProblem("give --hex or --base64, not both");
  }
  return values.hex === true ? "hex" : values.base64 === true ? "base64" : "text";
}

/** Text when `bytes` are valid UTF-8 (what a reader expects back), else the bytes. */
function textIfUtf8(bytes: Uint8Array): KvValue {
  return decodeUtf8(bytes) ?? bytes;
}

/** Bytes from hex (`78 01 ff 79` or `7801ff79`). */
function fromHex(text: string, what: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) {
    throw new UsageProblem(`${what} is not hex (pairs of 0-9a-f): ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(digits.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Bytes from base64. */
function fromBase64(text: string, what: string): Uint8Array {
  try {
    return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
  } catch {
    throw new UsageProblem(`${what} is not base64: ${JSON.stringify(text)}`);
  }
}

/** Everything on stdin. */
async function readStdin(): Promise<Uint8Array> {
  return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
}

/**
 * The value an operand stands for: `-` reads stdin (text if it is UTF-8,
 * else bytes), hex and base64 give bytes, text is taken as it is, unless
 * it holds U+FFFD, which is what bytes that are not UTF-8 become on the
 * way from the shell: those are refused rather than stored replaced.
 */
export async function valueOperand(
  operand: string,
  options: { encoding: ValueEncoding; what: string },
): Promise<KvValue> {
  const { encoding, what } = options;
  if (operand === "-") {
    const bytes = await readStdin();
    return encoding === "text" ? textIfUtf8(bytes) : decodeText(new TextDecoder().decode(bytes));
  }
  return decodeText(operand);

  function decodeText(text: string): KvValue {
    if (encoding === "hex") return fromHex(text, what);
    if (encoding === "base64") return fromBase64(text, what);
    if (text.includes("\uFFFD")) {
      throw new UsageProblem(
        `${what} holds U+FFFD, which is what bytes that are not valid UTF-8 become on the ` +
          `way from the shell; to store bytes give them with --hex, --base64, --file or on ` +
          `stdin (-)`,
      );
    }
    return text;
  }
}

/** The value in a file (text if it is UTF-8, else bytes). */
export async function valueFromFile(path: string): Promise<KvValue> {
  try {
    return textIfUtf8(await Deno.readFile(path));
  } catch (err) {
    throw new UsageProblem(`cannot read --file ${path}: ${(err as Error).message}`);
  }
}

/** The value as bytes. */
function bytesOf(value: KvValue): Uint8Array {
  return typeof value === "string" ? new TextEncoder().encode(value) : value;
}

/** The value as hex or base64 text. */
export function encodeValue(value: KvValue, encoding: "hex" | "base64"): string {
  const bytes = bytesOf(value);
  if (encoding === "hex") return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * The value for JSON output: `{ value }` when it is text (or bytes that are
 * UTF-8), else `{ base64 }`; or in the encoding asked for.
 */
export function jsonValue(
  value: KvValue,
  encoding: ValueEncoding,
): { value: string } | { base64: string } | { hex: string } {
  if (encoding === "hex") return { hex: encodeValue(value, "hex") };
  if (encoding === "base64") return { base64: encodeValue(value, "base64") };
  const text = typeof value === "string" ? value : textIfUtf8(value);
  return typeof text === "string" ? { value: text } : { base64: encodeValue(value, "base64") };
}

/** The size of a value in bytes. */
export function valueSize(value: KvValue): number {
  return bytesOf(value).length;
}

/** Writes a value to stdout: text with a newline, bytes as they are. */
export function printValue(value: KvValue, encoding: ValueEncoding): void {
  if (encoding !== "text") console.log(encodeValue(value, encoding));
  else if (typeof value === "string") console.log(value);
  else {
    for (let n = 0; n < value.length;) n += Deno.stdout.writeSync(value.subarray(n));
  }
}

/** Writes a value's bytes to `path`. */
export async function writeValueFile(path: string, value: KvValue): Promise<void> {
  await Deno.writeFile(path, bytesOf(value));
}
