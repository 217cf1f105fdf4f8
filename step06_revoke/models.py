import functools
import os
import re
import unicodedata

import click
from flask.cli import with_appcontext
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()

ADMIN_USERNAME = "admin@gmail.com"  # the article's user
ADMIN_PASSWORD = "123456"


LOOK_ALIKE_SCRIPTS = {"CYRILLIC", "GREEK"}  # letters drawn like Latin ones: Cyrillic а, Greek ο


def normalize_username(username):
    """The one spelling a username is stored and looked up in: NFKC (full-width ａ is a), without the spaces
    around it, case-folded (ADMIN is admin). The unique index then refuses every other spelling."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def username_problem(username):
    """Why this username, as given, cannot be a new account's ("must not ..."), or None."""
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in username):  # a zero-width space, an RTL override, a tab
        return "must not contain control or invisible characters"
    if not (username := normalize_username(username)):
        return "must not be empty"
    for part in re.split(r"[@.]", username):  # as browsers check a domain name: label by label
        scripts = {unicodedata.name(c, "?").split()[0] for c in part if c.isalpha()}
        if "LATIN" in scripts and scripts & LOOK_ALIKE_SCRIPTS:
            return "must not mix Latin letters with Cyrillic or Greek ones"
    return None


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True, autoincrement=True)
    username = db.Column(db.String(45), nullable=False, unique=True)
    # werkzeug's scrypt hash is 162 characters: the article's String(128) fails on MySQL.
    password = db.Column(db.String(255), nullable=False)
    active = db.Column(db.Boolean, default=True, nullable=False)

    def __init__(self, username, password, active=True):
        self.username = normalize_username(username)
        self.password = generate_password_hash(password)  # salted and slow; never the password itself
        self.active = active  # the article wrote True here, whatever was asked

    @classmethod
    def authenticate(cls, username, password):
        """Return (user exists, password correct, user), like the article's helper."""
        # A name create-user refuses is nobody's, also where a collation would match it (MySQL ignores U+200B).
        user = None if username_problem(username) else db.session.execute(
            db.select(cls).filter_by(username=normalize_username(username))).scalar_one_or_none()
        if user is None:
            check_password_hash(dummy_hash(), password)  # as slow as for a real user: timing tells nothing
            return False, False, None
        return True, check_password_hash(user.password, password), user

    @classmethod
    def get_users(cls):
        return db.session.execute(EVERY_USER).scalars().all()


EVERY_USER = db.select(User).order_by(User.id)  # built once, not at every request


# Built once too: only the username changes from one request to the next, sent as a bound parameter.
ACTIVE_USER = db.select(User).where(User.username == db.bindparam("username"), User.active == db.true())


def load_user(jwt_header, jwt_payload):
    """The user a token speaks for, if it still exists and is active; None makes the request fail."""
    return db.session.execute(ACTIVE_USER, {"username": jwt_payload["sub"]}).scalar_one_or_none()


def init_database(app):
    """db.init_app(app), with each driver's timeouts (DATABASE_TIMEOUT): a database that stops answering is an
    OperationalError, so a 503, within seconds, instead of a request that waits until the server kills it."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    seconds = int(app.config["DATABASE_TIMEOUT"].total_seconds())
    timeouts = {
        "sqlite": {"timeout": seconds},  # how long to wait for another connection's write lock
        "mysql": {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds},
        # libpq has no read timeout: the server ends a slow statement, tcp_user_timeout a connection to a vanished host
        "postgresql": {"connect_timeout": seconds, "options": f"-c statement_timeout={seconds * 1000}",
                       "tcp_user_timeout": seconds * 1000},
    }.get(url.get_backend_name(), {})
    options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
    connect_args = {**{k: v for k, v in timeouts.items() if k not in url.query}, **options.get("connect_args", {})}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": connect_args}  # the URL's own settings win
    db.init_app(app)
    if url.get_backend_name() == "sqlite":
        with app.app_context():
            reopen_a_replaced_file(db.engine)


def reopen_a_replaced_file(engine):
    """A SQLite file replaced while the app runs (a backup moved in) is opened again: a pooled connection would
    go on reading the removed file, and pool_pre_ping cannot tell, since that file still answers."""
    path = engine.url.database
    if not path or path == ":memory:" or engine.url.query.get("uri"):
        return

    def file_id():  # the same path, another file: another inode (or device)
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    @event.listens_for(engine, "connect")
    def remember_the_file(dbapi_connection, record):
        record.info["file"] = file_id()

    @event.listens_for(engine, "checkout")
    def check_the_file(dbapi_connection, record, proxy):
        if record.info.get("file") != file_id():
            raise DisconnectionError("the database file was replaced")  # the pool opens a new connection instead


@functools.cache
def dummy_hash():
    """A hash of a password no one has, made once, to check when the username does not exist."""
    return generate_password_hash("no user has this password")


@click.command("init-db")
@with_appcontext  # db.session needs the app (Flask-SQLAlchemy 3)
def init_db_command():
    """Create the tables and the article's user; safe to run again."""
    db.create_all()  # creates only the tables that are missing
    if db.session.execute(db.select(User).filter_by(username=ADMIN_USERNAME)).scalar_one_or_none():
        click.echo(f"Tables ready. User {ADMIN_USERNAME} already exists: left unchanged.")
        return
    db.session.add(User(ADMIN_USERNAME, ADMIN_PASSWORD))
    db.session.commit()
    click.echo(f"Tables ready. Created user {ADMIN_USERNAME} with password {ADMIN_PASSWORD}.")


@click.command("create-user")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="For scripts. Without it, the password is asked for twice and not shown.")
@with_appcontext
def create_user_command(username, password):
    """Add a user, e.g. one per learner of a class. Refuses a username that exists."""
    if not password:
        raise click.ClickException("The password must not be empty.")
    if problem := username_problem(username):
        raise click.ClickException(f"A username {problem}.")
    username = normalize_username(username)
    if len(username) > User.username.type.length:
        raise click.ClickException(f"A username has at most {User.username.type.length} characters.")
    db.session.add(User(username, password))
    try:
        db.session.commit()
    except IntegrityError:  # username is unique: the database itself refuses a second one
        raise click.ClickException(f"User {username} already exists: nothing was changed.") from None
    click.echo(f"Created user {username}.")
