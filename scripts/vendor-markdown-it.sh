#!/usr/bin/env bash
# Rebuilds glm_live/notebook/widgets/static/vendor/markdown-it.js (and its LICENSE file) from the
# pinned markdown-it on npm: one minified IIFE defining a top-level `var markdownit`, because the
# widgets' ES modules are files of static/ concatenated into one module (no imports, no exports).
# linkify-it is replaced by an inert stub (the widgets render with `linkify: false`), which keeps
# the bundle smaller, and entities is taken from its decode module (markdown-it only decodes;
# the encoding tables are 23 KB); everything else markdown-it imports is bundled.
#
# Needs node, npm and esbuild (tests/node's devDependency: `cd tests/node && npm ci`).
# Usage: scripts/vendor-markdown-it.sh   (run from anywhere; the result is reproducible)
set -euo pipefail

VERSION=14.3.3
# markdown-it's dependencies in the bundle, pinned too (its package.json gives ^ ranges)
DEPS="entities@4.5.0 mdurl@2.1.0 uc.micro@2.1.0 punycode.js@2.3.1"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/glm_live/notebook/widgets/static/vendor
ESBUILD=${ESBUILD:-$ROOT/tests/node/node_modules/.bin/esbuild}
[ -x "$ESBUILD" ] || { echo "esbuild not found at $ESBUILD: cd tests/node && npm ci" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --ignore-scripts --save-exact "markdown-it@$VERSION" $DEPS
for dep in $DEPS; do  # each pin is the copy markdown-it uses (not a nested other version)
  [ ! -d "node_modules/markdown-it/node_modules/${dep%@*}" ] ||
    { echo "markdown-it $VERSION does not accept $dep" >&2; exit 1; }
done

cat > entry.mjs <<'JS'
import markdownit from "markdown-it";
export default markdownit;
JS
cat > linkify-stub.mjs <<'JS'
// linkify-it left out of the bundle: the widgets render with `linkify: false`.
export default class LinkifyIt {
  pretest() { return false; }
  test() { return false; }
  testSchemaAt() { return 0; }
  match() { return null; }
  matchAtStart() { return null; }
  tlds() { return this; }
  add() { return this; }
  set() { return this; }
}
JS

"$ESBUILD" entry.mjs --bundle --format=iife --global-name=markdownit --minify \
  --platform=browser --target=es2020 --legal-comments=none --charset=utf8 \
  --alias:linkify-it=./linkify-stub.mjs --alias:entities=entities/lib/decode.js \
  --footer:js='markdownit = markdownit.default;' \
  --metafile=meta.json --log-level=warning --outfile=body.js

# The packages whose code ended up in the bundle, for the licence file.
PKGS=$(node -e '
  const m = require("./meta.json"); const seen = new Set();
  for (const f of Object.keys(m.outputs["body.js"].inputs)) {
    const p = f.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//); if (p) seen.add(p[1]);
  }
  console.log([...seen].sort().join(" "));')

SHA=$(sha256sum body.js | cut -d" " -f1)
{
  echo "// markdown-it $VERSION (https://github.com/markdown-it/markdown-it), MIT licence. Bundled by"
  echo "// scripts/vendor-markdown-it.sh with esbuild $("$ESBUILD" --version) into a minified IIFE defining"
  echo "// \`var markdownit\`: $PKGS (linkify-it stubbed out); licences in markdown-it.LICENSE."
  echo "// sha256 of the lines below this header: $SHA"
  cat body.js
} > "$OUT/markdown-it.js"

{
  echo "static/vendor/markdown-it.js bundles the following packages from npm, under the licences"
  echo "named below (MIT, and BSD-2-Clause for entities); their licence texts follow."
  for p in $PKGS; do
    v=$(node -p "const j = require('./node_modules/$p/package.json'); j.version + ' (' + j.license + ')'")
    lic=$(ls node_modules/"$p"/LICENSE* | head -1)
    printf '\n==== %s %s ====\n\n' "$p" "$v"
    cat "$lic"
  done
} > "$OUT/markdown-it.LICENSE"

echo "wrote $OUT/markdown-it.js ($(wc -c < "$OUT/markdown-it.js") bytes, sha256 of the body $SHA)"
echo "bundled: $PKGS"
