#!/usr/bin/env bash
# google/cel-spec's conformance tests (tests/conformance/): the npm package @bufbuild/cel-spec (cel-es's copy of
# cel-spec's tests/simple/testdata as SimpleTest protobuf JSON, and the TestAllTypes protos, inside JavaScript
# modules) at a pinned version and integrity, rendered once by scripts/cel-spec-extract.js to
# .cache/cel-spec/VERSION/conformance.json. Nothing of it is committed. Re-running is free.
set -euo pipefail
cd "$(dirname "$0")/.."

CEL_SPEC_VERSION=0.6.1
CEL_SPEC_INTEGRITY=sha512-m0Ac9qA669yxxC0Hy45qGsUZemjImVfxPl6r9jLbkJviEvv3R9hSYyH2ItGRbDguekX6eId0cb62ulNBK97ezg==
out=.cache/cel-spec/$CEL_SPEC_VERSION/conformance.json
[ -f "$out" ] && exit 0

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing nodejs npm (for the CEL conformance data)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: please install nodejs and npm (the CEL conformance tests read their data with them)" >&2
    exit 1
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup: fetching @bufbuild/cel-spec@$CEL_SPEC_VERSION (CEL conformance data)"
tarball=$(cd "$tmp" && npm pack --silent "@bufbuild/cel-spec@$CEL_SPEC_VERSION" | tail -1)
got=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tmp/$tarball")
if [ "$got" != "$CEL_SPEC_INTEGRITY" ]; then
  echo "setup: @bufbuild/cel-spec@$CEL_SPEC_VERSION does not match its pinned integrity" >&2
  exit 1
fi
tar -xzf "$tmp/$tarball" -C "$tmp"
mkdir -p "$(dirname "$out")"
node scripts/cel-spec-extract.js "$tmp/package" >"$tmp/conformance.json"
mv "$tmp/conformance.json" "$out"
