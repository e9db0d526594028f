"""``chargeback migrate`` and ``chargeback copy-db`` (DESIGN §18)::

    chargeback migrate --config F                 apply every migration, then exit
    chargeback copy-db --from sqlite:///F --to postgresql://...   move and verify (exit 1: differ)

``migrate`` is for a Kubernetes init container or job: it applies the core migrations
and those of the storage modules of every enabled tenant's plugin, so replicas start
on a current schema. ``copy-db`` moves an existing SQLite installation into an empty
PostgreSQL database without recalculating anything and verifies the copy by reading
both back through the storage protocol (:mod:`chargeback.core.storage.copy_db`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from chargeback.errors import ConfigError

__all__ = ["add_commands", "cmd_copy_db", "cmd_migrate"]

Add = Callable[[str, str], argparse.ArgumentParser]


def add_commands(add: Add) -> None:
    """Register the two commands on the ``chargeback`` parser (``add(name, help)``)."""
    add("migrate", "apply the storage migrations (core and plugins) and exit")
    copy = add("copy-db", "copy a SQLite database into an empty PostgreSQL one, then verify")
    copy.add_argument("--from", dest="source", required=True, help="sqlite:///PATH")
    copy.add_argument("--to", dest="target", required=True, help="postgresql://... (empty)")


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the migrations of the configured database; 0 when the schema is current."""
    from chargeback.core.plugin.registry import PluginRegistry  # noqa: PLC0415
    from chargeback.core.storage.factory import location_of, open_backend  # noqa: PLC0415
    from chargeback.logging import configure_logging, register_secrets  # noqa: PLC0415
    from chargeback.settings import load_settings, secret_values  # noqa: PLC0415

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    register_secrets(secret_values(settings))
    registry = PluginRegistry.discover(settings.plugins_path)

    async def migrate() -> list[str]:
        namespaces: list[str] = []
        async with open_backend(settings.storage) as storage:
            for name in settings.enabled_tenants():
                config = settings.tenant_config(name)
                plugin = registry.create(config.ecosystem)
                try:
                    plugin.initialize(config.plugin_settings)
                    module = plugin.get_storage_module()
                    if module is not None and module.namespace not in namespaces:
                        await storage.register_modules([module])
                        namespaces.append(module.namespace)
                finally:
                    await plugin.close()
        return namespaces

    namespaces = asyncio.run(migrate())
    where = location_of(settings.storage).display
    print(f"the schema of {where} is current: {', '.join(['core', *namespaces])}")
    return 0


def cmd_copy_db(args: argparse.Namespace) -> int:
    """Copy, verify, report; 0 when every tenant reads back the same on both sides."""
    from chargeback.core.storage import copy_db  # noqa: PLC0415
    from chargeback.core.storage.factory import parse_url, url_password  # noqa: PLC0415
    from chargeback.core.storage.postgres import PostgresBackend  # noqa: PLC0415
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415
    from chargeback.logging import configure_logging, register_secrets  # noqa: PLC0415

    source, target = parse_url(args.source), parse_url(args.target)
    if source.scheme != "sqlite" or target.scheme != "postgresql" or str(source.path) == ":memory:":
        raise ConfigError(
            "copy-db copies a SQLite file into PostgreSQL: --from sqlite:///PATH "
            f"--to postgresql://...; got --from {source.display} --to {target.display}"
        )
    if not source.path.is_file():
        raise ConfigError(f"copy-db: there is no SQLite file at {source.path}")
    configure_logging("warning")
    register_secrets(url_password(args.target))

    async def run() -> copy_db.CopyReport:
        report = await copy_db.copy_sqlite_to_postgres(source.path, target.dsn)
        src = SQLiteBackend(source.path, read_only=True, writer_process_min_rows=None)
        dst = PostgresBackend(target.dsn, read_only=True)
        async with src, dst:
            return await copy_db.verify_copy(src, dst, report)

    report = asyncio.run(run())
    for table, count in report.rows.items():
        print(f"copied {count:>9} rows of {table}")
    for problem in report.problems:
        print(f"DIFFERENCE: {problem}")
    verdict = "verified" if report.ok else "NOT verified"
    print(f"{verdict}: {len(report.tenants)} tenants read back the same from {target.display}"
          if report.ok else f"{verdict}: {len(report.problems)} differences")  # fmt: skip
    return 0 if report.ok else 1
