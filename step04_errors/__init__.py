"""Step 04: every error, token errors first, answers in the article's envelope {code, message}."""
from datetime import timedelta

from flask import Flask
from flask_cors import CORS
from flask_jwt_extended import JWTManager

from .errors import Api, register_token_errors
from .models import create_user_command, init_database, init_db_command, load_user
from .resources import Hello, Login, OpenAPI, Users


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        RESTFUL_JSON={"ensure_ascii": False},  # Chinese as characters, not \uXXXX escapes
        # A relative SQLite path lands in the instance/ folder (Flask-SQLAlchemy 3): instance/<step>.sqlite
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{__name__}.sqlite",
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},  # a pooled connection the server dropped is replaced
        DATABASE_TIMEOUT=timedelta(seconds=5),  # a database that stops answering: a 503 after this, not a hang
        MAX_CONTENT_LENGTH=16 * 1024,  # a login is tiny: refuse megabytes (413) before reading them
        JWT_SECRET_KEY="dev-only-key-change-me-it-must-be-32-bytes-or-more",  # Change this!
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15),  # the article used 3600 seconds
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    # The article's front end is served from another origin; it may read these two headers of an answer.
    CORS(app, expose_headers=["WWW-Authenticate", "Retry-After"])
    init_database(app)  # db.init_app, with timeouts; a replaced SQLite file is reopened
    jwt = JWTManager(app)  # signs and checks tokens with JWT_SECRET_KEY (HS256)
    jwt.user_lookup_loader(load_user)  # a token dies with its user: deleted or made inactive
    register_token_errors(app, jwt)
    app.cli.add_command(init_db_command)  # flask --app <step> init-db
    app.cli.add_command(create_user_command)  # flask --app <step> create-user EMAIL

    api = Api(app, catch_all_404s=True)  # unknown paths answer in the envelope too
    api.add_resource(Hello, "/hello")
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")
    api.add_resource(OpenAPI, "/openapi.json")  # the contract this app keeps (openapi.json)
    return app
