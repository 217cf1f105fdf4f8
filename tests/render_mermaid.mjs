// Render Mermaid diagrams in ONE browser: node tests/render_mermaid.mjs CHROMIUM < [{id, text}, ...] (JSON)
// prints [{id, error}] (error null when the diagram rendered). Used by tests/test_diagrams.py.
import puppeteer from "puppeteer";
import { renderMermaid } from "@mermaid-js/mermaid-cli";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const diagrams = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []; // root cannot use the sandbox
const browser = await puppeteer.launch({ executablePath: process.argv[2], headless: true, args });
const results = [];
try {
  for (const { id, text } of diagrams) {
    try {
      const { data } = await renderMermaid(browser, text, "svg");
      const svg = Buffer.from(data).toString("utf8");
      results.push({ id, error: svg.includes("<svg") ? null : "no SVG came out" });
    } catch (error) {
      results.push({ id, error: String(error && error.message ? error.message : error).split("\n").slice(0, 4).join(" | ") });
    }
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
