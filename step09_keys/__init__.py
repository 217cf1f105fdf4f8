"""Step 09: tokens signed with a private key, checked by other services with the public key (a JWKS)."""
from flask import Flask
from flask_cors import CORS
from flask_jwt_extended import JWTManager

from .blocklist import init_blocklist
from .config import check_config, load_config
from .cookies import init_cookies
from .errors import Api, register_key_errors, register_token_errors
from .keys import JWKS, init_keys
from .limits import init_login_limits
from .models import create_user_command, init_database, init_db_command, load_user
from .resources import FreshLogin, Hello, Login, Logout, OpenAPI, Password, Refresh, UserAdmin, Users


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_object(load_config())  # FLASK_CONFIG: development (default), testing or production
    if test_config is not None:
        app.config.from_mapping(test_config)
    check_config(app)

    # Cookies need credentials, so only CORS_ORIGINS, never "*"; a front end may read these three headers.
    CORS(app, supports_credentials=True, expose_headers=["X-CSRF-TOKEN", "WWW-Authenticate", "Retry-After"])
    init_database(app)  # db.init_app, with timeouts; a replaced SQLite file is reopened
    jwt = JWTManager(app)
    init_keys(app, jwt)  # signs with the newest private key (EdDSA); JWKS below serves the public keys
    jwt.user_lookup_loader(load_user)  # a token dies with its user: deleted, made inactive, or its password changed
    init_blocklist(app, jwt)  # ... or when it is revoked: every token is looked up in the blocklist
    register_token_errors(app, jwt)
    register_key_errors(app)
    init_cookies(app)  # an access cookie close to its expiry is renewed on the way out (implicit refresh)
    init_login_limits(app)  # failed logins counted in Redis, shared by every worker and host (limits.py)
    app.cli.add_command(init_db_command)  # flask --app <step> init-db
    app.cli.add_command(create_user_command)  # flask --app <step> create-user EMAIL [--role admin]

    api = Api(app, catch_all_404s=True)  # unknown paths answer in the envelope too
    api.add_resource(Hello, "/hello")
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")  # GET: every user; POST: admins only, a new user
    api.add_resource(Refresh, "/refresh")
    api.add_resource(Logout, "/logout")
    api.add_resource(FreshLogin, "/fresh-login")  # the password again, for a fresh access token
    api.add_resource(UserAdmin, "/users/<int:userid>")  # admin, fresh token: {"active": false}
    api.add_resource(Password, "/users/me/password")  # fresh token: ends every earlier token of the user
    api.add_resource(JWKS, "/.well-known/jwks.json")  # the public keys, for every service that checks our tokens
    api.add_resource(OpenAPI, "/openapi.json")  # the contract this app keeps (openapi.json)
    return app
