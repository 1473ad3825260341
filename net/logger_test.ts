import assert from "node:assert/strict";
import { consoleLogger, type LogLevel, silentLogger } from "./logger.ts";

Deno.test("consoleLogger prints records at or above its level, with fields", () => {
  const printed: string[] = [];
  const original = console.error;
  console.error = (line: string) => printed.push(line);
  try {
    const logger = consoleLogger({ level: "warn", prefix: "a: " });
    for (const level of ["debug", "info", "warn", "error"] as LogLevel[]) {
      logger.log(level, "stopped", { node: "a", term: 3, gone: undefined });
    }
  } finally {
    console.error = original;
  }
  assert.deepEqual(printed, [
    'a: warn stopped node="a" term=3',
    'a: error stopped node="a" term=3',
  ]);
});

Deno.test("silentLogger drops records", () => {
  assert.doesNotThrow(() => silentLogger.log("error", "dropped", { x: 1 }));
});
