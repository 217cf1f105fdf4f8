"""Throwaway databases on the servers TEST_DATABASE_URLS lists, separated by spaces (MariaDB/MySQL, PostgreSQL): one
per session and server, dropped at the end, emptied for each test. A listed server that cannot be reached fails the
tests that need it: it is never skipped.
"""
import os
import uuid

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

SERVER_URLS = os.environ.get("TEST_DATABASE_URLS", "").split()
# Never wait forever for a lock held by a connection a failed test left behind.
LOCK_TIMEOUT = {"mysql": {"init_command": "SET SESSION lock_wait_timeout = 10"},
                "postgresql": {"options": "-c lock_timeout=10000"}}
ENGINES = {}  # one per database, kept for the session: a new connection's handshake was most of a test's set-up


def backend(url):  # mysql (MariaDB too), postgresql or sqlite: the name tests are parametrized with
    return make_url(url).get_backend_name()


def execute(server_url, statement):
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


def create_database(server_url):
    """An empty database on the server, named by chance; its URL."""
    url, name = make_url(server_url), f"flask_jwt_test_{uuid.uuid4().hex[:12]}"
    if backend(url) == "mysql":  # utf8mb4: all of Unicode, Chinese included (MySQL's "utf8" is not)
        execute(url, f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        url = url.update_query_dict({"charset": "utf8mb4"})
    else:
        execute(url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(server_url, database_url):
    if engine := ENGINES.pop(database_url, None):  # its pooled connection would keep the database in use
        engine.dispose()
    force = " WITH (FORCE)" if backend(server_url) == "postgresql" else ""
    execute(server_url, f"DROP DATABASE IF EXISTS {make_url(database_url).database}{force}")


def drop_tables(database_url):
    """Every table the last test left, so that the step's init-db starts afresh (ids from 1 again)."""
    if database_url not in ENGINES:
        ENGINES[database_url] = create_engine(database_url, pool_size=1, pool_pre_ping=True,
                                              connect_args=LOCK_TIMEOUT[backend(database_url)])
    tables = MetaData()
    tables.reflect(ENGINES[database_url])
    tables.drop_all(ENGINES[database_url])
