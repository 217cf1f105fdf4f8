// node tests/render_mermaid.mjs CHROMIUM < ["diagram text", ...] (JSON) prints [error or null, ...]: each diagram
// rendered to SVG by mermaid.render, as mermaid-cli renders it, with the Mermaid mermaid-cli installs (package.json),
// loaded once into ONE page (mermaid-cli loads it once a diagram). Used by tests/test_diagrams.py.
import { createRequire } from "node:module";
import puppeteer from "puppeteer";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const texts = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []; // root cannot use the sandbox
const browser = await puppeteer.launch({ executablePath: process.argv[2], headless: true, args });
try {
  const page = await browser.newPage();
  await page.addScriptTag({ path: createRequire(import.meta.url).resolve("mermaid/dist/mermaid.min.js") });
  process.stdout.write(JSON.stringify(await page.evaluate(async (texts) => {
    mermaid.initialize({ startOnLoad: false });
    const errors = [];
    for (const [index, text] of texts.entries()) {
      try {
        const { svg } = await mermaid.render(`diagram-${index}`, text); // throws when the diagram is broken
        errors.push(svg.includes("<svg") ? null : "no SVG came out");
      } catch (error) {
        errors.push(String(error?.message ?? error).split("\n").slice(0, 4).join(" | "));
      }
    }
    return errors;
  }, texts)));
} finally {
  await browser.close();
}
