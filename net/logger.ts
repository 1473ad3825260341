/**
 * Where the library says what it has to say. distkit never writes to the
 * console itself: every component that reports something (a node that
 * stops, a replica that refuses work, a refused handshake) takes a
 * {@linkcode Logger} option, and the command line passes one that prints.
 *
 * @module
 */

/** How much a logger is told: each level includes the ones after it. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields of a log record: plain values a log shipper can index. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/**
 * A sink for log records. Implement it to route distkit's records into your
 * own logging; {@linkcode consoleLogger} prints them, {@linkcode silentLogger}
 * drops them.
 *
 * @example
 * ```ts
 * import type { Logger } from "@distkit/distkit/net";
 *
 * const lines: string[] = [];
 * const logger: Logger = {
 *   log(level, message, fields) {
 *     lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
 *   },
 * };
 * logger.log("warn", "replica stopped", { node: "a" });
 * ```
 */
export interface Logger {
  /** Records one event. Must not throw; must return quickly. */
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A logger that drops everything: the default wherever a `logger` option is
 * not given, so a library never prints unasked.
 *
 * @example
 * ```ts
 * import { silentLogger } from "@distkit/distkit/net";
 *
 * silentLogger.log("error", "nobody hears this");
 * ```
 */
export const silentLogger: Logger = Object.freeze({ log() {} });

/** Options of {@linkcode consoleLogger}. */
export interface ConsoleLoggerOptions {
  /** The least severe level printed. Default `"info"`. */
  level?: LogLevel;
  /** Printed before every line, e.g. the node's name. */
  prefix?: string;
}

/**
 * A logger that prints one line per record to standard error, at or above
 * `level`: `warn replica stopped node=a`.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "@distkit/distkit/net";
 *
 * const logger = consoleLogger({ level: "warn", prefix: "node a: " });
 * logger.log("info", "not printed");
 * ```
 */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const least = RANK[options.level ?? "info"];
  const prefix = options.prefix ?? "";
  return {
    log(level, message, fields) {
      if (RANK[level] < least) return;
      let line = `${prefix}${level} ${message}`;
      for (const [key, value] of Object.entries(fields ?? {})) {
        if (value !== undefined) {
          line += ` ${key}=${typeof value === "string" ? JSON.stringify(value) : value}`;
        }
      }
      console.error(line);
    },
  };
}
