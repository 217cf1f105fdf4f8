"""Step 03: login issues a JSON Web Token; /users requires it (flask-jwt-extended 4)."""
from datetime import timedelta

from flask import Flask
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_restful import Api

from .models import create_user_command, db, init_db_command, load_user
from .resources import Hello, Login, Users


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        RESTFUL_JSON={"ensure_ascii": False},  # Chinese as characters, not \uXXXX escapes
        # A relative SQLite path lands in the instance/ folder (Flask-SQLAlchemy 3): instance/<step>.sqlite
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{__name__}.sqlite",
        JWT_SECRET_KEY="dev-only-key-change-me-it-must-be-32-bytes-or-more",  # Change this!
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15),  # the article used 3600 seconds
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    CORS(app)  # the article's front end is served from another origin
    db.init_app(app)
    jwt = JWTManager(app)  # signs and checks tokens with JWT_SECRET_KEY (HS256)
    jwt.user_lookup_loader(load_user)  # a token dies with its user: deleted or made inactive
    app.cli.add_command(init_db_command)  # flask --app <step> init-db
    app.cli.add_command(create_user_command)  # flask --app <step> create-user EMAIL

    api = Api(app)
    api.add_resource(Hello, "/hello")
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")
    return app
