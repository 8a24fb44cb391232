#!/bin/sh
# Seed the idle blue/green slot's data directory with an online backup of the active slot's, so the
# new slot starts with the history. Run by deploy/bluegreen.sh as its prepare step (LOGLENS_BG_PREPARE_CMD).
#   FROM_DATA    the active slot's data directory (its server keeps running and ingesting)
#   TO_DATA      the idle slot's data directory; an existing one is moved aside, never deleted
#   BACKUP_ROOT  where the hand-over backup is kept                                   [/backups]
#   LOGLENS      the loglens command                                                   [loglens]
# Records the active slot accepts after the backup and before the switch stay in its own directory;
# see "Blue/green" in docs/operations.md.
set -eu
: "${FROM_DATA:?FROM_DATA is the active slot's data directory}"
: "${TO_DATA:?TO_DATA is the idle slot's data directory}"
BACKUP_ROOT="${BACKUP_ROOT:-/backups}"
LOGLENS="${LOGLENS:-loglens}"
ts="$(date -u +%Y%m%dT%H%M%SZ)"
bk="$BACKUP_ROOT/handover-$ts"
$LOGLENS backup "$bk" --data "$FROM_DATA"
if [ -e "$TO_DATA" ]; then
  mv "$TO_DATA" "$TO_DATA.previous-$ts"
fi
$LOGLENS restore "$bk" --data "$TO_DATA"
