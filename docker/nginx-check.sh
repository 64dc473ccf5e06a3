#!/bin/sh
# Entry point of the `lb` and `judge-lb` containers: refuse, with the reason, a config this
# nginx cannot run, then start nginx as the image would.
#
# docker/nginx.conf and docker/nginx-judge.conf re-resolve the replicas' addresses with
# `server ... resolve`, which open-source nginx has only since 1.27.3. An older nginx
# (Debian bookworm's 1.22, Ubuntu 24.04's 1.24) stops with `invalid parameter "resolve"`
# and, under `restart: unless-stopped`, restart-loops while every request fails; this
# says what to do instead. Any other error is nginx's own (`nginx -t` output).
set -eu

conf=/etc/nginx/nginx.conf
required=1.27.3
version=$(nginx -v 2>&1 | sed -n 's#^.*nginx/\([0-9][0-9.]*\).*$#\1#p')

# 0 when version $1 >= $2 (dotted numbers).
at_least() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, "."); split(b, y, ".")
        for (i = 1; i <= 3; i++) {
            if (x[i] + 0 > y[i] + 0) exit 0
            if (x[i] + 0 < y[i] + 0) exit 1
        }
        exit 0
    }'
}

if grep -Eq '^[^#]*[[:space:]]resolve([[:space:];]|$)' "$conf" \
   && ! at_least "${version:-0}" "$required"; then
    echo "nginx-check: $conf uses 'server ... resolve', which needs nginx >= $required;" \
         "this image has nginx ${version:-unknown}. Use the pinned NGINX_IMAGE" \
         "(nginx:1.28.0-alpine), or set NGINX_CONF to a copy without 'resolve'" \
         "(docs/operations.md, Troubleshooting)." >&2
    exit 1
fi

if [ -x /docker-entrypoint.sh ]; then
    exec /docker-entrypoint.sh "$@"  # the official image's own entry point
fi
exec "$@"
