#!/usr/bin/env bash
# Regenerates gen/ from proto/ and fails if that changes anything: gen/ is committed
# and must be exactly what `npm run generate` produces.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent generate
drift=$(git status --porcelain -- gen)
if [ -n "$drift" ]; then
  echo "gen/ is out of date with proto/ (run npm run generate and commit):" >&2
  echo "$drift" >&2
  git --no-pager diff --stat -- gen >&2
  exit 1
fi
echo "gen/ matches proto/"
