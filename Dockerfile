# One image for both processes:
#   web (default):  gunicorn … wsgi:app
#   worker:         flask --app wsgi worker
FROM python:3.11-slim-bookworm

# The client tools of every supported major version: the worker picks the oldest pg_dump
# whose major is at least the server's, so the archive stays readable by as many pg_restore
# versions as possible (docs/backups.md, "How a backup runs"). pgdg's builds have gzip, lz4 and zstd.
# If the PostgreSQL project's repository has dropped an end-of-life major by the time you
# build, leave it out: --build-arg PG_MAJORS="14 15 16 17 18".
ARG PG_MAJORS="13 14 15 16 17 18"

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLASK_APP=wsgi \
    INSTANCE_PATH=/var/lib/pgconsole

# Debian 12 only ships the PostgreSQL 15 client, so get it from the PostgreSQL project's
# own repository (pgdg). curl is only needed to fetch the signing key. tzdata backs
# DISPLAY_TIMEZONE. age is for people: decrypting a downloaded backup by hand in this image
# (the console itself encrypts and decrypts with pyrage, a Python dependency).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl tzdata age; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    packages=""; for major in ${PG_MAJORS}; do packages="$packages postgresql-client-$major"; done; \
    apt-get install -y --no-install-recommends $packages; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    for major in ${PG_MAJORS}; do \
        "/usr/lib/postgresql/$major/bin/pg_dump" --version; \
        "/usr/lib/postgresql/$major/bin/pg_restore" --version; \
    done

# A fixed uid so the volume's ownership is predictable across rebuilds.
RUN set -eux; \
    groupadd --system --gid 10001 pgconsole; \
    useradd --system --uid 10001 --gid pgconsole --no-create-home \
        --home-dir /var/lib/pgconsole --shell /usr/sbin/nologin pgconsole; \
    install -d -o pgconsole -g pgconsole -m 0750 /var/lib/pgconsole

WORKDIR /srv/pgconsole

# Dependencies first, in their own layer, so a code change does not reinstall them: the pinned
# versions of requirements.lock, each file's sha256 checked (bin/lock writes it from pyproject.toml).
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock && rm requirements.lock

# The package carries its pages, static files and migrations (app/templates, app/static,
# app/store/migrations), so the installed copy works from any directory; wsgi.py stays here for
# `gunicorn wsgi:app` and `flask --app wsgi`.
COPY app/ app/
COPY pyproject.toml wsgi.py README.md ./
COPY bin/docker-entrypoint /usr/local/bin/pgconsole-entrypoint
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info app

# The code stays root-owned and read-only to the process; only the instance path is writable.
USER pgconsole
VOLUME ["/var/lib/pgconsole"]
EXPOSE 8000

# No curl in the slim image; urlopen raises (exit 1) on a 503 or no answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Runs `flask --app wsgi db upgrade` first, in every container, then the command.
ENTRYPOINT ["pgconsole-entrypoint"]
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-", "wsgi:app"]
