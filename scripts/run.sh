#!/usr/bin/env bash
# The main job: set up, then serve every function target locally on one port (default 8080) with the embedded
# defaults — the bundled example policy and a local verdict store — unless the environment says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SIGWARD_POLICY="${SIGWARD_POLICY:-core/data/example-policy.yaml}"
export SIGWARD_STORE="${SIGWARD_STORE:-sqlite:///$PWD/.sigward/verdicts.db}"
export SIGWARD_INSECURE_REGISTRIES="${SIGWARD_INSECURE_REGISTRIES:-127.0.0.1:5000,localhost:5000}"
export SIGWARD_PRIVATE_REGISTRIES="${SIGWARD_PRIVATE_REGISTRIES:-127.0.0.1,localhost}"
mkdir -p .sigward
exec .venv/bin/sigward serve --port "${PORT:-8080}" "$@"
