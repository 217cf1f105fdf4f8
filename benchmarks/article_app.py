"""The article's own app, rebuilt on today's libraries: what benchmarks/users.py compares the finished step with.

As the article wrote it (flask-restful, flask-cors for every origin, flask-sqlalchemy, flask-jwt-extended with
HS256): POST /login, and GET /users behind @jwt_required() with its one query. Nothing the steps add: no user
row read per request, no blocklist, no login limits, no cookies, no error envelope. Only what 4.x needs
changed: @jwt_required() with parentheses, and the password checked against the step's own hash.
It reads the `user` table a step's init-db made (the columns the article had).
"""
import os

from flask import Flask, jsonify
from flask_cors import CORS
from flask_jwt_extended import JWTManager, create_access_token, jwt_required
from flask_restful import Api, Resource, reqparse
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash

db = SQLAlchemy()


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True, autoincrement=True)
    username = db.Column(db.String(45), nullable=False, unique=True)
    password = db.Column(db.String(255), nullable=False)
    active = db.Column(db.Boolean, default=True, nullable=False)

    @classmethod
    def authenticate(cls, username, password):
        user = cls.query.filter_by(username=username).first()
        if user is None:
            return False, False, None
        return True, check_password_hash(user.password, password), user

    @classmethod
    def get_users(cls):
        return cls.query.all()


class Login(Resource):
    def post(self):
        args = reqparse.RequestParser() \
            .add_argument("username", type=str, location="json", required=True, help="用户名不能为空") \
            .add_argument("password", type=str, location="json", required=True, help="密码不能为空") \
            .parse_args()
        exists, correct, user = User.authenticate(args["username"], args["password"])
        if not exists:
            return jsonify({"code": 201, "message": "user not exist", "token": None, "userid": None})
        if not correct:
            return jsonify({"code": 202, "message": "wrong password", "token": None, "userid": None})
        return jsonify({"code": 200, "message": "success", "token": create_access_token(identity=user.username),
                        "userid": user.id})


class Users(Resource):
    @jwt_required()
    def get(self):
        users = [{"userid": user.id, "username": user.username} for user in User.get_users()]
        return jsonify({"code": 200, "message": "success", "users": users})


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("SQLALCHEMY_DATABASE_URI", "sqlite://"),
        SQLALCHEMY_TRACK_MODIFICATIONS=True,
        JWT_SECRET_KEY=os.environ.get("JWT_SECRET_KEY", "article-app-key-for-benchmarks-only-32-bytes"),
        JWT_COOKIE_CSRF_PROTECT=True, JWT_CSRF_CHECK_FORM=True, JWT_ACCESS_TOKEN_EXPIRES=3600, PROPAGATE_EXCEPTIONS=True,
    )
    app.config.from_mapping(test_config or {})
    CORS(app)
    db.init_app(app)
    JWTManager(app)
    api = Api(app)
    api.add_resource(Login, "/login")
    api.add_resource(Users, "/users")
    return app
