// newman runs in ONE node process (newman loaded once, not once a run): node tests/run_newman.mjs COLLECTION ENVIRONMENT
// reads one run a line on stdin, {"baseUrl", "errorStyle", "report"}, runs the collection with newman's own Node API as
// `newman run` would (the CLI reporter prints it, the JSON reporter writes `report`), then prints the line
// "newman run done: STATUS" (newman's exit status: 1 if a request or an assertion failed). Used by tests/test_postman.py.
import { createRequire } from "node:module";
import readline from "node:readline";

const newman = createRequire(import.meta.url)("newman");
const [collection, environment] = process.argv.slice(2);

for await (const line of readline.createInterface({ input: process.stdin })) {
  const { baseUrl, errorStyle, report } = JSON.parse(line);
  const status = await new Promise((resolve) => newman.run({
    collection, environment, envVar: [{ key: "baseUrl", value: baseUrl }, { key: "errorStyle", value: errorStyle }],
    reporters: ["cli", "json"], reporter: { json: { export: report } }, color: "off", disableUnicode: true,
    timeout: 120000, // a run that hangs ends, and its test fails
  }, (error, summary) => {
    if (error) console.log(`error: ${error.message || error}`);
    resolve(error || summary.run.error || summary.run.failures.length ? 1 : 0);
  }));
  console.log(`newman run done: ${status}`);
}
