// pico-icons.js IN OUT_DIR: copy Pico CSS with its inline SVG icons (data: URLs) moved into files, so the
// console's CSP (img-src 'self', no data:) lets the browser load them. Run by scripts/build-assets.sh.
"use strict";
const fs = require("fs");
const path = require("path");

const [source, outDir] = process.argv.slice(2);
const css = fs.readFileSync(source, "utf8");
const icons = new Map();
const rewritten = css.replace(/url\("data:image\/svg\+xml,([^"]*)"\)/g, (match, encoded) => {
  if (!icons.has(encoded)) {
    const name = `pico-icon-${icons.size + 1}.svg`;
    icons.set(encoded, name);
    fs.writeFileSync(path.join(outDir, name), decodeURIComponent(encoded));
  }
  return `url("${icons.get(encoded)}")`;
});
if (/url\("?data:/.test(rewritten)) {
  throw new Error("pico.min.css still holds a data: URL this script does not know");
}
fs.writeFileSync(path.join(outDir, "pico.min.css"), rewritten);
console.log(`pico-icons: ${icons.size} icons moved into files`);
