/**
 * The package's configuration: every entry point is doc-linted on its own
 * (a JSR user reads each page alone), and compiled binaries and the sample
 * data stay out of git and out of the package.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
  exports: Record<string, string>;
  tasks: Record<string, string>;
  publish: { exclude: string[] };
};

Deno.test("package: doc-lint lints every entry point alone", () => {
  const runs = config.tasks["doc-lint"].split("&&").map((s) => s.trim());
  for (const file of Object.values(config.exports)) {
    const path = file.replace(/^\.\//, "");
    assert.ok(runs.includes(`deno doc --lint ${path}`), `${path} is not linted on its own`);
  }
  for (const run of runs) assert.match(run, /^deno doc --lint \S+$/, "one entry point per run");
});

Deno.test("package: compiled binaries and samples stay out of git and the package", async () => {
  const ignored = (await Deno.readTextFile(new URL(".gitignore", root))).split("\n");
  for (const binary of ["distkit", "distkit-mr-worker"]) {
    assert.ok(ignored.includes(`/${binary}`), `${binary} is not git-ignored`);
    assert.ok(config.publish.exclude.includes(binary), `${binary} is not kept out of the package`);
    const output = config.tasks[binary === "distkit" ? "compile" : "compile:worker"];
    assert.match(output, new RegExp(`--output ${binary} `), `the task builds ${binary}`);
  }
  assert.ok(config.publish.exclude.includes("samples/"), "samples/ is published");
});
