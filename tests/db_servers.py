"""Throwaway databases on the servers TEST_DATABASE_URLS lists, one per session and server, dropped at the end, so
that two runs never see each other's rows."""
import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URLS = os.environ.get("TEST_DATABASE_URLS", "").split()

# Never wait forever for a lock held by a connection a failed test left behind.
LOCK_TIMEOUT = {
    "mysql": {"init_command": "SET SESSION lock_wait_timeout = 10"},
    "postgresql": {"options": "-c lock_timeout=10000"},
}


def backend(url):  # mysql (MariaDB too), postgresql or sqlite: the name tests are parametrized with
    return make_url(url).get_backend_name()


def server_version(server_url):
    engine = create_engine(server_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version()")).scalar()
    finally:
        engine.dispose()


def create_database(server_url):
    """Create an empty database on the server; return its URL."""
    url = make_url(server_url)
    name = f"flask_jwt_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if backend(url) == "mysql":  # utf8mb4: all of Unicode, Chinese included (MySQL's "utf8" is not)
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            url = url.update_query_dict({"charset": "utf8mb4"})
        else:
            conn.execute(text(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(server_url, database_url):
    name = make_url(database_url).database
    if engine := _TARGETS.pop(database_url, None):  # its pooled connection would keep the database in use
        engine.dispose()
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        force = " WITH (FORCE)" if backend(server_url) == "postgresql" else ""
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    engine.dispose()


_TARGETS = {}  # an engine per target database, for the session: a new one's handshake was most of a copy's cost


def copy_database(source_url, target_url, metadata):
    """Make the target hold the source's tables and rows, with fresh tables (ids start again at 1)."""
    source = create_engine(source_url)
    if target_url not in _TARGETS:
        _TARGETS[target_url] = create_engine(target_url, connect_args=LOCK_TIMEOUT.get(backend(target_url), {}),
                                             pool_size=1, pool_pre_ping=True)
    target = _TARGETS[target_url]
    try:
        metadata.drop_all(target)
        metadata.create_all(target)
        with source.connect() as src, target.begin() as dst:
            for table in metadata.sorted_tables:
                generated = [c.name for c in table.primary_key.columns if c.autoincrement]
                rows = src.execute(table.select().order_by(*table.primary_key.columns)).mappings().all()
                for row in rows:  # without the generated id, so that each server's counter stays right
                    dst.execute(table.insert().values({k: v for k, v in row.items() if k not in generated}))
    finally:
        source.dispose()
