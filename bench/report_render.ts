/**
 * The checker's HTML report at scale: renders the report of a generated
 * 100,000-operation key/value history (12 keys, two annotations, one
 * corrupted read, so a failing key too: `reportHistory` of
 * checker/test_util.ts, the one the size test uses), writes it to a
 * temporary file, and opens it in headless Chromium five times, each in a
 * fresh browser, reading over the DevTools protocol the page's first paint
 * and first contentful paint (`performance.getEntriesByType("paint")`), when
 * its script had drawn the overview (the `distkit-report-ready` mark) and
 * the end of its load event. (A browser paints the top of a long page before
 * it has read the rest: the first paint alone does not say the page is
 * usable; the other two do.)
 * Prints the size, the render time, and the medians with their spread.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run --allow-net=127.0.0.1 --allow-env --allow-sys=loadavg bench/report_render.ts [--runs 5] [--chromium PATH] [--file report.html] [--screenshot out.png [--then JS]]
 * ```
 *
 * `--file report.html` measures an existing report instead (the demo's, say).
 * `--screenshot` saves the first run's page (after evaluating `--then`, for
 * example `document.querySelector('#notes a').click()`, which zooms to the
 * first annotation).
 *
 * Needs Chromium (`apt-get install -y chromium`); without it the script says
 * so and exits with 0 after the size and render figures.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { checkOperations, kvModel, renderHtml } from "../checker/mod.ts";
import { reportHistory } from "../checker/test_util.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    chromium: { type: "string", default: "chromium" },
    screenshot: { type: "string" },
    then: { type: "string" },
    file: { type: "string" },
    operations: { type: "string", default: "100000" },
  },
});
const runs = Number(args.values.runs);
const operations = Number(args.values.operations);

interface Paint {
  firstPaint: number;
  firstContentfulPaint: number;
  /** When the page's script had drawn the overview (NaN for reports without the mark). */
  ready: number;
  /** The end of the load event: the whole page parsed, laid out and its scripts run. */
  load: number;
}

/** Renders the report, then measures its first paint. */
async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-report-bench-" });
  let file = `${dir}/report.html`;
  if (args.values.file !== undefined) {
    file = await Deno.realPath(args.values.file);
    console.log(`${file}: ${((await Deno.stat(file)).size / 1e6).toFixed(2)} MB`);
  } else {
    const history = reportHistory({ operations, bad: true });
    const result = checkOperations(kvModel, history);
    const t0 = performance.now();
    const html = renderHtml(result, { model: kvModel, title: `${operations} operations, 12 keys` });
    const renderMs = performance.now() - t0;
    const bytes = new TextEncoder().encode(html).length;
    await Deno.writeTextFile(file, html);
    console.log(
      `report of ${history.length} operations (${result.verdict}): ${
        (bytes / 1e6).toFixed(2)
      } MB, rendered in ${renderMs.toFixed(0)} ms`,
    );
  }

  try {
    const found = await new Deno.Command(args.values.chromium, { args: ["--version"] }).output()
      .then((o) => new TextDecoder().decode(o.stdout).trim()).catch(() => undefined);
    if (found === undefined) {
      console.log(`no ${args.values.chromium} on PATH: first paint not measured`);
    } else {
      console.log(`${found}; load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
      const paints: Paint[] = [];
      for (let k = 0; k < runs; k++) {
        const shot = k === 0 ? args.values.screenshot : undefined;
        const paint = await measure(`file://${file}`, shot);
        paints.push(paint);
        console.log(
          `  run ${k + 1}: first paint ${paint.firstPaint.toFixed(0)} ms, first contentful paint ${
            paint.firstContentfulPaint.toFixed(0)
          } ms, overview drawn ${paint.ready.toFixed(0)} ms, load event end ${
            paint.load.toFixed(0)
          } ms`,
        );
      }
      for (const key of ["firstPaint", "firstContentfulPaint", "ready", "load"] as const) {
        const xs = paints.map((p) => p[key]).sort((a, b) => a - b);
        console.log(
          `${key}: median ${xs[xs.length >> 1].toFixed(0)} ms (${xs[0].toFixed(0)}–${
            xs[xs.length - 1].toFixed(0)
          } ms over ${xs.length} runs)`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens `url` in a fresh headless Chromium and reads the page's paint timings. */
async function measure(url: string, screenshot: string | undefined): Promise<Paint> {
  const profile = await Deno.makeTempDir({ prefix: "distkit-chromium-" });
  const child = new Deno.Command(args.values.chromium, {
    args: [
      "--headless",
      "--disable-gpu",
      "--no-sandbox",
      "--no-first-run",
      "--window-size=1400,1000",
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const endpoint = await devtoolsEndpoint(child.stderr);
    const cdp = await Cdp.open(endpoint);
    try {
      const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
      await cdp.send("Page.enable", {}, sessionId);
      await cdp.send("Runtime.enable", {}, sessionId);
      const thrown: string[] = [];
      cdp.on("Runtime.exceptionThrown", (params) => thrown.push(JSON.stringify(params)));
      const loaded = cdp.once("Page.loadEventFired");
      await cdp.send("Page.navigate", { url }, sessionId);
      await loaded;
      // Paint entries are recorded once the frame is presented: wait for them.
      let entries: { name: string; startTime: number }[] = [];
      for (let tries = 0; tries < 100; tries++) {
        const { result } = await cdp.send("Runtime.evaluate", {
          expression:
            `JSON.stringify([...performance.getEntriesByType("paint"), ...performance.getEntriesByName("distkit-report-ready"), ...performance.getEntriesByType("navigation").map((n) => ({ name: "load", startTime: n.loadEventEnd }))].map((e) => ({ name: e.name, startTime: e.startTime })))`,
          returnByValue: true,
        }, sessionId);
        entries = JSON.parse(result.value);
        if (entries.length >= 4) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (thrown.length > 0) throw new Error(`the page's script threw: ${thrown.join("\n")}`);
      const at = (name: string) => {
        const e = entries.find((x) => x.name === name);
        if (!e) throw new Error(`the page recorded no "${name}" entry: ${JSON.stringify(entries)}`);
        return e.startTime;
      };
      if (screenshot) {
        if (args.values.then) {
          // For instance a click on the first annotation, to see the zoomed time lines.
          await cdp.send("Runtime.evaluate", { expression: args.values.then }, sessionId);
          await new Promise((r) => setTimeout(r, 500));
        }
        if (thrown.length > 0) throw new Error(`the page's script threw: ${thrown.join("\n")}`);
        const { data } = await cdp.send("Page.captureScreenshot", { format: "png" }, sessionId);
        await Deno.writeFile(screenshot, Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
      }
      return {
        firstPaint: at("first-paint"),
        firstContentfulPaint: at("first-contentful-paint"),
        // Reports from before the mark (measured for comparison) have none.
        ready: entries.find((e) => e.name === "distkit-report-ready")?.startTime ?? NaN,
        load: at("load"),
      };
    } finally {
      cdp.close();
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel().catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** Reads Chromium's stderr until it names its DevTools web socket. */
async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => reader.cancel(), 30_000);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`chromium did not open its DevTools port:\n${text}`);
      text += value;
      const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) return m[1];
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
}

/** A minimal Chrome DevTools protocol client over one web socket. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #waiters = new Map<string, (params: unknown) => void>();
  #listeners = new Map<string, (params: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else p?.resolve(msg.result);
      } else if (msg.method) {
        this.#listeners.get(msg.method)?.(msg.params);
        const w = this.#waiters.get(msg.method);
        if (w) {
          this.#waiters.delete(msg.method);
          w(msg.params);
        }
      }
    };
  }

  static open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(new Cdp(ws));
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: unknown, sessionId?: string): Promise<any> {
    const id = this.#next++;
    this.#ws.send(JSON.stringify({ id, method, params, sessionId }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  once(method: string): Promise<unknown> {
    return new Promise((resolve) => this.#waiters.set(method, resolve));
  }

  on(method: string, listener: (params: unknown) => void): void {
    this.#listeners.set(method, listener);
  }

  close(): void {
    this.#ws.close();
  }
}

await main();
