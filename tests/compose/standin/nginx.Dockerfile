# Stand-in for nginx:1.28.0-alpine (NGINX_IMAGE), from Debian bookworm's nginx 1.22.1.
# Differences from the official image: nginx 1.22 has no `resolve` parameter on an upstream
# `server` (open-source nginx >= 1.27.3), so docker/nginx.conf is refused as is (the tier
# checks that the refusal names the requirement) and the tier serves a copy without
# `resolve` through NGINX_CONF; no /docker-entrypoint.sh (its template and IPv6 steps are
# not used by our configs); busybox wget replaced by GNU wget for the health check.
ARG DEBIAN_IMAGE=standin-debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light wget \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
