# Stands in for postgres:16-alpine: Debian's PostgreSQL, set up from the same variables
# (POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD, PGDATA, PGPORT) by postgres-entrypoint.sh.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
# No "main" cluster from the package: the entrypoint makes one in PGDATA on first start.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/tracker.conf \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
