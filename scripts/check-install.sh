#!/usr/bin/env bash
# A fresh install of this checkout, as a user makes it, with npm 11 (the npm here) and npm 10 (as
# Node 20 ships it, fetched with npx): it must succeed without touching the network beyond the npm
# registry (onnxruntime-node's CUDA download is skipped: a proxy on a closed port makes any attempt
# fail the install), and on npm 11 neither the install nor `npx swiftformer` may print an npm warning.
#
#   scripts/check-install.sh            (from .ci/run; needs the npm registry, ~1 minute per npm)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
npm10="${NPM10:-10.8.2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Where onnxruntime-node's install script would fetch from (it honours global-agent's proxy variables).
export GLOBAL_AGENT_HTTP_PROXY=http://127.0.0.1:9 GLOBAL_AGENT_HTTPS_PROXY=http://127.0.0.1:9
fail=0

check() { # check <label> <npm command...>
  local label="$1"; shift
  local dir="$work/$label"
  mkdir -p "$dir"
  git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar -cf -) | tar -C "$dir" -xf -
  local log="$dir.log" bad=0
  if ! (cd "$dir" && "$@" ci --no-audit --no-fund) >"$log" 2>&1; then
    echo "check-install: $label: npm ci failed"; tail -20 "$log"; fail=1; return
  fi
  if [ -e "$dir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" ]; then
    echo "check-install: $label: onnxruntime-node downloaded its CUDA libraries"; bad=1
  fi
  (cd "$dir" && "$@" exec -- swiftformer --version) >>"$log" 2>&1 || { echo "check-install: $label: npx swiftformer --version failed"; tail -5 "$log"; bad=1; }
  if [ "$label" = npm11 ] && grep '^npm warn' "$log"; then
    echo "check-install: $label: npm printed the warnings above"; bad=1
  fi
  [ "$bad" = 0 ] && echo "check-install: $label (npm $(cd "$dir" && "$@" --version)): ok"
  fail=$((fail | bad))
}

check npm11 npm
check npm10 npx -y "npm@$npm10"
exit "$fail"
