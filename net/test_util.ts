/**
 * Helpers for net's tests and the tests that speak HTTP to a real listener (not published).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Writes `request` (text, bytes, or byte pieces written one after another)
 * on a new connection to 127.0.0.1:`port` and reads until the server closes
 * it; what was read, as text.
 */
export async function talk(
  port: number,
  request: string | Uint8Array | Uint8Array[],
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const parts = typeof request === "string"
      ? [encoder.encode(request)]
      : request instanceof Uint8Array
      ? [request]
      : request;
    for (const part of parts) await conn.write(part);
    let text = "";
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}
