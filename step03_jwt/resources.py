from flask import request
from flask_jwt_extended import create_access_token, get_jwt_identity, jwt_required
from flask_restful import Resource, reqparse

from .models import User


class Hello(Resource):
    def get(self):
        # Only what this request carries counts: the server remembers nothing between requests.
        name = request.args.get("name", "stranger")
        return {"code": 200, "message": f"hello, {name}"}


class Login(Resource):
    def post(self):
        args = (
            reqparse.RequestParser()
            # location="json" as in the article; nullable=False so that null is "missing", not a crash
            .add_argument("username", type=str, location="json", required=True, nullable=False, help="用户名不能为空")
            .add_argument("password", type=str, location="json", required=True, nullable=False, help="密码不能为空")
            .parse_args()
        )
        user_exists, password_correct, user = User.authenticate(args["username"], args["password"])
        if not user_exists:
            return {"code": 201, "message": "user not exist", "token": None, "userid": None}, 401
        if not password_correct:
            return {"code": 202, "message": "wrong password", "token": None, "userid": None}, 401
        if not user.active:  # the article stored `active` but never read it
            return {"code": 208, "message": "user inactive", "token": None, "userid": None}, 403
        # The identity becomes the token's "sub" claim, which must be a string: the username is one.
        token = create_access_token(identity=user.username)
        return {"code": 200, "message": "success", "token": token, "userid": user.id}


class Users(Resource):
    @jwt_required()  # with the parentheses: the article's bare @jwt_required no longer works (4.x)
    def get(self):
        users = [{"userid": user.id, "username": user.username} for user in User.get_users()]
        return {"code": 200, "message": "success", "users": users, "identity": get_jwt_identity()}
