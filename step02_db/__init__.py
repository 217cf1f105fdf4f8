"""Step 02: users in a database (Flask-SQLAlchemy), and a login that checks their password."""
from flask import Flask
from flask_cors import CORS
from flask_restful import Api

from .models import create_user_command, db, init_db_command
from .resources import Hello, Login, Users


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        RESTFUL_JSON={"ensure_ascii": False},  # Chinese as characters, not \uXXXX escapes
        # A relative SQLite path lands in the instance/ folder (Flask-SQLAlchemy 3): instance/<step>.sqlite
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{__name__}.sqlite",
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    CORS(app)  # the article's front end is served from another origin
    db.init_app(app)
    app.cli.add_command(init_db_command)  # flask --app <step> init-db
    app.cli.add_command(create_user_command)  # flask --app <step> create-user EMAIL

    api = Api(app)
    api.add_resource(Hello, "/hello")
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")
    return app
