/**
 * TCP addresses as text: the one parser of `"host:port"` every part of
 * distkit uses (transports, node hosting, the command line), so an address
 * one part accepts is never refused by another.
 *
 * @module
 */

/**
 * Options of {@linkcode parseAddress}.
 *
 * @example
 * ```ts
 * import type { ParseAddressOptions } from "@distkit/distkit/net";
 *
 * const forListening: ParseAddressOptions = { listen: true };
 * ```
 */
export interface ParseAddressOptions {
  /** The peer the address belongs to, named in the error. */
  peer?: string;
  /**
   * The address is one to listen on, where port 0 asks the system for any
   * free port. Default false: an address to connect to, or to name a node
   * by, needs a real port (1 to 65535).
   */
  listen?: boolean;
}

/**
 * An address that is not `"host:port"`: no port, a port out of range, no
 * host, or an IPv6 host without brackets.
 *
 * @example
 * ```ts
 * import { AddressError, parseAddress } from "@distkit/distkit/net";
 *
 * try {
 *   parseAddress("localhost");
 * } catch (err) {
 *   if (err instanceof AddressError) console.log(err.address); // "localhost"
 * }
 * ```
 */
export class AddressError extends TypeError {
  /** The address as given. */
  readonly address: string;

  /**
   * Says what is wrong with `address` and how a good one looks.
   *
   * @param address The address as given.
   * @param why What is wrong with it.
   * @param options The peer it belongs to, if any.
   */
  constructor(address: string, why: string, options: { peer?: string } = {}) {
    const where = options.peer === undefined ? "" : ` for peer "${options.peer}"`;
    super(
      `bad address ${JSON.stringify(address)}${where}: ${why}; expected "host:port", ` +
        `e.g. "127.0.0.1:7000" or "[::1]:7000"`,
    );
    this.name = "AddressError";
    this.address = address;
  }
}

/**
 * Splits `"host:port"` into a hostname and a port. An IPv6 host is written
 * in brackets (`"[::1]:7000"`) and comes back without them (`"::1"`), as
 * `Deno.connect` and `Deno.listen` take it.
 *
 * @param address The address, `"host:port"`.
 * @param options `listen: true` to allow port 0 (any free port); `peer` to name the owner in errors.
 * @throws {AddressError} when `address` is not `"host:port"` with a port from 1 (0 with `listen`)
 * to 65535.
 *
 * @example
 * ```ts
 * import { parseAddress } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseAddress("127.0.0.1:7001"), { hostname: "127.0.0.1", port: 7001 });
 * assert.deepEqual(parseAddress("[::1]:7001"), { hostname: "::1", port: 7001 });
 * assert.deepEqual(parseAddress("127.0.0.1:0", { listen: true }), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * assert.throws(() => parseAddress("127.0.0.1:0"), TypeError);
 * ```
 */
export function parseAddress(
  address: string,
  options: ParseAddressOptions = {},
): { hostname: string; port: number } {
  const bad = (why: string) => new AddressError(String(address), why, { peer: options.peer });
  if (typeof address !== "string") throw bad("not a string");
  const colon = address.lastIndexOf(":");
  if (colon <= 0) throw bad("no port");
  let hostname = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  else if (hostname.includes(":")) throw bad("an IPv6 host must be in brackets");
  if (hostname === "") throw bad("no host");
  const lowest = options.listen ? 0 : 1;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < lowest || port > 65535) {
    throw bad(
      options.listen
        ? "port must be an integer from 0 (any free port) to 65535"
        : "port must be an integer from 1 to 65535",
    );
  }
  return { hostname, port };
}
