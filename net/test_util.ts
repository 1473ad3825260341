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
 * it; what was read, as text. With `yieldBetweenParts`, a turn of the event
 * loop passes between pieces, so the server tends to read them apart (the
 * answer must not depend on how its reads split).
 */
export async function talk(
  port: number,
  request: string | Uint8Array | Uint8Array[],
  options: { yieldBetweenParts?: boolean } = {},
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const reading = (async () => {
      let text = "";
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) return text;
        text += decoder.decode(buffer.subarray(0, n));
      }
    })();
    const parts = typeof request === "string"
      ? [encoder.encode(request)]
      : request instanceof Uint8Array
      ? [request]
      : request;
    for (const part of parts) {
      await conn.write(part);
      if (options.yieldBetweenParts) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return await reading;
  } finally {
    conn.close();
  }
}
