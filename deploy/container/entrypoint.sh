#!/bin/sh
# The image's entrypoint. Compose and Kubernetes hand secrets over as files; Tessera reads its
# settings from the environment only (idp/settings.py has no *_FILE variables). So each file in
# $TESSERA_SECRETS_DIR (default /run/secrets) named after a Tessera variable (IDP_*, DATABASE_URL,
# REDIS_URL, CELERY_BROKER_URL, CLICKHOUSE_URL) becomes that variable, its trailing newlines
# dropped, and then the command runs in this process's place. Other files there are left alone.
set -eu
secrets_dir="${TESSERA_SECRETS_DIR:-/run/secrets}"
if [ -d "$secrets_dir" ]; then
    for file in "$secrets_dir"/*; do
        [ -f "$file" ] || continue
        name="${file##*/}"
        case "$name" in
            IDP_*|DATABASE_URL|REDIS_URL|CELERY_BROKER_URL|CLICKHOUSE_URL) ;;
            *) continue ;;
        esac
        case "$name" in
            *[!A-Z0-9_]*) continue ;;  # not a variable name
        esac
        value="$(cat "$file")"
        export "$name=$value"
    done
fi
exec "$@"
