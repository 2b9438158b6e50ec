"""The real servers the tests and the benchmarks run against, and the processes they start.

No pytest here: bench/ uses these too. Fixtures built on them live in tests/conftest.py and
tests/server_fixtures.py.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: children run from here
