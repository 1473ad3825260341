import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { appIdentity, AppLoadError, BUILT_IN_APPS } from "./app.ts";

/** SHA-256 of the empty string (FIPS 180-2's test vector). */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Deno.test("mr appIdentity: a built-in is its name", async () => {
  for (const name of BUILT_IN_APPS) {
    assert.deepEqual(await appIdentity(name), { id: `builtin:${name}`, name });
  }
});

Deno.test("mr appIdentity: a module is the SHA-256 of its source, wherever it lies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-app-id-" });
  try {
    const source = "export const map = () => []; export const reduce = () => '';\n";
    await Deno.writeTextFile(`${dir}/mine.ts`, source);
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.writeTextFile(`${dir}/elsewhere/copy.ts`, source);
    await Deno.writeTextFile(`${dir}/edited.ts`, source.replace("''", "'x'"));
    await Deno.writeTextFile(`${dir}/empty.ts`, "");
    const mine = await appIdentity(`${dir}/mine.ts`);
    assert.match(mine.id, /^sha256:[0-9a-f]{64}$/);
    assert.equal(mine.name, `${dir}/mine.ts`);
    // The same bytes by another path or by file: URL: the same app.
    assert.equal((await appIdentity(`${dir}/elsewhere/copy.ts`)).id, mine.id);
    assert.equal((await appIdentity(pathToFileURL(`${dir}/mine.ts`).href)).id, mine.id);
    // Another source: another app.
    assert.notEqual((await appIdentity(`${dir}/edited.ts`)).id, mine.id);
    // A digest of the bytes, not of the name.
    assert.equal((await appIdentity(`${dir}/empty.ts`)).id, `sha256:${EMPTY_SHA256}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mr appIdentity: a URL that is not a file is the URL, not fetched", async () => {
  const url = "https://example.invalid/apps/wc@1.2.ts";
  assert.deepEqual(await appIdentity(url), { id: `url:${url}`, name: url });
});

Deno.test("mr appIdentity: what loadApp refuses, or a file it cannot read, is an AppLoadError", async () => {
  await assert.rejects(appIdentity("nosuchapp"), AppLoadError);
  await assert.rejects(appIdentity("nosuchapp"), /no built-in app of that name/);
  await assert.rejects(
    appIdentity("/nonexistent/dir/app.ts"),
    (err: Error) =>
      err instanceof AppLoadError && /\/nonexistent\/dir\/app\.ts/.test(err.message) &&
      /cannot read it/.test(err.message),
  );
});
