/**
 * The server side every transport shares: named services, method lookup and
 * argument checks.
 *
 * @module
 */
import {
  ArgumentsError,
  RemoteError,
  RpcError,
  UnknownMethodError,
  UnknownServiceError,
} from "./errors.ts";

/**
 * Who is calling, as far as the transport knows.
 *
 * @example
 * ```ts
 * import type { CallContext } from "@distkit/distkit/net";
 *
 * function handler(_args: unknown, context: CallContext) {
 *   return `hello, ${context.peer ?? "stranger"}`;
 * }
 * ```
 */
export interface CallContext {
  /** The full method name, `Service.Method`. */
  method: string;
  /** The caller's name or address, when the transport knows it. */
  peer?: string;
  /**
   * The cluster member (node id) the caller proved to be in the
   * connection's handshake, when it is one (see `MemberOptions`).
   */
  member?: string;
}

/**
 * A method handler: takes the decoded arguments and returns the reply (or a
 * promise of it). Throwing sends the error to the caller as a `RemoteError`.
 *
 * @example
 * ```ts
 * import type { Handler } from "@distkit/distkit/net";
 *
 * const echo: Handler = (args) => args;
 * ```
 */
// deno-lint-ignore no-explicit-any
export type Handler = (args: any, context: CallContext) => unknown;

/**
 * The methods of a service: a plain object of handlers, or any object (a
 * class instance) whose methods are the handlers.
 *
 * @example
 * ```ts
 * import type { ServiceMethods } from "@distkit/distkit/net";
 *
 * const methods: ServiceMethods = { Ping: () => "pong" };
 * ```
 */
export type ServiceMethods = object;

/**
 * The type a field must have in {@linkcode expectShape}; a trailing `?`
 * allows the field to be missing or undefined.
 *
 * @example
 * ```ts
 * import type { FieldType } from "@distkit/distkit/net";
 *
 * const t: FieldType = "integer?";
 * ```
 */
export type FieldType =
  | "string"
  | "number"
  | "integer"
  | "boolean"
  | "array"
  | "object"
  | "bytes"
  | "any"
  | `${"string" | "number" | "integer" | "boolean" | "array" | "object" | "bytes" | "any"}?`;

/**
 * Checks that `args` is an object whose fields have the given types, and
 * returns it typed; throws {@linkcode ArgumentsError} naming the first field
 * that is wrong.
 *
 * @example
 * ```ts
 * import { expectShape } from "@distkit/distkit/net";
 *
 * const args = expectShape<{ key: string; ttl?: number }>({ key: "a" }, { key: "string", ttl: "integer?" });
 * args.key; // "a"
 * ```
 */
export function expectShape<T>(args: unknown, shape: Record<string, FieldType>): T {
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new ArgumentsError(`arguments must be an object, got ${describe(args)}`);
  }
  const record = args as Record<string, unknown>;
  for (const [field, type] of Object.entries(shape)) {
    const optional = type.endsWith("?");
    const base = optional ? type.slice(0, -1) : type;
    const value = Object.hasOwn(record, field) ? record[field] : undefined;
    if (value === undefined) {
      if (optional) continue;
      throw new ArgumentsError(`missing field "${field}" (${base})`);
    }
    if (!fits(value, base)) {
      throw new ArgumentsError(`field "${field}" must be ${base}, got ${describe(value)}`);
    }
  }
  return args as T;
}

function fits(value: unknown, type: string): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "integer":
      return Number.isSafeInteger(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value) &&
        !(value instanceof Uint8Array);
    case "bytes":
      return value instanceof Uint8Array;
    default:
      return true;
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  return typeof value;
}

/**
 * A set of named services. Transports deliver calls of `Service.Method` to it;
 * the same server can be served over the simulated network and over TCP.
 *
 * @example
 * ```ts
 * import { RpcServer } from "@distkit/distkit/net";
 *
 * const server = new RpcServer();
 * server.addService("Echo", { Say: (args: string) => args });
 * await server.dispatch("Echo.Say", "hi"); // "hi"
 * ```
 */
export class RpcServer {
  #services = new Map<string, Map<string, Handler>>();

  /**
   * Registers `methods` under `name`. Own and inherited methods count (so a
   * class instance works), except those of `Object.prototype` and the
   * constructor; they are bound to `methods`.
   *
   * @throws {Error} when the name is taken, empty, or contains a dot.
   */
  addService(name: string, methods: ServiceMethods): void {
    if (name === "" || name.includes(".")) {
      throw new Error(`service name "${name}" must be non-empty and contain no dot`);
    }
    if (this.#services.has(name)) {
      throw new Error(`a service named "${name}" is already registered; remove it first`);
    }
    const table = new Map<string, Handler>();
    for (
      let o: object | null = methods;
      o && o !== Object.prototype;
      o = Object.getPrototypeOf(o)
    ) {
      for (const key of Object.getOwnPropertyNames(o)) {
        const fn = (methods as Record<string, unknown>)[key];
        if (key === "constructor" || table.has(key) || typeof fn !== "function") continue;
        table.set(key, (fn as Handler).bind(methods));
      }
    }
    if (table.size === 0) throw new Error(`service "${name}" has no methods`);
    this.#services.set(name, table);
  }

  /** Unregisters a service; calls to it then fail with `UnknownServiceError`. */
  removeService(name: string): void {
    this.#services.delete(name);
  }

  /** The names of the registered services. */
  get serviceNames(): string[] {
    return [...this.#services.keys()];
  }

  /**
   * Calls the handler for `method` (`Service.Method`) with `args`.
   *
   * @throws {UnknownServiceError} / {UnknownMethodError} when nothing is registered under that name.
   * @throws whatever the handler throws; except that a failure of a call the
   * handler made itself (any `RpcError`) becomes a plain `RemoteError`, so the
   * caller never mistakes it for a failure of its own call (an unknown method
   * of the server it called, a timeout of its own deadline).
   */
  async dispatch(
    method: string,
    args: unknown,
    context: Partial<CallContext> = {},
  ): Promise<unknown> {
    const dot = method.indexOf(".");
    const service = dot < 0 ? method : method.slice(0, dot);
    const table = this.#services.get(service);
    if (table === undefined) throw new UnknownServiceError(method, service);
    const handler = table.get(method.slice(dot + 1));
    if (dot < 0 || handler === undefined) throw new UnknownMethodError(method);
    try {
      return await handler(args, { ...context, method });
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      throw new RemoteError(method, { remoteName: err.name, message: err.message }, { cause: err });
    }
  }
}
