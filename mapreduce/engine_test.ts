import assert from "node:assert/strict";
import {
  AppLoadError,
  compareKeys,
  type KeyValue,
  loadApp,
  type MapReduceApp,
  partitionOf,
} from "./app.ts";
import { countWords, mapStream as wcMapStream, WordCounter, words } from "./apps/wc.ts";
import {
  Grouper,
  outputName,
  readInput,
  readPieces,
  runMap,
  runReduce,
  runSequential,
  splitInputs,
  writeAtomically,
} from "./engine.ts";
import {
  DamagedFileError,
  encodeIntermediate,
  intermediateName,
  readSection,
} from "./intermediate.ts";

Deno.test("mr partitionOf: the course's ihash (FNV-1a, 31 bits) modulo nReduce", () => {
  assert.equal(partitionOf("hello", 10), 1335831723 % 10);
  assert.equal(partitionOf("hello", 1_000_000_000), 1335831723 % 1_000_000_000);
  // Non-ASCII keys hash their UTF-8 bytes.
  const bytes = new TextEncoder().encode("héllo");
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  assert.equal(partitionOf("héllo", 97), ((h >>> 0) & 0x7fffffff) % 97);
});

Deno.test("mr compareKeys: UTF-8 byte order (code points), not UTF-16 units", () => {
  const keys = ["b", "a", "B", "\u{1F600}", "\uFFFD", "ab", ""];
  const sorted = [...keys].sort(compareKeys);
  const byBytes = [...keys].sort((x, y) => {
    const a = new TextEncoder().encode(x);
    const b = new TextEncoder().encode(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  });
  assert.deepEqual(sorted, byBytes);
  assert.ok(compareKeys("\uFFFD", "\u{1F600}") < 0, "U+FFFD sorts before U+1F600 in UTF-8");
});

Deno.test("mr words and countWords: maximal runs of Unicode letters", () => {
  const text = "It's 2 o'clock — déjà vu!\nΣοφία and 𝒜lpha x";
  const out: string[] = [];
  words(text, (w) => out.push(w));
  assert.deepEqual(out, ["It", "s", "o", "clock", "déjà", "vu", "Σοφία", "and", "𝒜lpha", "x"]);
  const counts = countWords("the cat the hat THE the");
  assert.deepEqual([...counts].sort(), [["THE", 1], ["cat", 1], ["hat", 1], ["the", 3]]);
  // Many distinct words make the table grow; counts stay right.
  const many = Array.from({ length: 20_000 }, (_, i) => `w${"abcdefghij"[i % 10]}${i.toString(26)}`)
    .map((w) => w.replace(/[0-9]/g, (d) => "klmnopqrst"[Number(d)]));
  const big = countWords([...many, ...many].join(" "));
  assert.equal(big.size, new Set(many).size);
  for (const n of big.values()) assert.ok(n % 2 === 0);
});

Deno.test("mr splitInputs: large files cut after line ends; the chunks make the file", async () => {
  const dir = await Deno.makeTempDir();
  const lines = Array.from({ length: 500 }, (_, i) => `line ${i} ${"x".repeat(i % 37)}`);
  const file = `${dir}/big.txt`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/small.txt`, "tiny\n");
  await Deno.writeTextFile(`${dir}/empty.txt`, "");
  const tasks = await splitInputs([file, `${dir}/small.txt`, `${dir}/empty.txt`], {
    chunkBytes: 1000,
  });
  const bigTasks = tasks.filter((t) => t.file === file);
  assert.ok(bigTasks.length > 5, `${bigTasks.length} chunks`);
  assert.deepEqual(tasks.map((t) => t.id), tasks.map((_, i) => i));
  let joined = "";
  for (const t of bigTasks) {
    const text = await readInput(t);
    assert.ok(text.endsWith("\n"), "a chunk ends at a line end");
    joined += text;
  }
  assert.equal(joined, await Deno.readTextFile(file));
  assert.equal(tasks.filter((t) => t.file.endsWith("empty.txt")).length, 1);
  await assert.rejects(splitInputs([`${dir}/missing.txt`]), /input .*missing.txt/);
  await assert.rejects(splitInputs([dir]), /not a regular file/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr readPieces: whole lines in order, the same text as readInput, file closed early", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  // A byte-order mark, multi-byte characters, a line longer than a piece, no final newline.
  const text = "\uFEFFdéjà vu\n" + "Σοφία 𝒜lpha\n".repeat(40) + "x".repeat(300) + "\nlast";
  await Deno.writeTextFile(file, text);
  const tasks = await splitInputs([file], { chunkBytes: 200 });
  assert.ok(tasks.length > 2);
  let whole = "";
  for (const task of tasks) {
    const pieces: string[] = [];
    for await (const piece of readPieces(task, { pieceBytes: 64 })) pieces.push(piece);
    assert.equal(pieces.join(""), await readInput(task), `task ${task.id}`);
    for (const piece of pieces.slice(0, -1)) assert.ok(piece.endsWith("\n"), "cut at line ends");
    assert.ok(
      pieces.every((p) =>
        new TextEncoder().encode(p).length <= 64 || !p.slice(0, -1).includes("\n")
      ),
      "a piece over the size is one long line",
    );
    whole += pieces.join("");
  }
  assert.equal(whole, text.slice(1), "the byte-order mark dropped at the file's start only");
  // Stopping early closes the file (the op and resource sanitizers would fail the test otherwise).
  for await (const _ of readPieces(tasks[0], { pieceBytes: 16 })) break;
  // A U+FEFF that starts a later piece is text, kept (only the file's first is a byte-order mark).
  await Deno.writeTextFile(file, "a\n\uFEFFb\n");
  const [small] = await splitInputs([file]);
  const pieces: string[] = [];
  for await (const piece of readPieces(small, { pieceBytes: 2 })) pieces.push(piece);
  assert.deepEqual(pieces, ["a\n", "\uFEFFb\n"]);
  assert.equal(await readInput(small), "a\n\uFEFFb\n");
  await assert.rejects(readPieces(small, { pieceBytes: 0 }).next(), RangeError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr mapStream: used instead of map when an app has it; same counts as map", async () => {
  const dir = await Deno.makeTempDir();
  const lines = Array.from({ length: 3000 }, (_, i) => `w${i % 97} común ${"ab".repeat(i % 20)}`);
  await Deno.writeTextFile(`${dir}/in.txt`, lines.join("\n") + "\n");
  const [task] = await splitInputs([`${dir}/in.txt`]);
  const text = await readInput(task);
  async function* chunks() {
    for (let i = 0; i < lines.length; i += 100) yield lines.slice(i, i + 100).join("\n") + "\n";
  }
  const byStream = new Map(await wcMapStream(task.file, chunks()));
  assert.deepEqual(byStream, new Map([...countWords(text)].map(([w, n]) => [w, String(n)])));
  // The engine calls mapStream, not map.
  let streamed = 0;
  const app: MapReduceApp = {
    map: () => {
      throw new Error("map called");
    },
    mapStream: async (_file, pieces) => {
      for await (const _ of pieces) streamed++;
      return [["k", "v"]];
    },
    reduce: (_k, vs) => vs.join(","),
  };
  await runMap(app, task, { dir, nReduce: 1 });
  assert.equal(streamed, 1, "one piece for a small input");
  assert.deepEqual(readSection(intermediateName(dir, task.id), 0), ["k", "v"]);
  // An app that stops reading early leaves no file open.
  await runMap({ ...app, mapStream: () => [["k", "v"]] }, task, { dir, nReduce: 1 });
  await assert.rejects(
    runMap({ ...app, mapStream: () => 5 as never }, task, { dir, nReduce: 1 }),
    /mapStream\(".*in.txt"\) returned number/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr WordCounter: counts across texts; a long new word is kept whole", () => {
  const counter = new WordCounter().add("alpha beta\n").add("beta gamma\n");
  assert.deepEqual([...counter.counts()].sort(), [["alpha", 1], ["beta", 2], ["gamma", 1]]);
  assert.equal(counter.size, 3);
  const long = "x".repeat(40);
  const key = new WordCounter().add(`a ${long} b`).pairs().find(([w]) => w.length === 40)!;
  assert.equal(key[0], long);
});

Deno.test("mr Grouper: folds with combine as values come, keys in byte order", () => {
  const sum = (_k: string, vs: string[]) => String(vs.reduce((n, v) => n + Number(v), 0));
  const g = new Grouper(sum);
  for (let i = 0; i < 1000; i++) g.add("b", "1");
  g.add("a", "2");
  const sorted = g.sortedKeys().map((k) => [k, g.valuesOf(k)] as const);
  assert.deepEqual(sorted.map(([k]) => k), ["a", "b"]);
  assert.ok(sorted[1][1].length < 64, "frequent key folded");
  assert.equal(sum("b", sorted[1][1]), "1000");
});

Deno.test("mr Grouper: keys beyond U+FFFF sort in UTF-8 byte order too", () => {
  const g = new Grouper();
  const keys = ["b", "\u{1F600}", "\uFFFD", "a", "\uE000x", "\u{10000}", "B"];
  for (const k of keys) g.add(k, "1");
  g.add("a", "2");
  assert.deepEqual(g.sortedKeys(), [...keys].sort(compareKeys));
  assert.deepEqual(g.valuesOf("a"), ["1", "2"]);
  assert.deepEqual(g.valuesOf("absent"), []);
  // A surrogate in a key far down the list (past the first test's keys) is seen too.
  const many = new Grouper();
  const manyKeys = [...Array.from({ length: 3000 }, (_, i) => `k${i}`), "\u{1F600}", "\uFFFD"];
  for (const k of manyKeys) many.add(k, "1");
  assert.deepEqual(many.sortedKeys(), [...manyKeys].sort(compareKeys));
  assert.ok(many.sortedKeys().indexOf("\uFFFD") < many.sortedKeys().indexOf("\u{1F600}"));
  // Without surrogates, the same order as compareKeys as well.
  const plain = new Grouper();
  for (const k of ["b", "\uFFFD", "a", "é", "B", ""]) plain.add(k, "1");
  assert.deepEqual(plain.sortedKeys(), ["b", "\uFFFD", "a", "é", "B", ""].sort(compareKeys));
});

Deno.test("mr runMap: combine folds repeated keys; without combine every value is kept", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "x\n");
  const [task] = await splitInputs([`${dir}/in.txt`]);
  const pairs: KeyValue[] = [["a", "1"], ["b", "1"], ["a", "1"], ["a", "1"]];
  const sum = (_k: string, vs: string[]) => String(vs.reduce((n, v) => n + Number(v), 0));
  const read = () => readSection(intermediateName(dir, 0), 0);
  await runMap({ map: () => pairs, reduce: sum, combine: sum }, task, { dir, nReduce: 1 });
  assert.deepEqual(read(), ["a", "3", "b", "1"]);
  await runMap({ map: () => pairs, reduce: sum }, task, { dir, nReduce: 1 });
  assert.deepEqual(read(), ["a", "1", "b", "1", "a", "1", "a", "1"]);
  // Distinct keys (wc's case) are written as they came, with or without combine.
  const distinct: KeyValue[] = Array.from({ length: 500 }, (_, i) => [`k${i}`, String(i)]);
  await runMap({ map: () => distinct, reduce: sum, combine: sum }, task, { dir, nReduce: 1 });
  assert.deepEqual(read(), distinct.flat());
  // Any string survives the file: line ends, quotes, lone and paired surrogates.
  const odd: KeyValue[] = [["a\nb", '"q"'], ["\uD800", "\\"], ["é", "\u{1F600}"], ["", ""]];
  await runMap({ map: () => odd, reduce: sum }, task, { dir, nReduce: 1 });
  assert.deepEqual(read(), odd.flat());
  // A generator's pairs (not an array) are taken too.
  await runMap(
    {
      map: function* () {
        yield ["g", "1"] as KeyValue;
        yield ["g", "2"] as KeyValue;
      },
      reduce: sum,
      combine: sum,
    },
    task,
    { dir, nReduce: 1 },
  );
  assert.deepEqual(read(), ["g", "3"]);
  // And partitioned by partitionOf.
  await runMap({ map: () => distinct, reduce: sum }, task, { dir, nReduce: 4 });
  for (let r = 0; r < 4; r++) {
    const flat = readSection(intermediateName(dir, 0), r);
    for (let i = 0; i < flat.length; i += 2) assert.equal(partitionOf(flat[i], 4), r);
  }
  await Deno.remove(dir, { recursive: true });
});

function concat(pieces: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

Deno.test("mr runReduce: an async reduce is awaited; a damaged file is named", async () => {
  const dir = await Deno.makeTempDir();
  await writeAtomically(intermediateName(dir, 0), encodeIntermediate([["k", "1", "j", "2"]]));
  await writeAtomically(intermediateName(dir, 1), encodeIntermediate([["k", "3"]]));
  const app: MapReduceApp = {
    map: () => [],
    reduce: (_k, vs) => Promise.resolve(vs.join("+")),
  };
  await runReduce(app, { r: 0, nMap: 2, dir });
  assert.equal(await Deno.readTextFile(outputName(dir, 0)), "j 2\nk 1+3\n");
  // A reduce task past the file's sections, or a damaged file: named, with what is wrong.
  await assert.rejects(
    runReduce(app, { r: 1, nMap: 2, dir }),
    /mr-0 is damaged: it has 1 sections/,
  );
  const good = concat(encodeIntermediate([["k", "3"], []]));
  const text = new TextDecoder().decode(good);
  const damaged: [string, Uint8Array | string][] = [
    ["another format", '["k","3"]\n'],
    ["empty", ""],
    ["cut short", good.subarray(0, good.length - 5)],
    ["a bad offset", text.replace("000000000000064", "00000000000006x")],
    ["offsets out of order", text.replace("000000000000064", "000000000000074")],
    ...['["k"]', '{"k":"v"}', '["k",1]', "[1,2]", '["k","v"'].map((section) =>
      [`section ${section}`, text.replace('["k","3"]', section.padEnd(9))] as [string, string]
    ),
  ];
  for (const [what, bytes] of damaged) {
    await Deno.writeFile(
      intermediateName(dir, 1),
      typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes,
    );
    await assert.rejects(runReduce(app, { r: 0, nMap: 2, dir }), DamagedFileError, what);
    await assert.rejects(runReduce(app, { r: 0, nMap: 2, dir }), /mr-1 is damaged/, what);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr runMap/runReduce: partitioned files, no temporaries left, same as sequential", async () => {
  const dir = await Deno.makeTempDir();
  const files = [`${dir}/a.txt`, `${dir}/b.txt`];
  await Deno.writeTextFile(files[0], "one two two\nthree\n");
  await Deno.writeTextFile(files[1], "two three three\n");
  const wc = await loadApp("wc");
  const tasks = await splitInputs(files);
  for (const t of tasks) await runMap(wc, t, { dir, nReduce: 3 });
  for (let r = 0; r < 3; r++) await runReduce(wc, { r, nMap: tasks.length, dir });
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  assert.ok(!names.some((n) => n.startsWith(".mr-tmp-")), "no temporary file left");
  for (let m = 0; m < 2; m++) {
    for (let r = 0; r < 3; r++) readSection(intermediateName(dir, m), r);
  }
  let out = "";
  for (let r = 0; r < 3; r++) out += await Deno.readTextFile(outputName(dir, r));
  const seqDir = await Deno.makeTempDir();
  await runSequential(wc, files, { dir: seqDir });
  const sorted = (s: string) => s.split("\n").filter((l) => l).sort();
  assert.deepEqual(sorted(out), sorted(await Deno.readTextFile(outputName(seqDir, 0))));
  assert.deepEqual(sorted(out), ["one 1", "three 3", "two 3"]);
  // A damaged intermediate file is named in the error.
  await Deno.writeTextFile(intermediateName(dir, 0), "not json\n");
  await assert.rejects(runReduce(wc, { r: 0, nMap: 2, dir }), /mr-0 is damaged/);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(seqDir, { recursive: true });
});

Deno.test("mr writeAtomically: whole files, readable by all, replacing the old, no temporaries", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/mr-out-0`;
  await writeAtomically(path, "old\n");
  await writeAtomically(path, "new\n");
  assert.equal(await Deno.readTextFile(path), "new\n");
  // Bytes, and pieces of bytes written in order.
  await writeAtomically(path, new TextEncoder().encode("bytes\n"));
  assert.equal(await Deno.readTextFile(path), "bytes\n");
  const pieces = ["a", "", "bc\n"].map((p) => new TextEncoder().encode(p));
  await writeAtomically(path, pieces);
  assert.equal(await Deno.readTextFile(path), "abc\n");
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
  // A folder that is not there: the error says so, and nothing is left behind.
  await assert.rejects(writeAtomically(`${dir}/gone/mr-out-1`, "x"), Deno.errors.NotFound);
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  assert.deepEqual(names, ["mr-out-0"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr apps: bad results from map or reduce are clear errors", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "x\n");
  const [task] = await splitInputs([`${dir}/in.txt`]);
  const bad = (app: Partial<MapReduceApp>) => ({ map: () => [], reduce: () => "", ...app });
  await assert.rejects(
    runMap(bad({ map: () => 42 as never }), task, { dir, nReduce: 1 }),
    /returned number, not a list/,
  );
  await assert.rejects(
    runMap(bad({ map: () => [["k", 1]] as never }), task, { dir, nReduce: 1 }),
    /emitted \["k",1\], not \[key, value\] strings/,
  );
  await runMap(bad({ map: () => [["k", "v"]] }), task, { dir, nReduce: 1 });
  await assert.rejects(
    runReduce(bad({ reduce: () => 7 as never }), { r: 0, nMap: 1, dir }),
    /reduce\("k"\) returned number/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mr loadApp: built-ins, modules by path, and clear errors", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/good.ts`,
    "export const map = () => []; export const reduce = () => '';",
  );
  await Deno.writeTextFile(`${dir}/nomap.ts`, "export const reduce = () => '';");
  await Deno.writeTextFile(`${dir}/broken.ts`, "export const map = (;");
  assert.equal(typeof (await loadApp(`${dir}/good.ts`)).map, "function");
  await assert.rejects(loadApp("nosuchapp"), AppLoadError);
  await assert.rejects(loadApp(`${dir}/nomap.ts`), /does not export a map function/);
  await assert.rejects(loadApp(`${dir}/broken.ts`), AppLoadError);
  await assert.rejects(loadApp(`${dir}/missing.ts`), AppLoadError);
  await Deno.remove(dir, { recursive: true });
});
