"""TARGETS_FILE: several databases, one `[targets.NAME]` TOML table each.

A secret is never written in the file: a `*_env` key names the environment variable that holds
it. Every error names TARGETS_FILE, the target and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from app.adapters.encryption import parse_recipients
from app.adapters.postgres import TargetDatabase
from app.config.validators import APP_NAME, ENV_NAME, PASSKEY_HASH, check_storage_url, database_from_url
from app.config.values import EDITABLE_PER_TARGET, ConfigError, CopyStore, Target
from app.domain.cron import cron_problem

_TARGET_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
# What each key of a [targets.NAME] table holds. Secrets are only ever named (`*_env`).
_TARGET_KEYS = {
    "environment": "text", "database_url": "text", "password_env": "env", "storage_url": "text",
    "app_name": "text", "restore_passkey_env": "env", "restore_passkey_hash_env": "env",
    "backup_schedule": "cron", "verify_schedule": "cron", "max_backup_files": "count",
    "retention_daily": "count", "retention_weekly": "count", "retention_monthly": "count",
    "backup_max_age_hours": "count", "alert_webhook_url_env": "env", "alert_email_to": "list",
    "encryption_recipients": "list", "copies": "names",
}  # fmt: skip
# What each key of a [stores.NAME] table (a store backups are copied to) holds; what it leaves out is the console's.
_STORE_KEYS = {"storage_url": "text", "endpoint_url": "text", "region": "text", "addressing_style": "text",
               "access_key_id_env": "env", "secret_access_key_env": "env"}  # fmt: skip
_SECRET_KEYS = ("password", "restore_passkey", "restore_passkey_hash", "alert_webhook_url")


def targets_from_file(path: str, env: Mapping[str, str], defaults: dict) -> tuple[tuple[Target, ...], str]:
    """The targets of TARGETS_FILE and the default one's name; `defaults` fills the keys a table leaves out."""
    data = _read(path)
    unknown = sorted(set(data) - {"default", "targets", "stores"})
    if unknown:
        raise ConfigError("TARGETS_FILE", f"unknown key {unknown[0]!r} (use default, [targets.NAME] and "
                                          "[stores.NAME] tables)")  # fmt: skip
    tables = data.get("targets")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("TARGETS_FILE", "names no target: add a [targets.NAME] table")
    stores = _copy_stores(data.get("stores", {}), env)
    targets = tuple(_with_copies(_file_target(name, table, env, defaults), table, stores)
                    for name, table in tables.items())  # fmt: skip
    _check_distinct_names(targets)
    default = data.get("default", targets[0].name)
    if not isinstance(default, str) or default not in tables:
        raise ConfigError("TARGETS_FILE", f"default = {default!r} is not one of the targets ({', '.join(tables)})")
    return targets, default


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError("TARGETS_FILE", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("TARGETS_FILE", f"{path} is not valid TOML: {exc}") from None


def _check_distinct_names(targets: tuple[Target, ...]) -> None:
    """Same store, prefix and environment: retention would delete the other's backups."""
    seen: dict[tuple[str, str, str], str] = {}
    for target in targets:
        other = seen.setdefault((target.storage_url.rstrip("/"), target.app_name, target.app_env), target.name)
        if other != target.name:
            raise ConfigError("TARGETS_FILE", f"target {target.name!r}, key 'app_name': its backups would have the "
                                              f"same names as target {other!r}'s in the same storage; give one "
                                              "another app_name or environment")  # fmt: skip


def _problem(name: str, key: str, text: str) -> ConfigError:
    return ConfigError("TARGETS_FILE", f"target {name!r}, key {key!r}: {text}")


def _file_target(name: str, table: object, env: Mapping[str, str], defaults: dict) -> Target:
    if not _TARGET_NAME.match(name):
        raise ConfigError("TARGETS_FILE", f"target {name!r}: a name is 1 to 40 of a-z, 0-9, '_' and '-'")
    if not isinstance(table, dict):
        raise ConfigError("TARGETS_FILE", f"target {name!r}: must be a table ([targets.{name}])")
    values = {key: _value(name, key, value, env) for key, value in table.items()}
    for required in ("database_url", "storage_url"):
        if required not in values:
            raise _problem(name, required, "is required")
    database = _database(name, values)
    try:
        check_storage_url(values["storage_url"])
    except ConfigError as exc:
        raise _problem(name, "storage_url", str(exc).split(": ", 1)[1]) from None
    environment = values.get("environment", name)
    if not ENV_NAME.match(environment):
        raise _problem(name, "environment", f"must be letters, digits or '_' (got {environment!r})")
    app_name = values.get("app_name", database.dbname)
    if not APP_NAME.match(app_name):
        raise _problem(name, "app_name", f"must be letters, digits, '.', '_' or '-' (got {app_name!r})")
    passkey_hash = values.get("restore_passkey_hash_env")
    if passkey_hash and not PASSKEY_HASH.fullmatch(passkey_hash):
        raise _problem(name, "restore_passkey_hash_env",
                       "its variable must hold the 64 hex digits of the passkey's sha256")  # fmt: skip
    if "alert_webhook_url_env" in values and urlsplit(values["alert_webhook_url_env"]).scheme not in ("http", "https"):
        raise _problem(name, "alert_webhook_url_env", "its variable must hold an http:// or https:// URL")
    return Target(
        name=name, database=database, app_env=environment, app_name=app_name, storage_url=values["storage_url"],
        restore_passkey=values.get("restore_passkey_env"),
        restore_passkey_hash=passkey_hash.lower() if passkey_hash else None,
        **{**defaults, **{k: v for k, v in values.items() if k in defaults},
           "alert_webhook_url": values.get("alert_webhook_url_env", defaults["alert_webhook_url"]),
           "server_set": defaults["server_set"] | {k for k in values if k in EDITABLE_PER_TARGET}},
    )  # fmt: skip


def _copy_stores(tables: object, env: Mapping[str, str]) -> dict[str, CopyStore]:
    """The `[stores.NAME]` tables: the stores targets may copy their backups to (`copies = ["NAME"]`)."""
    if not isinstance(tables, dict):
        raise ConfigError("TARGETS_FILE", "stores must be tables ([stores.NAME])")
    return {name: _copy_store(name, table, env) for name, table in tables.items()}


def _copy_store(name: str, table: object, env: Mapping[str, str]) -> CopyStore:
    def problem(key: str, text: str) -> ConfigError:
        return ConfigError("TARGETS_FILE", f"store {name!r}, key {key!r}: {text}")

    if not _TARGET_NAME.match(name):
        raise ConfigError("TARGETS_FILE", f"store {name!r}: a name is 1 to 40 of a-z, 0-9, '_' and '-'")
    if not isinstance(table, dict):
        raise ConfigError("TARGETS_FILE", f"store {name!r}: must be a table ([stores.{name}])")
    values = {}
    for key, value in table.items():
        if key in ("access_key_id", "secret_access_key"):
            raise problem(key, f"a secret is never written in the file; set {key}_env to the name of an "
                               "environment variable that holds it")  # fmt: skip
        if key not in _STORE_KEYS:
            raise problem(key, f"unknown key (known: {', '.join(_STORE_KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise problem(key, f"must be a non-empty string (got {value!r})")
        if _STORE_KEYS[key] == "env":
            if not env.get(value):
                raise problem(key, f"names the environment variable {value}, which is not set")
            value = env[value]
        values[key] = value
    if "storage_url" not in values:
        raise problem("storage_url", "is required")
    try:
        check_storage_url(values["storage_url"])
    except ConfigError as exc:
        raise problem("storage_url", str(exc).split(": ", 1)[1]) from None
    if urlsplit(values.get("endpoint_url", "http://x")).scheme not in ("http", "https"):
        raise problem("endpoint_url", "must be an http:// or https:// URL")
    if values.get("addressing_style", "auto") not in ("auto", "path", "virtual"):
        raise problem("addressing_style", "must be auto, path or virtual")
    return CopyStore(name, values["storage_url"], values.get("endpoint_url"), values.get("region"),
                     values.get("addressing_style"), values.get("access_key_id_env"),
                     values.get("secret_access_key_env"))  # fmt: skip


def _with_copies(target: Target, table: dict, stores: dict[str, CopyStore]) -> Target:
    """`target` with the stores its `copies` key names, each checked to be a [stores.NAME] table and not its own."""
    copies = []
    for store in table.get("copies", ()):
        if store not in stores:
            known = ", ".join(stores) or "none: add a [stores.NAME] table"
            raise _problem(target.name, "copies", f"names the store {store!r}, which is not a [stores.NAME] table "
                                                  f"(stores: {known})")  # fmt: skip
        if stores[store].storage_url.rstrip("/") == target.storage_url.rstrip("/") and not stores[store].endpoint_url:
            raise _problem(target.name, "copies", f"store {store!r} is the target's own storage_url: a copy must "
                                                  "be in another store")  # fmt: skip
        copies.append(stores[store])
    return replace(target, copies=tuple(copies))


def _value(name: str, key: str, value: object, env: Mapping[str, str]) -> object:
    """One key's value, checked for its kind; an `*_env` key gives the value of the variable it names."""
    if key in _SECRET_KEYS:
        raise _problem(name, key, f"a secret is never written in the file; set {key}_env to the name of an "
                                  "environment variable that holds it")  # fmt: skip
    kind = _TARGET_KEYS.get(key)
    if kind is None:
        raise _problem(name, key, f"unknown key (known: {', '.join(_TARGET_KEYS)})")
    if kind == "count":
        least = 0 if key.startswith("retention_") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise _problem(name, key, f"must be a whole number of at least {least} (got {value!r})")
    elif kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) < len(value):
            raise _problem(name, key, f"must be a list of distinct store names (got {value!r})")
        value = tuple(value)
    elif kind == "list":
        value = (value,) if isinstance(value, str) else value
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _problem(name, key, "must be a list of addresses")
        value = tuple(value)
    elif not isinstance(value, str) or not value.strip():
        raise _problem(name, key, f"must be a non-empty string (got {value!r})")
    if kind == "env":
        if value not in env or not env[value]:
            raise _problem(name, key, f"names the environment variable {value}, which is not set")
        value = env[value]
    if kind == "cron" and (cron := cron_problem(value)):
        raise _problem(name, key, cron)
    if key == "encryption_recipients":
        value = _recipients(name, value)
    return value


def _database(name: str, values: dict) -> TargetDatabase:
    """The target's database: database_url (without a password) and the password its variable holds."""
    url = values["database_url"]
    if urlsplit(url).password is not None:
        raise _problem(name, "database_url",
                       "holds a password; put it in an environment variable named by password_env")  # fmt: skip
    try:
        database = database_from_url(url, "database_url")
    except ConfigError as exc:
        raise _problem(name, "database_url", str(exc).split(": ", 1)[1]) from None
    if "password_env" in values:
        database = replace(database, password=values["password_env"])
    return database


def _recipients(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """A target's own age recipients (public keys, so they may be written in the file)."""
    try:
        return tuple(dict.fromkeys(r for value in values for r in parse_recipients(value)))
    except ValueError as exc:
        raise _problem(name, "encryption_recipients", str(exc)) from None
