// node tests/render_mermaid.mjs CHROMIUM < ["diagram text", ...] (JSON) prints [error or null, ...]: mermaid.render, as
// mermaid-cli renders, with its Mermaid loaded once into ONE page (mermaid-cli loads it once a diagram).
import { createRequire } from "node:module";
import { text } from "node:stream/consumers";
import puppeteer from "puppeteer";

const texts = JSON.parse(await text(process.stdin));
const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []; // root cannot use the sandbox
const browser = await puppeteer.launch({ executablePath: process.argv[2], headless: true, args });
const page = await browser.newPage();
await page.addScriptTag({ path: createRequire(import.meta.url).resolve("mermaid/dist/mermaid.min.js") });
process.stdout.write(JSON.stringify(await page.evaluate(async (texts) => {
  mermaid.initialize({ startOnLoad: false });
  const errors = [];
  for (const [index, text] of texts.entries()) {
    try {
      await mermaid.render(`diagram-${index}`, text); // throws when the diagram is broken
      errors.push(null);
    } catch (error) {
      errors.push(String(error?.message ?? error).split("\n").slice(0, 4).join(" | "));
    }
  }
  return errors;
}, texts)));
await browser.close();
