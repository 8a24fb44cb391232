#!/usr/bin/env bash
# Blue/green switch of LogLens behind nginx, with no failed request:
#   1. find the active slot (the "# active:" line of the upstream file) and the idle one;
#   2. prepare the idle slot (optional hook: e.g. seed its data directory from a backup of the active one);
#   3. start the idle slot and wait until its /readyz answers 200;
#   4. rewrite the upstream file to the idle slot (atomically) and reload nginx gracefully:
#      old workers finish the requests they hold, new ones go to the new slot;
#   5. wait for the drain period, then stop the old slot.
# If the new slot never becomes ready, or the reload fails, the upstream file is put back,
# the new slot is stopped, and nothing changed for clients.
#
# Every step is a command from the environment, so the same script drives Docker Compose
# (the defaults) or plain processes on a VM or in a test. Commands run with `sh -c` and see
# SLOT (the slot being acted on), FROM_SLOT (the active one) and TO_SLOT (the idle one).
#
#   LOGLENS_BG_UPSTREAM        upstream file nginx includes       [deploy/nginx/upstream.conf]
#   LOGLENS_BG_BLUE_UPSTREAM   blue's address as nginx sees it    [loglens-blue:8080]
#   LOGLENS_BG_GREEN_UPSTREAM  green's address as nginx sees it   [loglens-green:8080]
#   LOGLENS_BG_BLUE_URL        blue's URL from here, for /readyz  [http://127.0.0.1:8081]
#   LOGLENS_BG_GREEN_URL       green's URL from here              [http://127.0.0.1:8082]
#   LOGLENS_BG_PREPARE_CMD     run before starting the idle slot  [deploy/handover.sh in loglens-admin]
#   LOGLENS_BG_START_CMD       start slot $SLOT                   [docker compose up -d loglens-$SLOT]
#   LOGLENS_BG_STOP_CMD        stop slot $SLOT (gracefully)       [docker compose stop loglens-$SLOT]
#   LOGLENS_BG_RELOAD_CMD      check and reload nginx             [docker compose exec nginx nginx -t && ... -s reload]
#   LOGLENS_BG_READY_TIMEOUT   seconds to wait for /readyz        [120]
#   LOGLENS_BG_DRAIN_SECONDS   seconds between reload and stop    [10]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
compose="docker compose -f $here/compose.yaml"
upstream="${LOGLENS_BG_UPSTREAM:-$here/nginx/upstream.conf}"
blue_upstream="${LOGLENS_BG_BLUE_UPSTREAM:-loglens-blue:8080}"
green_upstream="${LOGLENS_BG_GREEN_UPSTREAM:-loglens-green:8080}"
blue_url="${LOGLENS_BG_BLUE_URL:-http://127.0.0.1:8081}"
green_url="${LOGLENS_BG_GREEN_URL:-http://127.0.0.1:8082}"
# Set to an empty string for no prepare step.
prepare_cmd="${LOGLENS_BG_PREPARE_CMD-$compose run --rm -T -e FROM_DATA=/slots/\$FROM_SLOT/current \
-e TO_DATA=/slots/\$TO_SLOT/current loglens-admin loglens-handover}"
start_cmd="${LOGLENS_BG_START_CMD:-$compose up -d loglens-\$SLOT}"
stop_cmd="${LOGLENS_BG_STOP_CMD:-$compose stop -t 30 loglens-\$SLOT}"
reload_cmd="${LOGLENS_BG_RELOAD_CMD:-$compose exec -T nginx sh -c 'nginx -t && nginx -s reload'}"
ready_timeout="${LOGLENS_BG_READY_TIMEOUT:-120}"
drain_seconds="${LOGLENS_BG_DRAIN_SECONDS:-10}"

say() { printf 'bluegreen: %s\n' "$*" >&2; }

active="$(sed -n 's/^# active: *\([a-z]*\).*/\1/p' "$upstream" | head -n 1)"
case "$active" in
  blue) idle=green; idle_upstream="$green_upstream"; idle_url="$green_url" ;;
  green) idle=blue; idle_upstream="$blue_upstream"; idle_url="$blue_url" ;;
  *) say "no '# active: blue|green' line in $upstream"; exit 2 ;;
esac
export FROM_SLOT="$active" TO_SLOT="$idle"

run() {  # run SLOT COMMAND
  SLOT="$1" sh -c "$2"
}

ready() {  # HTTP 200 from URL/readyz, with curl or python3, whichever is here
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1/readyz" || true)" = "200" ]
  else
    python3 - "$1/readyz" <<'PY'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
  fi
}

say "active slot: $active; switching to $idle"
if [ -n "$prepare_cmd" ]; then
  say "preparing $idle"
  run "$idle" "$prepare_cmd"
fi

say "starting $idle"
run "$idle" "$start_cmd"
deadline=$(( $(date +%s) + ready_timeout ))
until ready "$idle_url"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "$idle did not become ready at $idle_url/readyz within ${ready_timeout}s; stopping it, $active stays active"
    run "$idle" "$stop_cmd" || true
    exit 1
  fi
  sleep 0.5
done
say "$idle is ready"

backup_file="$(mktemp "$upstream.prev.XXXXXX")"
cp "$upstream" "$backup_file"
tmp="$(mktemp "$upstream.new.XXXXXX")"
cat >"$tmp" <<EOF
# The active LogLens slot. deploy/bluegreen.sh rewrites this file and reloads nginx.
# active: $idle
upstream loglens {
    server $idle_upstream;
    keepalive 32;
}
EOF
chmod 644 "$tmp"
mv -f "$tmp" "$upstream"
if ! run "$idle" "$reload_cmd"; then
  say "nginx reload failed; restoring the upstream file, $active stays active"
  mv -f "$backup_file" "$upstream"
  run "$idle" "$stop_cmd" || true
  exit 1
fi
rm -f "$backup_file"
say "nginx now sends traffic to $idle; draining $active for ${drain_seconds}s"
sleep "$drain_seconds"

say "stopping $active"
run "$active" "$stop_cmd"
say "done: $idle is active"
