"""The console end to end, as a user sees it, against the shortest scripts doing the same work.

    .venv/bin/python -m bench.performance [--servers seaweedfs,moto] [--sizes 500,1000] [--rounds 5]
                                          [--out bench/results/performance.md]

For each S3 server (SeaweedFS's `weed mini`, the headline, started as the tests start it; moto's
server in its own process, for comparison) it runs one console as a user runs it: gunicorn
(`wsgi:app`, 2 sync workers, as the Dockerfile) and `flask --app wsgi worker`, the console store
migrated with `flask db upgrade`, an admin and an API token made with the console's CLI, and a
TARGETS_FILE with one target per database and store. For each database size (the bench databases
of bench/common.py) every round runs each contender once, in an order rotated every round:

  (a) `pg_dump -Fc <the console's compression>` to /dev/null;
  (b) the pipe a user would script: `pg_dump … | python: boto3 upload_fileobj(stdin)` to the same bucket;
  (c) the console's backup to S3: `POST /api/targets/<t>/backup`, then `GET` the status URL every
      50 ms until it reads `finished`;
  (d) the same to a local folder (a second target, `file:///…`);
  (e) boto3 `download_file` + `pg_restore -j N --no-owner --no-privileges --exit-on-error` into a
      fresh empty database (its creation not counted);
  (f) the console's restore (`POST /api/targets/<t>/restore` with the passkey) of the same archive.

Also the fixed cost of a job (a backup of an empty database, at least 5 runs), the worker's peak
PSS in a separate sampled run of (c) and (f), and where the CPU went (/proc/<pid>/stat of every
process involved). Progress goes to stderr, the report to --out; bench/README.md has the method.
"""

CONTENDERS = {
    "a": "(a) `pg_dump -Fc` to /dev/null",
    "b": "(b) pipe: `pg_dump \\| upload_fileobj(stdin)`",  # \| : a | inside a table cell
    "c": "(c) console backup → S3",
    "d": "(d) console backup → local folder",
    "e": "(e) `download_file` + `pg_restore -j N`",
    "f": "(f) console restore from S3",
    "g": "(g) `pg_dump \\| cat` to /dev/null",  # information: what any reader of pg_dump's output costs it
}
CONSOLE = ("c", "d", "f")
TARGETS = (("c", "b", 1.00), ("d", "a", 1.05), ("f", "e", 1.05))  # (console, peer, most console/peer)
TOOLS = ("pg_dump", "pg_restore", "pg_wrapper")  # pg_wrapper: Debian's perl behind /usr/bin/pg_*
