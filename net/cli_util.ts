/**
 * Helpers shared by the `distkit` subcommands: argument parsing that prints
 * the usage on a mistake, the shared secret's sources, waiting for a
 * shutdown signal.
 *
 * @module
 */
import { parseArgs } from "node:util";

/**
 * A mistake in a command's arguments, thrown from deep in a command and
 * turned by it into its usage text and exit code 2.
 */
export class UsageProblem extends Error {}

/** Exactly `n` operands, or a {@linkcode UsageProblem} that says what was expected. */
export function operands(positionals: string[], n: number, what: string): string[] {
  if (positionals.length !== n) throw new UsageProblem(`expected ${what}`);
  return positionals;
}

/** A command as `cli.ts` runs it. */
export interface CliCommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

/** Parses `args`, printing the problem and the usage on a mistake (then returns undefined). */
export function parseCommandArgs<
  T extends Record<string, { type: "string" | "boolean"; multiple?: boolean }>,
>(
  name: string,
  command: CliCommand,
  args: string[],
  options: T,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } | undefined {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    console.error(`distkit ${name}: ${(err as Error).message}\n\n${command.usage}`);
    return undefined;
  }
}

export function usageError(name: string, command: CliCommand, problem: string): number {
  console.error(`distkit ${name}: ${problem}\n\n${command.usage}`);
  return 2;
}

export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      Deno.removeSignalListener("SIGINT", done);
      Deno.removeSignalListener("SIGTERM", done);
      resolve();
    };
    Deno.addSignalListener("SIGINT", done);
    Deno.addSignalListener("SIGTERM", done);
  });
}

/**
 * The shared secret: from --secret-file, else from DISTKIT_SECRET when the
 * environment may be read (--allow-env). Never from the command line, where
 * other users could see it.
 */
export function secretFrom(file: string | boolean | undefined, warn = false): string | undefined {
  if (typeof file === "string") {
    const secret = Deno.readTextFileSync(file).trim();
    if (secret === "") throw new Error(`the secret file ${file} is empty`);
    return secret;
  }
  const env = Deno.permissions.querySync({ name: "env", variable: "DISTKIT_SECRET" });
  if (env.state !== "granted") {
    if (!warn) return undefined;
    console.error(
      "note: DISTKIT_SECRET cannot be read without --allow-env=DISTKIT_SECRET; going on without a secret",
    );
    return undefined;
  }
  return Deno.env.get("DISTKIT_SECRET")?.trim() || undefined;
}

export const ACCESS_HELP =
  `  --cluster-id <id>        the cluster's id; nodes refuse peers and clients of another (default "")
  --secret-file <file>     a shared secret to prove (default: DISTKIT_SECRET, if --allow-env lets us read it)`;

export function count(text: string | boolean | undefined, what: string): number | undefined {
  if (text === undefined || typeof text === "boolean") return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new RangeError(`${what} must be a number >= 0, got ${text}`);
  }
  return n;
}
