import functools
import re
import unicodedata

import click
from flask.cli import with_appcontext
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import IntegrityError
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
