"""Step 07: tokens in HttpOnly cookies for browsers, with the article's CSRF settings made real."""
from flask import Flask
from flask_cors import CORS
from flask_jwt_extended import JWTManager

from .blocklist import init_blocklist
from .config import check_config, load_config
from .cookies import init_cookies
from .errors import Api, register_token_errors
from .models import create_user_command, init_database, init_db_command, load_user
from .resources import Hello, Login, Logout, OpenAPI, Refresh, Users


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_object(load_config())  # FLASK_CONFIG: development (default), testing or production
    if test_config is not None:
        app.config.from_mapping(test_config)
    check_config(app)

    # Cookies need credentials, so only CORS_ORIGINS, never "*"; a front end may read these three headers.
    CORS(app, supports_credentials=True, expose_headers=["X-CSRF-TOKEN", "WWW-Authenticate", "Retry-After"])
    init_database(app)  # db.init_app, with timeouts; a replaced SQLite file is reopened
    jwt = JWTManager(app)  # signs and checks tokens with JWT_SECRET_KEY (HS256)
    jwt.user_lookup_loader(load_user)  # a token dies with its user: deleted or made inactive
    init_blocklist(app, jwt)  # ... or when it is revoked: every token is looked up in the blocklist
    register_token_errors(app, jwt)
    init_cookies(app)  # an access cookie close to its expiry is renewed on the way out (implicit refresh)
    app.cli.add_command(init_db_command)  # flask --app <step> init-db
    app.cli.add_command(create_user_command)  # flask --app <step> create-user EMAIL

    api = Api(app, catch_all_404s=True)  # unknown paths answer in the envelope too
    api.add_resource(Hello, "/hello")
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")
    api.add_resource(Refresh, "/refresh")
    api.add_resource(Logout, "/logout")
    api.add_resource(OpenAPI, "/openapi.json")  # the contract this app keeps (openapi.json)
    return app
