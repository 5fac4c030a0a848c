# Stands in for redis:7-alpine: Debian's Redis, run as the redis user in /data (the volume
# the compose file mounts there keeps the append-only file), as the official image does.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
WORKDIR /data
COPY redis-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["redis-entrypoint.sh"]
CMD ["redis-server"]
