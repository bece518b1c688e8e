#!/usr/bin/env bash
# molt's demo on the embedded defaults: local processes, a local Git
# repository, the built-in router. Run it with `make demo`.
set -euo pipefail

BIN=${BIN:?set BIN to the directory holding molt and hello (make demo does)}
PORT=${DEMO_PORT:-18080}
work=$(mktemp -d "${TMPDIR:-/tmp}/molt-demo.XXXXXX")
repo=$work/fleet
state=$work/state
molt() { "$BIN/molt" "$@"; }

cleanup() {
  molt down --yes --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Bold headings only on a terminal, and never with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi
ask() { # five requests through the router
  for _ in 1 2 3 4 5; do curl -fsS "http://127.0.0.1:$PORT/" || echo "(request failed)"; done
}
fleet() { # VERSION [extra env line]
  cat >"$repo/fleet.cue" <<CUE
name: "demo"
services: web: {
	replicas: 3
	process: command: ["$BIN/hello"]
	env: {
		VERSION: "$1"
		${2:-}
	}
	ports: http: 0
	expose: {listen: "127.0.0.1:$PORT", port: "http"}
	health: {interval: "200ms", grace: "2s"}
	rollout: {
		strategy:         "blue-green"
		minHealthyFor:    "1s"
		progressDeadline: "15s"
		keepPrevious:     "10m"
	}
}
CUE
}
commit() { git -C "$repo" add -A && git -C "$repo" commit -qm "$1"; }

step "a fleet repository with v1 (3 instances of a tiny HTTP service)"
git init -q -b main "$repo"
git -C "$repo" config user.email demo@example.com
git -C "$repo" config user.name demo
fleet v1
commit "web v1"
molt validate "$repo"
molt apply --repo "$repo" --state-dir "$state" --log-level warn
ask

step "commit v2 and apply: a blue-green rollout (v2 beside v1, one switch, v1 kept warm)"
fleet v2
commit "web v2"
molt plan --repo "$repo" --state-dir "$state" || true
molt apply --repo "$repo" --state-dir "$state" --log-level warn
ask

step "git revert and apply: v1 is still warm, so traffic switches back at once"
git -C "$repo" revert --no-edit HEAD >/dev/null
molt plan --repo "$repo" --state-dir "$state" || true
molt apply --repo "$repo" --state-dir "$state" --log-level warn
ask

step "commit a broken v3 (its health check fails): molt rolls back by itself"
fleet v3 'FAIL_HEALTH: "1"'
commit "web v3 (broken)"
if molt apply --repo "$repo" --state-dir "$state" --log-level warn; then
  echo "unexpected: v3 converged"; exit 1
fi
echo "(apply exited 1: the rollout failed and was rolled back)"
ask

step "molt down: retire every instance and stop the router"
molt down --yes --state-dir "$state"
