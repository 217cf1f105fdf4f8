"""step02_db: users in a database, the init-db command, and the article's login answers."""
import pytest
from werkzeug.security import check_password_hash

from conftest import ADMIN


@pytest.mark.since("step02_db", until="step06_revoke")  # step07: no token in the body (tests/test_step07_cookies.py)
@pytest.mark.databases
def test_login_with_the_article_user(client):
    response = client.post("/login", json=ADMIN)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"code", "message", "token", "userid"}  # the article's envelope (step06 adds refresh_token)
    assert (body["code"], body["message"], body["userid"]) == (200, "success", 1)


def test_step02_login_has_no_token_yet(client):
    assert client.post("/login", json=ADMIN).get_json()["token"] is None


@pytest.mark.since("step02_db", until="step06_revoke")  # step07: no "token": null either (test_step07_cookies.py)
@pytest.mark.databases
@pytest.mark.parametrize(
    "credentials, code, message",
    [
        ({"username": "admin@gmail.com", "password": "654321"}, 202, "wrong password"),
        ({"username": "nobody@gmail.com", "password": "123456"}, 201, "user not exist"),
    ],
)
def test_login_refused_with_the_article_codes(client, credentials, code, message):
    response = client.post("/login", json=credentials)
    assert response.status_code == 401  # honest HTTP status; the body stays the article's
    assert response.get_json() == {"code": code, "message": message, "token": None, "userid": None}


@pytest.mark.since("step02_db", until="step03_jwt")  # step04 answers in the envelope instead
@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "username", "用户名不能为空"),
        ({"password": "123456"}, "username", "用户名不能为空"),
        ({"username": "admin@gmail.com"}, "password", "密码不能为空"),
        ({"username": None, "password": "123456"}, "username", "用户名不能为空"),
        ({"username": "admin@gmail.com", "password": None}, "password", "密码不能为空"),
    ],
)
def test_login_missing_field_gets_the_article_message(client, body, field, message):
    response = client.post("/login", json=body)
    assert response.status_code == 400
    assert response.get_json() == {"message": {field: message}}
    assert message.encode() in response.data  # readable characters, not \uXXXX escapes


@pytest.mark.since("step02_db")
@pytest.mark.parametrize(
    "data, content_type, status",
    [
        ('{"username": ', "application/json", 400),  # broken JSON
        ("username=admin@gmail.com&password=123456", "application/x-www-form-urlencoded", 415),
        ('{"username": "admin@gmail.com", "password": "123456"}', None, 415),  # curl -d without -H
    ],
)
def test_login_body_that_is_not_json(client, data, content_type, status):
    response = client.post("/login", data=data, content_type=content_type)
    assert response.status_code == status
    assert "message" in response.get_json()


@pytest.mark.since("step02_db", until="step03_jwt")
@pytest.mark.parametrize("data", ["5", '"username"'])
def test_json_that_is_not_an_object_crashes_reqparse(make_app, data):
    """A known rough edge of the article's reqparse code, fixed in step04 (errors)."""
    client = make_app(TESTING=False).test_client()
    response = client.post("/login", data=data, content_type="application/json")
    assert response.status_code == 500


@pytest.mark.since("step02_db")
@pytest.mark.databases
def test_users_lists_every_user(app, models, client, auth):
    db, User = models.db, models.User
    with app.app_context():  # insert directly: the constructor would hash, which is slow on purpose
        db.session.execute(User.__table__.insert().values(username="小明@例子.cn", password="x"))
        db.session.commit()
    response = client.get("/users", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["code"], body["message"]) == (200, "success")
    assert body["users"] == [
        {"userid": 1, "username": "admin@gmail.com"},
        {"userid": 2, "username": "小明@例子.cn"},
    ]


def test_step02_users_is_open_to_anyone(client):
    assert client.get("/users").status_code == 200


@pytest.mark.real_password_hashes  # the hash itself is checked: the step's own method
@pytest.mark.since("step02_db")
@pytest.mark.databases(later_steps_on_one=True)  # init-db and the column are copied forward (step08 adds a role)
def test_init_db_creates_tables_and_the_article_user(app, models, runner):
    db, User = models.db, models.User
    with app.app_context():
        db.drop_all()  # an empty database
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0
    assert "Created user admin@gmail.com" in result.output
    with app.app_context():
        (admin,) = db.session.execute(db.select(User)).scalars().all()
        assert admin.username == ADMIN["username"] and admin.active is True
        assert admin.password != ADMIN["password"]  # only a salted hash is stored
        assert check_password_hash(admin.password, ADMIN["password"])
        # The column must hold the hash on MySQL too, where VARCHAR(n) is enforced (SQLite ignores it).
        assert len(admin.password) <= User.password.type.length


@pytest.mark.since("step02_db")
@pytest.mark.databases
def test_init_db_twice_neither_duplicates_nor_wipes(app, models, runner):
    db, User = models.db, models.User
    with app.app_context():
        before = db.session.execute(db.select(User.password)).scalar_one()
        db.session.execute(User.__table__.insert().values(username="someone@gmail.com", password="x"))
        db.session.commit()
    result = runner.invoke(args=["init-db"])  # the seeded database has had one init-db already
    assert result.exit_code == 0
    assert "already exists" in result.output
    with app.app_context():
        rows = db.session.execute(db.select(User.username, User.password).order_by(User.id)).all()
    assert rows == [("admin@gmail.com", before), ("someone@gmail.com", "x")]


@pytest.mark.since("step02_db")
def test_user_keeps_the_active_flag_it_was_given(app, models):
    """The article's User.__init__ set active = True whatever it was given."""
    User = models.User
    assert User("someone@gmail.com", "secret", active=False).active is False


# flask --app <step> create-user EMAIL, for instructors ---------------------------------------------


@pytest.mark.since("step02_db")
@pytest.mark.databases
def test_create_user_then_log_in_as_that_user(client, runner):
    result = runner.invoke(args=["create-user", "小明@例子.cn", "--password", "密码123"])
    assert (result.exit_code, result.output) == (0, "Created user 小明@例子.cn.\n")
    response = client.post("/login", json={"username": "小明@例子.cn", "password": "密码123"})
    assert response.status_code == 200 and response.get_json()["userid"] == 2  # non-ASCII round trip


@pytest.mark.since("step02_db")
def test_create_user_asks_twice_and_does_not_echo(runner):
    result = runner.invoke(args=["create-user", "learner01@example.com"], input="typo\ns3cret\ns3cret\ns3cret\n")
    assert result.exit_code == 0
    assert result.output.count("Password:") == 2 and "Repeat for confirmation:" in result.output
    assert "do not match" in result.output  # the first pair differed: asked again
    assert "s3cret" not in result.output and "typo" not in result.output


def assert_create_user_refused(app, models, runner, username, password, message):
    result = runner.invoke(args=["create-user", username, "--password", password])
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"
    with app.app_context():  # and nothing changed
        assert models.db.session.execute(models.db.select(models.User.username)).scalars().all() == [ADMIN["username"]]


@pytest.mark.since("step02_db")
@pytest.mark.databases
def test_create_user_refuses_a_username_that_exists(app, models, runner):
    """The database's unique index refuses it: each server's driver raises its own IntegrityError."""
    assert_create_user_refused(app, models, runner, "admin@gmail.com", "x",
                               "User admin@gmail.com already exists: nothing was changed.")


@pytest.mark.since("step02_db")
@pytest.mark.parametrize(
    "username, password, message",
    [
        ("a" * 46 + "@example.com", "x", "A username has at most 45 characters."),
        ("someone@example.com", "", "The password must not be empty."),
    ],
)
def test_create_user_refuses_with_a_clear_message(app, models, runner, username, password, message):
    """Checked before the database is asked: the same on every database."""
    assert_create_user_refused(app, models, runner, username, password, message)


# One spelling per username: look-alikes of admin@gmail.com ------------------------------------------

EXISTS = "User admin@gmail.com already exists: nothing was changed."  # the same name, spelled otherwise
INVISIBLE = "A username must not contain control or invisible characters."
MIXED = "A username must not mix Latin letters with Cyrillic or Greek ones."
LOOK_ALIKES = [  # (username, what create-user answers)
    ("ADMIN@gmail.com", EXISTS),
    ("Admin@Gmail.COM", EXISTS),
    (" admin@gmail.com", EXISTS),
    ("admin@gmail.com\t", INVISIBLE),  # a tab is a control character, around the name too
    ("ａｄｍｉｎ@gmail.com", EXISTS),  # full-width letters
    ("ＡＤＭＩＮ＠ｇｍａｉｌ．ｃｏｍ", EXISTS),  # full-width all through
    ("admin\u200b@gmail.com", INVISIBLE),  # a zero-width space
    ("\u202eadmin@gmail.com", INVISIBLE),  # a right-to-left override
    ("\ufeffadmin@gmail.com", INVISIBLE),  # a byte order mark
    ("ad\u0000min@gmail.com", INVISIBLE),
    ("\u0430dmin@gmail.com", MIXED),  # a Cyrillic а
    ("admin@gm\u0430il.com", MIXED),
    ("\u0391DMIN@gmail.com", MIXED),  # a Greek Α
]


@pytest.mark.since("step02_db")
@pytest.mark.databases(later_steps_on_one=True)  # the normalising code is copied forward: later steps on one, in turn
@pytest.mark.parametrize("username, refusal", LOOK_ALIKES, ids=[ascii(u) for u, _ in LOOK_ALIKES])
def test_a_look_alike_of_a_username_is_refused_on_every_database(app, models, runner, client, username, refusal):
    """Stored normalised, so the unique index refuses every spelling of one name, on SQLite as on MariaDB and
    PostgreSQL; the same name spelled otherwise logs in as that user, a refused one is nobody."""
    assert_create_user_refused(app, models, runner, username, "x", refusal)
    response = client.post("/login", json={"username": username, "password": ADMIN["password"]})
    assert (response.status_code == 200) == (refusal == EXISTS)


@pytest.mark.since("step02_db")
@pytest.mark.databases
def test_a_username_is_stored_as_its_one_spelling(client, runner):
    result = runner.invoke(args=["create-user", " Learner@Example.COM ", "--password", "pw"])
    assert (result.exit_code, result.output) == (0, "Created user learner@example.com.\n")
    assert client.post("/login", json={"username": "learner@example.com", "password": "pw"}).status_code == 200
    assert client.post("/login", json={"username": "ＬＥＡＲＮＥＲ@example.com", "password": "pw"}).status_code == 200


# The article's `active` column, and what login tells about accounts --------------------------------


@pytest.mark.since("step02_db", until="step06_revoke")  # step07: no "token": null (test_step07_cookies.py)
@pytest.mark.databases
def test_inactive_user_cannot_log_in(app, models, client):
    with app.app_context():
        models.db.session.execute(models.db.update(models.User).values(active=False))
        models.db.session.commit()
    response = client.post("/login", json=ADMIN)
    assert response.status_code == 403
    assert response.get_json() == {"code": 208, "message": "user inactive", "token": None, "userid": None}
    wrong = client.post("/login", json={**ADMIN, "password": "654321"})  # only the right password learns it
    assert (wrong.status_code, wrong.get_json()["code"]) == (401, 202)


@pytest.mark.real_password_hashes  # the hash itself is checked: the step's own method
@pytest.mark.since("step02_db")
@pytest.mark.parametrize("username", ["admin@gmail.com", "nobody@gmail.com"])
def test_login_checks_one_password_hash_whether_or_not_the_user_exists(app, client, models, monkeypatch, username):
    """Counting the slow work instead of timing it: the same for an unknown user, so no timing difference."""
    checked = []
    # Counted, not computed: the password is wrong for both, so False is what the check would answer.
    monkeypatch.setattr(models, "check_password_hash", lambda *args: checked.append(args[0]) or False)
    client.post("/login", json={"username": username, "password": "654321"})
    assert len(checked) == 1
    with app.app_context():  # the hash init-db stored for the article's user: what a real user's check costs
        stored = models.db.session.execute(models.db.select(models.User.password)).scalar_one()
    assert checked[0].split("$")[0] == stored.split("$")[0]  # same method and cost


@pytest.mark.real_password_hashes  # the hash itself is checked: the step's own method
@pytest.mark.since("step02_db")
def test_same_password_is_stored_differently_and_never_as_the_articles_sha256(models):
    """The article stored sha256("123456"): the same for every user, and in every lookup table."""
    import hashlib

    first, second = models.User("a@example.com", "123456"), models.User("b@example.com", "123456")
    article = hashlib.sha256(b"123456").hexdigest()  # 8d969eef..., the digest the article stores
    assert first.password != second.password  # salted: equal passwords, different hashes
    assert article not in first.password and article not in second.password
