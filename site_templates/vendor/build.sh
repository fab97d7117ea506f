#!/usr/bin/env bash
# Rebuild hyparquet.bundle.js from the versions pinned in package-lock.json, then record its
# sha256 in bundle.sha256 (tests/test_explorer.py checks the committed bundle against it) and
# copy the bundled packages' licenses into LICENSES/. Needs node and npm (registry access).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
# --ignore-scripts skips esbuild's postinstall; its binary comes from @esbuild/<platform>.
node -e 'require("esbuild").buildSync({entryPoints: ["entry.js"], bundle: true, format: "esm",
  minify: true, legalComments: "none", target: "es2020", outfile: "hyparquet.bundle.js"})'
sha256sum hyparquet.bundle.js > bundle.sha256
mkdir -p LICENSES
for package in hyparquet hyparquet-compressors fzstd hysnappy; do
  version=$(node -p "require('./node_modules/$package/package.json').version")
  cp "node_modules/$package/LICENSE" "LICENSES/$package-$version.txt"
done
rm -rf node_modules
echo "built hyparquet.bundle.js ($(wc -c < hyparquet.bundle.js) bytes)"
