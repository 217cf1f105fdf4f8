"""Signing keys: tokens are signed with an Ed25519 private key, and checked with its public key, which any other
service may fetch from GET /.well-known/jwks.json. Nobody but this service can make a token.

The keys are PEM files in KEYS_DIR (default: the instance folder's keys/), one per key id (`kid`), named
<kid>.pem, the kid being when the key was made (UTC) and 4 random hex digits, so that the names sort by age:
- the newest key signs every new token, and its kid goes in the token's header;
- an older key stopped signing when the next one was made. It still verifies the tokens it signed until none
  of them can be valid any more: the longest token lifetime (a refresh token's) plus the leeway after that.
  Then it leaves the JWKS and is refused here too (by itself, at that time); `retire-keys` deletes its file.
In development and tests the first key is made on first use. Production never makes one: it refuses to start.
The folder is made readable by its owner only (0700), each key file too (0600). A file that is not a key stops
production from starting; one that appears later (a copy under way, a stray file) is skipped with a warning,
and the others keep signing. No key at all: login, the JWKS and every token check answer 503, never cached.
"""
import functools
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app, g, jsonify, request
from flask.cli import with_appcontext
from flask_restful import Resource
from jwt.algorithms import OKPAlgorithm
from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidAlgorithmError, InvalidTokenError
from werkzeug.exceptions import ServiceUnavailable

from .config import ConfigError

KID_TIME = "%Y%m%dT%H%M%S.%fZ"  # a kid: 20261201T224107.123456Z-3f9a (made, to the microsecond, in UTC)


class UnknownKeyId(InvalidTokenError):
    """The token's kid names no key that verifies tokens now: none, made up, or retired (errors.py: 230)."""


class KeysUnavailable(ServiceUnavailable):
    """KEYS_DIR holds no usable key (gone, unreadable, broken files only): nothing can be signed or checked."""

    description = "signing keys unavailable"

    def get_headers(self, environ=None, scope=None):  # the envelope's headers (errors.Api): never kept by a cache
        return [*super().get_headers(environ, scope), ("Cache-Control", "no-store")]


class RememberedSignatures:
    """An Ed25519 public key that remembers the signatures it accepted, with the bytes each one signed: a client
    sends the same token with every request, and the same bytes with the same key always get the same answer, so
    they are checked once (the costliest part of a request) rather than at every request. Other bytes, or a
    new signature, are checked as before; only accepted ones are remembered, at most `size` of them."""

    def __init__(self, key, size=4096):
        self.key, self.size, self.accepted = key, size, {}

    def verify(self, signature, data):
        if self.accepted.get(signature) != data:
            self.key.verify(signature, data)  # InvalidSignature: a forged or changed token (205)
            if len(self.accepted) >= self.size:
                self.accepted.clear()  # a bound, not a cache policy: the next requests are checked again
            self.accepted[signature] = data


Ed25519PublicKey.register(RememberedSignatures)  # PyJWT accepts it as the Ed25519 public key it wraps

# flask-jwt-extended reads each token four times per request (its header twice, its claims unchecked to find the
# key, then checked), and PyJWT decodes every part each time, testing it character by character: the costliest
# Python of a request, for this long token. The same part always decodes to the same bytes, so each is decoded
# once: every check after the decoding runs as before, and a part PyJWT refuses is not remembered (it raises).
if not hasattr(PyJWS._decode_base64url_segment, "cache_info"):  # once per process, whichever step imports it
    PyJWS._decode_base64url_segment = staticmethod(functools.lru_cache(maxsize=1024)(PyJWS._decode_base64url_segment))


@dataclass
class Key:
    kid: str
    made: float  # when it began to sign (seconds since 1970)
    private: Ed25519PrivateKey
    retires: float = float("inf")  # when no token it signed can still be valid

    def __post_init__(self):
        self.public = RememberedSignatures(self.private.public_key())  # what verifies the tokens this key signed

    def jwk(self):
        """The public half, as a JSON Web Key (RFC 8037): kty, crv, x. Never the private "d"."""
        return {**OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True), "kid": self.kid, "alg": "EdDSA", "use": "sig"}


def seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def longest_lifetime(config):
    """How long after a key stops signing a token it signed can still be valid."""
    lifetimes = [config["JWT_ACCESS_TOKEN_EXPIRES"], config["JWT_REFRESH_TOKEN_EXPIRES"]]
    if False in lifetimes:  # a token that never expires: its key can never go
        return float("inf")
    return max(seconds(t) for t in lifetimes) + seconds(config["JWT_DECODE_LEEWAY"])


def new_key(folder):
    """Write a new private key file; return its kid. Nothing is overwritten, and no half-written file is read."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # at most 0700, whatever the umask: nobody else lists it
    kid = f"{datetime.now(timezone.utc).strftime(KID_TIME)}-{secrets.token_hex(2)}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")  # mode 0600: readable by this user only
    with os.fdopen(handle, "wb") as file:
        file.write(pem)
    os.replace(temporary, folder / f"{kid}.pem")
    return kid


class KeyRing:
    """The keys in a folder, read again whenever the folder changes (a rotate-keys on this host)."""

    def __init__(self, folder, lifetime, generate, logger):
        self.folder, self.lifetime, self.generate, self.logger = Path(folder), lifetime, generate, logger
        self.lock = threading.Lock()
        self.seen, self.all, self.skipped = None, [], set()

    def load(self, strict=False):
        """Every usable key in the folder, oldest first, with the time each retires. A file that is not a key is
        refused (strict: production's start-up), else skipped with a warning, once."""
        with self.lock:
            try:
                if self.generate and not list(self.folder.glob("*.pem")):
                    new_key(self.folder)  # first use in development
                stamp = self.folder.stat().st_mtime_ns if self.folder.is_dir() else None
            except OSError as error:  # KEYS_DIR names a file, or a folder this user cannot write, or went just now
                raise self.unavailable(error) from error
            # A skipped file is read again each time: a copy finished in place does not change the folder's time.
            if stamp != self.seen or self.skipped:
                keys, skipped = [], set()
                for path in sorted(self.folder.glob("*.pem")):
                    try:
                        keys.append(self.read(path))
                    except ConfigError as error:
                        if not path.exists():  # deleted since the folder was listed (retire-keys): nothing broken
                            continue
                        if strict:
                            raise
                        if path not in self.skipped:
                            self.logger.warning("%s: skipped, the other keys sign and verify", error.message)
                        skipped.add(path)
                for older, newer in zip(keys, keys[1:]):
                    older.retires = newer.made + self.lifetime
                self.all, self.seen, self.skipped = keys, stamp, skipped
            return self.all

    def read(self, path):
        try:
            made = datetime.strptime(path.stem.split("-")[0], KID_TIME).replace(tzinfo=timezone.utc).timestamp()
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise TypeError("not an Ed25519 key")
            return Key(path.stem, made, private)
        except (ValueError, TypeError, OSError, UnsupportedAlgorithm):  # a name, text, key type, or file not a key's
            raise ConfigError(f"{path} is not a key made by rotate-keys (<time>-<id>.pem, an Ed25519 PEM)") from None

    def unavailable(self, reason=None):
        because = f": {reason}" if reason else ""
        self.logger.warning("no signing key in %s (KEYS_DIR)%s: answering 503", self.folder, because)
        return KeysUnavailable()

    def trusted(self):
        """The keys that verify tokens now: the signing key, and older ones not yet retired."""
        now = time.time()
        return [key for key in self.load() if key.retires > now]

    def signing_key(self):
        keys = self.load()
        if not keys:
            raise self.unavailable()
        return keys[-1]

    def public_key(self, kid):
        keys = self.trusted()
        if not keys:  # the token may well be valid: 503, not a 401 that would send its user to log in again
            raise self.unavailable()
        for key in keys:
            if key.kid == kid:
                return key.public
        raise UnknownKeyId(f"no key {kid!r}")


def init_keys(app, jwt):
    """Sign with the newest key, put its kid in every token's header, check each token with the key it names."""
    folder = app.config["KEYS_DIR"] or os.path.join(app.instance_path, "keys")
    production = app.config["CONFIG_NAME"] == "production"
    ring = KeyRing(folder, longest_lifetime(app.config), generate=not production, logger=app.logger)
    if production and not ring.load(strict=True):
        raise ConfigError(f"no signing key in {folder} (KEYS_DIR): make one with flask --app {__package__} rotate-keys "
                          "outside production, and give every host of this service the same folder")
    app.config["KEYS_DIR"] = folder
    app.extensions["keys"] = ring

    @jwt.additional_headers_loader
    def kid_header(identity):
        g.signing_key = ring.signing_key()  # chosen once per token: a rotation between the two callbacks
        return {"kid": g.signing_key.kid}  # must not pair one key's kid with another key's signature

    @jwt.encode_key_loader
    def private_key(identity):
        return g.pop("signing_key").private

    @jwt.decode_key_loader
    def public_key(jwt_header, jwt_payload):  # the header is not verified yet: only kid and alg are read
        if jwt_header.get("alg") != app.config["JWT_ALGORITHM"]:  # alg none, HS256 with the public key as secret ...
            raise InvalidAlgorithmError("The specified alg value is not allowed")
        return ring.public_key(jwt_header.get("kid"))  # jwk, jku, x5u headers are never looked at

    app.cli.add_command(rotate_keys_command)
    app.cli.add_command(retire_keys_command)


class JWKS(Resource):  # a Resource, so that a POST to it answers 405 in the envelope, as every other path does
    def get(self):
        """The public keys that verify tokens now (RFC 7517). Not in the envelope: verifiers expect exactly this."""
        return jwks()


def jwks():
    ring = current_app.extensions["keys"]
    keys = ring.trusted()
    if not keys:  # an empty set, kept max-age seconds by every verifier, would refuse every token there
        raise ring.unavailable()
    response = jsonify({"keys": [key.jwk() for key in keys]})
    # Verifiers may keep it JWKS_MAX_AGE seconds: a retired key is gone from their caches that long after.
    response.cache_control.public = True
    response.cache_control.max_age = current_app.config["JWKS_MAX_AGE"]
    response.add_etag()
    return response.make_conditional(request)  # If-None-Match with the same ETag: 304, no body


def when(epoch):
    return "never" if epoch == float("inf") else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Make a new signing key. Tokens signed with the older keys stay valid until they expire."""
    ring = current_app.extensions["keys"]
    kid = new_key(ring.folder)
    click.echo(f"New signing key {kid} in {ring.folder}.")
    for key in ring.trusted()[:-1]:
        click.echo(f"Key {key.kid} no longer signs; it verifies the tokens it signed until {when(key.retires)}.")


@click.command("retire-keys")
@click.option("--now", is_flag=True, help="Also the keys whose tokens may still be valid (a leaked key): they are refused.")
@with_appcontext
def retire_keys_command(now):
    """Delete the key files no valid token can need any more; safe to run again, e.g. daily."""
    ring = current_app.extensions["keys"]
    keys = ring.load()
    for key in keys[:-1]:
        if now or key.retires <= time.time():
            (ring.folder / f"{key.kid}.pem").unlink(missing_ok=True)
            click.echo(f"Retired key {key.kid}.")
        else:
            click.echo(f"Kept key {key.kid}: tokens it signed can be valid until {when(key.retires)}.")
    click.echo(f"Signing key: {keys[-1].kid}.")
