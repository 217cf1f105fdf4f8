"""Each step's OpenAPI document (stepNN_name/openapi.json, step 02 on) and its app agree, both ways: a valid, readably
written OpenAPI 3.1 document lists exactly the app's operations; every probe below gets only documented answers
(status, media type, headers, body), and every documented answer and oneOf branch is got by some probe."""
import functools
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import jsonschema_rs
import jwt
import pytest
from flask_jwt_extended import create_access_token, create_refresh_token
from werkzeug.security import generate_password_hash

from conftest import ADMIN, FAST_HASH, another_key, sign_as

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PRODUCTION = {"TESTING": False, "DEBUG": False}
INACTIVE, GHOST, PLAIN = "inactive@gmail.com", "ghost@gmail.com", "user@gmail.com"  # the last: step08's non-admin
METHODS = ("get", "post", "put", "patch", "delete")
BAD_BODIES = {
    "not a JSON object": {"json": []},
    "JSON false": {"json": False},  # reqparse (steps 02-03) cannot read it: a 500
    "empty object": {"json": {}},
    "broken JSON": {"data": "{", "content_type": "application/json"},
    "not JSON": {"data": "username=a", "content_type": "application/x-www-form-urlencoded"},
    "too large": {"json": {"username": "x" * 20000, "password": "x"}},
    "not a string": {"json": {"username": 123, "password": ["x"]}},
}


@pytest.fixture
def document(step_package):
    path = Path(step_package.__file__).with_name("openapi.json")
    assert path.is_file(), f"{step_package.__name__} has no OpenAPI document: write {path.name} beside its code"
    return json.loads(path.read_text(encoding="utf-8"))


def operations(document):
    return {(path, method.upper()): op for path, item in document["paths"].items() for method, op in item.items()
            if method in METHODS}


def resolve(document, node, pointer=""):
    """Follow a node's local $refs: (the node, its JSON pointer)."""
    while isinstance(node, dict) and "$ref" in node:
        pointer, node = node["$ref"].removeprefix("#"), document
        for part in pointer.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def escape(key):
    return key.replace("~", "~0").replace("/", "~1")


@pytest.mark.since("step02_db")
def test_the_step_has_a_valid_openapi_31_document(step_package, document):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR  # the specification's schema; import: ~0.7 s

    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert not errors and document["openapi"].startswith("3.1."), "\n".join(errors[:10])
    text = Path(step_package.__file__).with_name("openapi.json").read_text(encoding="utf-8")
    assert text == json.dumps(document, indent=2, ensure_ascii=False) + "\n", (
        "write openapi.json as json.dumps(document, indent=2, ensure_ascii=False) plus a newline: diffs stay readable")
    for ref in re.findall(r'"\$ref": "([^"]+)"', text):
        resolve(document, {"$ref": ref})  # KeyError if it points nowhere


@pytest.mark.since("step02_db")
def test_the_document_lists_exactly_the_apps_operations(app, document):
    served = {(re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method)  # /users/<int:id> -> /users/{id}
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served - set(operations(document)) == set(), "served but not documented"
    assert set(operations(document)) - served == set(), "documented but not served"


@pytest.mark.since("step04_errors")
def test_the_app_serves_its_document(client, document):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == document


@pytest.fixture
def apps(make_app, models, closed_port, tmp_path):
    """The step in production mode on a seeded database; the same with the database, blocklist or signing keys down."""
    app = make_app(**PRODUCTION)
    with app.app_context():
        for name, active in ((INACTIVE, False), (GHOST, True)) + (((PLAIN, True),) if hasattr(models.User, "role") else ()):
            models.db.session.execute(models.User.__table__.insert().values(
                username=name, password=generate_password_hash(ADMIN["password"], method=FAST_HASH), active=active))
        models.db.session.commit()
    made = {"up": app, "database down": make_app(**PRODUCTION, SQLALCHEMY_DATABASE_URI="sqlite:////nonexistent/none.db"),
            "blocklist down": make_app(**PRODUCTION, BLOCKLIST="redis", REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")}
    if "LOGIN_LIMIT" in app.config:  # step08 on: one failed login allowed, the next answers 429
        made["login limited"] = make_app(**PRODUCTION, LOGIN_LIMIT="1 per hour")
    if "keys" in app.extensions:  # step09 on: KEYS_DIR names a file, so no key can be read or made
        (tmp_path / "not-a-folder").write_text("", encoding="utf-8")
        made["keys down"] = make_app(**PRODUCTION, KEYS_DIR=str(tmp_path / "not-a-folder"))
    return made


def accounts(app, models):
    """Step08 on: the users' rows by id, put back after a probe changed them (a password change ends later tokens)."""
    columns = [getattr(models.User, c) for c in ("id", "password", "active", "role", "token_version")]
    with app.app_context():
        return {row.id: row._asdict() for row in models.db.session.execute(models.db.select(*columns))}


def tokens(app, models):
    """Authorization (or Cookie) headers by name: the good ones, and every kind of bad one."""
    if "flask-jwt-extended" not in app.extensions:
        return {}
    admin = ADMIN["username"]
    with app.app_context():
        made = {"access": create_access_token(admin), "refresh": create_refresh_token(admin),
                "expired": create_access_token(admin, expires_delta=timedelta(seconds=-1)),
                "expired refresh": create_refresh_token(admin, expires_delta=timedelta(seconds=-1)),
                # fresh: a deleted user's token reaches the user lookup on step08's fresh-only operations too
                "deleted user": create_access_token(GHOST, fresh=True),
                "deleted user's refresh": create_refresh_token(GHOST)}
        if hasattr(models.User, "token_version"):  # step08 on; ended: made before a password change
            made |= {"fresh access": create_access_token(admin, fresh=True),
                     "plain user": create_access_token(PLAIN, fresh=True),
                     "ended access": create_access_token(admin, fresh=True, additional_claims={"token_version": -1}),
                     "ended refresh": create_refresh_token(admin, additional_claims={"token_version": -1})}
        models.db.session.execute(models.db.delete(models.User).filter_by(username=GHOST))
        models.db.session.commit()
        revoked = {"revoked access": create_access_token(admin, fresh=True), "revoked refresh": create_refresh_token(admin)}
    claims = jwt.decode(made["access"], options={"verify_signature": False})
    made |= {"not a JWT": "abc", "alg none": jwt.encode(claims, None, "none"),
             "another key": sign_as(app, claims, another_key(app))}  # HS256; EdDSA with its kid from step09 on
    if "keys" in app.extensions:  # step09 on: signed with our key, but naming no key, or made for someone else
        made |= {"unknown kid": jwt.encode(claims, another_key(app), "EdDSA", headers={"kid": "no-such-key"}),
                 "another audience": sign_as(app, {**claims, "aud": "another-service"}),
                 "another issuer": sign_as(app, {**claims, "iss": "someone-else"})}
    if "/logout" in {rule.rule for rule in app.url_map.iter_rules()}:  # logged out: revoked from now on
        for token in revoked.values():
            assert app.test_client().post("/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        made |= revoked
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in made.items()}
    headers |= {"none": {}, "another scheme": {"Authorization": "JWT abc"}}
    for kind in ("access", "refresh", "fresh access") if "cookies" in app.config["JWT_TOKEN_LOCATION"] else ():  # step07 on
        if kind in made:
            cookie = f"{app.config[f'JWT_{kind.split()[-1].upper()}_COOKIE_NAME']}={made[kind]}"
            csrf = jwt.decode(made[kind], options={"verify_signature": False})["csrf"]
            headers[f"{kind} cookie"] = {"Cookie": cookie, "X-CSRF-TOKEN": csrf}
            headers[f"{kind} cookie, no CSRF"] = {"Cookie": cookie}  # 212
            headers[f"{kind} cookie, wrong CSRF"] = {"Cookie": cookie, "X-CSRF-TOKEN": "not-" + csrf}  # 213
    return headers


def example_urls(document, path, op):
    """[(why, url)]: the path with its parameter set to each example ([("", path)] for a path without one)."""
    for parameter in (resolve(document, p)[0] for p in op.get("parameters", [])):
        if parameter["in"] == "path":
            return [(f"path {why}", path.replace("{%s}" % parameter["name"], str(example["value"])))
                    for why, example in parameter["examples"].items()]
    return [("", path)]


def probes(document, headers):
    """(app, method, path, url, request arguments, why) for every request worth sending."""
    for (path, method), op in operations(document).items():
        (_, url), *other_urls = example_urls(document, path, op)
        content = resolve(document, op.get("requestBody", {}))[0].get("content", {})
        examples = [example["value"] for example in content.get("application/json", {}).get("examples", {}).values()]
        first = {"json": examples[0]} if examples else {}
        # security scheme -> token: freshAccessToken -> "fresh access", accessCookie -> "access cookie"
        good = [headers[re.sub("(?=[A-Z])", " ", name).lower().removesuffix(" token")]
                for requirement in op.get("security", []) for name in requirement]
        sent = {"headers": good[0] if good else {}}
        for why, auth in [("good token", h) for h in good] + list(headers.items()) if good else [("no token needed", {})]:
            yield "up", method, path, url, {"headers": auth, **first}, why
        yield from (("up", method, path, url, {**sent, "json": value}, f"example {value}") for value in examples)
        for why, kwargs in BAD_BODIES.items() if "application/json" in content else ():
            yield "up", method, path, url, {**sent, **kwargs}, why
        for auth in good if "application/x-www-form-urlencoded" in content else ():  # CSRF as a form field, not a header
            if "X-CSRF-TOKEN" in auth:
                yield "up", method, path, url, {"headers": {"Cookie": auth["Cookie"]},
                                                "data": {"csrf_token": auth["X-CSRF-TOKEN"]}}, "CSRF form field"
        yield from ((down, method, path, url, {**sent, **first}, down) for down in ("database down", "blocklist down", "keys down"))
        yield from (("up", method, path, other, {**sent, **first}, why) for why, other in other_urls)
        for attempt in ("first failure", "over the limit") if "429" in op["responses"] else ():  # 429 before the password
            yield "login limited", method, path, url, {"json": {"username": ADMIN["username"], "password": "no"}}, attempt
    for path, item in document["paths"].items():
        url = example_urls(document, path, next(op for method, op in item.items() if method in METHODS))[0][1]
        yield "up", next(m for m in METHODS if m not in item).upper(), path, url, {}, "MethodNotAllowed"
    yield "up", "GET", "/no-such-path", "/no-such-path", {}, "NotFound"


@pytest.mark.since("step02_db")
def test_every_answer_is_documented_and_every_documented_answer_happens(step, apps, models, document):
    answers = {}
    # pointer -> the schema there, $refs resolved in the whole document; each made once (~1 ms each)
    validator = functools.cache(lambda pointer: jsonschema_rs.Draft202012Validator(
        {**document, "$ref": "#" + quote(pointer, safe="/~")}))
    headers, rows = tokens(apps["up"], models), hasattr(models.User, "token_version") and accounts(apps["up"], models)
    for app_name, method, path, url, kwargs, why in probes(document, headers):
        if app_name not in apps:  # keys down before step09
            continue
        response = apps[app_name].test_client(use_cookies=False).open(url, method=method, **kwargs)  # no jar: our Cookies
        now = rows and app_name == "up" and method != "GET" and accounts(apps["up"], models)  # a GET changes nothing
        if now and any(now.get(key) != row for key, row in rows.items()):  # a user a probe added stays; commits cost
            with apps["up"].app_context():
                for row in rows.values():
                    models.db.session.execute(models.db.update(models.User).filter_by(id=row["id"]).values(**row))
                models.db.session.commit()
        where, status = f"{step}: {method} {path} ({why}) -> {response.status_code}", response.status_code
        if why in ("MethodNotAllowed", "NotFound"):
            assert status == (405 if why == "MethodNotAllowed" else 404), where
            allowed = {m.strip().lower() for m in response.headers.get("Allow", "").split(",")}
            assert why == "NotFound" or set(document["paths"][path]) & set(METHODS) <= allowed, f"{where}: Allow: {allowed}"
            pointer = f"/components/responses/{why}"
        else:
            assert str(status) in operations(document)[path, method]["responses"], f"{where}: undocumented status " \
                f"{response.get_data(as_text=True)[:200]}"
            pointer = f"/paths/{escape(path)}/{method.lower()}/responses/{status}"
        # The answer against the response object at `pointer`: its headers, media type and body.
        spec, spec_pointer = resolve(document, {"$ref": "#" + pointer}, pointer)
        for name, header in spec.get("headers", {}).items():
            header, header_pointer = resolve(document, header, f"{spec_pointer}/headers/{escape(name)}")
            value = response.headers.get(name)
            assert value is not None or not header.get("required"), f"{where}: no {name} header"
            errors = [] if value is None else list(validator(header_pointer + "/schema").iter_errors(value))
            assert not errors, f"{where}: header {name}: {value!r}: {errors[0].message}"
        documented, body = list(spec.get("content", {})), None
        assert response.mimetype in documented, f"{where}: answered {response.mimetype}, documented {documented}"
        if response.mimetype == "application/json":
            body = response.get_json()
            errors = list(validator(f"{spec_pointer}/content/application~1json/schema").iter_errors(body))
            at = "/".join(map(str, errors[0].instance_path)) if errors else ""
            assert not errors, f"{where}: {body}: {errors[0].message} (at {at})"
        answers.setdefault(pointer, []).append(body)
    expected = {"/components/responses/NotFound", "/components/responses/MethodNotAllowed"} | {
        f"/paths/{escape(path)}/{method.lower()}/responses/{status}"
        for (path, method), op in operations(document).items() for status in op["responses"]}
    assert sorted(expected - set(answers)) == [], "documented, but no probe got this answer: add a probe"
    for pointer in sorted(expected):
        spec, spec_pointer = resolve(document, {"$ref": "#" + pointer}, pointer)
        if "application/json" in spec.get("content", {}):
            schema_pointer = f"{spec_pointer}/content/application~1json/schema"
            schema, schema_pointer = resolve(document, {"$ref": "#" + schema_pointer}, schema_pointer)
            for index, branch in enumerate(schema.get("oneOf", [])):
                assert any(map(validator(f"{schema_pointer}/oneOf/{index}").is_valid, answers[pointer])), (
                    f"{pointer}: no answer matched {branch}: add a probe")
