"""Step 01: one stateless JSON endpoint, served by flask-restful, open to other origins."""
from flask import Flask
from flask_cors import CORS
from flask_restful import Api

from .resources import Hello


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        RESTFUL_JSON={"ensure_ascii": False},  # Chinese as characters, not \uXXXX escapes
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    CORS(app)  # the article's front end is served from another origin

    api = Api(app)
    api.add_resource(Hello, "/hello")
    return app
