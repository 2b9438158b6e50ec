"""The targets tests' fixtures (tests/config/targets.py): three databases, a TARGETS_FILE over them, a console."""

from tests.config import targets

console, databases, targets_env = targets.console, targets.databases, targets.targets_env
