"""Configuration: the environment and TARGETS_FILE read once into a frozen, validated `Settings`.

Every error names the variable (or TARGETS_FILE key) that is wrong. Everything else in the
console gets its configuration from here, as values.
"""

from app.adapters.postgres import TargetDatabase
from app.config.settings import Settings
from app.config.values import (
    JOB_MAX_DEFAULT,
    NOTIFY_EVENTS,
    ROLES,
    TARGET_ROLES,
    ConfigError,
    OidcSettings,
    Target,
    UnknownTarget,
)
from app.domain.cron import cron_problem

__all__ = [
    "JOB_MAX_DEFAULT", "NOTIFY_EVENTS", "ROLES", "TARGET_ROLES", "ConfigError", "OidcSettings", "Settings",
    "Target", "TargetDatabase", "UnknownTarget", "cron_problem",
]  # fmt: skip
