"""Import benchmark: 100,000 contacts from CSV through the service layer on SQLite.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_import [--rows 100000] [--repeat 3]
        [--backend sqlite|postgresql|both]

PostgreSQL: the local server (127.0.0.1:5432, user postgres) in a scratch database that is
dropped afterwards; the aim there is >= 50,000 rows/s (COPY).

A fresh, migrated SQLite data dir, one tenant and an admin; the CSV (first_name, last_name,
email, phone, title, company, tags, and a custom select field) is generated in memory and
imported with `RecordIOService.import_csv` (parse, validate every row, one bulk INSERT in one
transaction).  Each round imports the file again (create mode), so later rounds write into a
fuller table.  Prints rows/s per round and the median; the aim is >= 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.config import load_settings
from aisha_server.db import migrate
from aisha_server.services.custom_fields import CustomFieldService, NewField
from aisha_server.services.record_io import ImportOptions
from tests.factories import make_tenant, make_user, token_for

AIM_ROWS_PER_SECOND = {"sqlite": 20_000, "postgresql": 50_000}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_SCRATCH = "aisha_bench_import"
JWT_SECRET = "bench-" + "s" * 58


def make_csv(rows: int) -> bytes:
    lines = ["first_name,last_name,email,phone,title,company,tags,cf.segment"]
    segments = ("smb", "mid", "enterprise")
    for i in range(rows):
        lines.append(
            f'First{i},"Last, {i}",person{i}@example.com,'
            f"(212) {200 + i // 10_000} {i % 10_000:04d},Buyer,"
            f"Company {i % 997},a;b,{segments[i % 3]}"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


async def scratch_database(create: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_SCRATCH} WITH (FORCE)")
        if create:
            await conn.execute(f"CREATE DATABASE {PG_SCRATCH}")
    finally:
        await conn.close()


async def run(rows: int, repeat: int, backend: str = "sqlite") -> list[float]:
    overrides = {"JWT_SECRET": JWT_SECRET}
    if backend == "postgresql":
        await scratch_database(True)
        overrides["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_SCRATCH
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", overrides=overrides)
        await asyncio.to_thread(migrate.upgrade, settings)
        app = create_app(settings)
        try:
            tenant = await make_tenant(app, "Bench")
            admin = await make_user(app, role="admin", tenant_id=tenant.id)
            who = await app[keys.AUTH_GATE].principal_for_token(await token_for(app, admin))
            fields: CustomFieldService = app[keys.CUSTOM_FIELD_SERVICE]
            await fields.create_field(
                who,
                tenant.id,
                NewField("contact", "segment", "select", options=["smb", "mid", "enterprise"]),
            )
            data = make_csv(rows)
            print(f"CSV: {rows:,} rows, {len(data) / 1e6:.1f} MB")
            service = app[keys.RECORD_IO_SERVICE]
            rates = []
            for round_ in range(1, repeat + 1):
                started = time.perf_counter()
                report = await service.import_csv(who, tenant.id, "contacts", data, ImportOptions())
                elapsed = time.perf_counter() - started
                totals = report.totals
                assert totals["created"] == rows, totals
                rates.append(rows / elapsed)
                print(f"round {round_}: {elapsed:.2f} s, {rows / elapsed:,.0f} rows/s")
            return rates
        finally:
            await app[keys.DB].close()
            if backend == "postgresql":
                await scratch_database(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    table = []
    for backend in backends:
        print(f"-- {backend}")
        median = statistics.median(asyncio.run(run(args.rows, args.repeat, backend)))
        aim = AIM_ROWS_PER_SECOND[backend]
        table.append((backend, median, aim, "PASS" if median >= aim else "FAIL"))
    print("| backend | import rows/s (median) | aim | result |")
    for backend, median, aim, verdict in table:
        print(f"| {backend} | {median:,.0f} | >= {aim:,} | {verdict} |")


if __name__ == "__main__":
    main()
