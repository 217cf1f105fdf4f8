// puppeteer (used by mermaid-cli, tests/test_diagrams.py) downloads no browser: it drives Debian's chromium,
// whose path tests/render_mermaid.mjs is given (PATH, or $CHROMIUM).
module.exports = { skipDownload: true };
