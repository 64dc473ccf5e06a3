# Stand-in for redis:7.4.2-alpine (REDIS_IMAGE), from Debian bookworm's redis-server 7.0.
# Differences from the official image: Redis 7.0.15, not 7.4; Debian's build keeps Redis's
# own default `protected-mode yes` (the official image patches it to `no`), which is the
# default the compose files override explicitly; runs as `redis` from the start
# (the official entrypoint starts as root, chowns /data, then drops to `redis`).
ARG DEBIAN_IMAGE=standin-debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
