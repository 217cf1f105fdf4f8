// Render Mermaid diagrams in ONE Chromium page: node tests/render_mermaid.mjs CHROMIUM < [{id, text}, ...] (JSON)
// prints [{id, error}] (error null when the diagram rendered). Used by tests/test_diagrams.py. Mermaid is the version
// mermaid-cli installs (package.json), loaded once into the page (not once a diagram, as mermaid-cli's renderMermaid
// does), and each diagram rendered to SVG by mermaid.render, as mermaid-cli renders it.
import { createRequire } from "node:module";
import puppeteer from "puppeteer";

const require = createRequire(import.meta.url);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const diagrams = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []; // root cannot use the sandbox
const browser = await puppeteer.launch({ executablePath: process.argv[2], headless: true, args });
let results;
try {
  const page = await browser.newPage();
  await page.addScriptTag({ path: require.resolve("mermaid/dist/mermaid.min.js") });
  results = await page.evaluate(async (diagrams) => {
    mermaid.initialize({ startOnLoad: false });
    const results = [];
    for (const [index, { id, text }] of diagrams.entries()) {
      try {
        const { svg } = await mermaid.render(`diagram-${index}`, text); // throws when the diagram is broken
        results.push({ id, error: svg.includes("<svg") ? null : "no SVG came out" });
      } catch (error) {
        results.push({ id, error: String(error && error.message ? error.message : error).split("\n").slice(0, 4).join(" | ") });
      }
    }
    return results;
  }, diagrams);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
