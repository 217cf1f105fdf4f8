"""Each step's OpenAPI document (stepNN/openapi.json, from step 02 on) and its app agree, both ways.

- The document is OpenAPI 3.1 (checked against the specification's own JSON Schema), every $ref resolves, and it
  is written as `json.dumps(document, indent=2, ensure_ascii=False)` so that `diff stepA stepB` reads line by line.
- The app's routes (method by method; Flask's own HEAD and OPTIONS and /static aside) are the document's
  operations, no more, no fewer.
- PROBES send, through Flask's test client to the app in production mode (no debug, no testing), the requests
  that make every answer a step can give: each request example of the document, bodies that are broken, too large
  or not JSON, no token, every kind of bad token, each token type, the database and the blocklist down, a method
  or a path the document does not list. Every answer must be documented (status, media type, required headers,
  body against its schema), and every documented answer must be seen: each status of each operation, and each
  branch of a `oneOf` (the envelope's codes: 201 token expired, 203 missing token ...). An unlisted path answers
  the document's `components.responses.NotFound`, an unlisted method its `MethodNotAllowed`.

A new step adds its document as stepNN_name/openapi.json; `@pytest.mark.since("step02_db")` picks it up (a step
without one fails here). If it documents an answer that no probe brings about, test_every_documented_answer_happens
names it: add a probe below.
"""
import json
import re
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from flask_jwt_extended import create_access_token, create_refresh_token
from schemathesis.specs.openapi.definitions import OPENAPI_31  # the specification's schema, as schemathesis ships it
from werkzeug.security import generate_password_hash

from conftest import ADMIN, FAST_HASH, another_key, sign_as
from tutorial.live import free_port

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PRODUCTION = {"TESTING": False, "DEBUG": False}
INACTIVE, GHOST = "inactive@gmail.com", "ghost@gmail.com"  # the document's "inactive user" example; a deleted user
METHODS = ("get", "post", "put", "patch", "delete")
GOOD = {"accessToken": "access", "refreshToken": "refresh", "accessCookie": "access cookie", "refreshCookie": "refresh cookie",
        "freshAccessToken": "fresh access", "freshAccessCookie": "fresh access cookie"}  # fresh: step08 on
PLAIN = "user@gmail.com"  # step08 on: a user whose role is not admin


def load_document(step_package):
    path = Path(step_package.__file__).with_name("openapi.json")
    assert path.is_file(), f"{step_package.__name__} has no OpenAPI document: write {path.name} beside its code"
    return json.loads(path.read_text(encoding="utf-8")), path


@pytest.fixture
def document(step_package):
    return load_document(step_package)[0]


def operations(document):
    """{(path, METHOD): operation} of the document."""
    return {(path, method.upper()): op for path, item in document["paths"].items()
            for method, op in item.items() if method in METHODS}


def app_operations(app):
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)  # /users/<int:id> -> /users/{id}
        found |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def resolve(document, node, pointer):
    """Follow $ref (local ones only); return (node, its JSON pointer)."""
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def escape(key):
    return key.replace("~", "~0").replace("/", "~1")


def validator(document, pointer):
    """A validator for the schema at `pointer`, its $refs resolved against the whole document."""
    from jsonschema import Draft202012Validator  # imported by the tests that validate, not at collection: ~1 s of CPU
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    root = {**document, "$ref": "#" + pointer}  # the document's other keys are unknown keywords: ignored
    return Draft202012Validator(root, registry=Registry().with_resource("", Resource(root, DRAFT202012)))


# --- the document alone --------------------------------------------------------------------------------


@pytest.mark.since("step02_db")
def test_the_step_has_a_valid_openapi_31_document(step_package):
    from jsonschema import Draft202012Validator

    document, path = load_document(step_package)
    errors = sorted(Draft202012Validator(OPENAPI_31).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])
    assert document["openapi"].startswith("3.1.")
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(document, indent=2, ensure_ascii=False) + "\n", (
        f"write {path.name} as json.dumps(document, indent=2, ensure_ascii=False) plus a newline, so diffs stay readable")
    refs = re.findall(r'"\$ref": "([^"]+)"', text)
    for ref in refs:
        resolve(document, {"$ref": ref}, "")  # KeyError if it points nowhere


@pytest.mark.since("step02_db")
def test_the_document_lists_exactly_the_apps_operations(app, document):
    documented, served = set(operations(document)), app_operations(app)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


@pytest.mark.since("step04_errors")
def test_the_app_serves_its_document(client, step_package):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == load_document(step_package)[0]


# --- the probes ----------------------------------------------------------------------------------------


@pytest.fixture
def apps(make_app, models):
    """The step in production mode on a seeded database; the same with the database, and the blocklist, down."""
    app = make_app(**PRODUCTION)
    with app.app_context():
        db, User = models.db, models.User
        for name, active in ((INACTIVE, False), (GHOST, True)) + (((PLAIN, True),) if hasattr(User, "role") else ()):
            db.session.execute(User.__table__.insert().values(
                username=name, password=generate_password_hash(ADMIN["password"], method=FAST_HASH), active=active))
        db.session.commit()
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    made = {
        "up": app,
        "database down": make_app(**PRODUCTION, SQLALCHEMY_DATABASE_URI="sqlite:////nonexistent-folder/none.sqlite"),
        "blocklist down": make_app(**PRODUCTION, BLOCKLIST="redis", REDIS_URL=unreachable),  # read from step06 on
    }
    if "LOGIN_LIMIT" in app.config:  # step08 on: one failed login allowed, the next answers 429
        made["login limited"] = make_app(**PRODUCTION, LOGIN_LIMIT="1 per hour")
    return made


def seeded_accounts(app, models):
    """Step08 on: the seeded users' rows, to be put back after each probe (a password change, a deactivation)."""
    if not hasattr(models.User, "token_version"):
        return None
    columns = ("id", "password", "active", "role", "token_version")
    with app.app_context():
        return [dict(zip(columns, row)) for row in models.db.session.execute(
            models.db.select(*(getattr(models.User, c) for c in columns))).all()]


def restore_accounts(app, models, rows):
    """Each probe sees the seeded accounts: a password change would end every token the later probes send. Written
    back only if a probe changed them: most change nothing, and each commit waits for the disk."""
    now = {row["id"]: row for row in seeded_accounts(app, models)}
    if all(now.get(row["id"]) == row for row in rows):
        return
    with app.app_context():
        for row in rows:
            models.db.session.execute(models.db.update(models.User).filter_by(id=row["id"]).values(**row))
        models.db.session.commit()


def tokens(app, models):
    """Authorization headers by name: the good ones, and every kind of bad one."""
    if "flask-jwt-extended" not in app.extensions:
        return {}
    with app.app_context():
        access = create_access_token(identity=ADMIN["username"])
        # fresh: a deleted user's token reaches the user lookup on step08's fresh-only operations too
        ghost = create_access_token(identity=GHOST, fresh=True), create_refresh_token(identity=GHOST)
        made = {
            "access": access,
            "refresh": create_refresh_token(identity=ADMIN["username"]),
            "expired": create_access_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1)),
            "expired refresh": create_refresh_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1)),
        }
        if hasattr(models.User, "token_version"):  # step08 on
            ended = {"token_version": -1}  # made before a password change (the user's token_version is higher now)
            made |= {
                "fresh access": create_access_token(identity=ADMIN["username"], fresh=True),
                "plain user": create_access_token(identity=PLAIN, fresh=True),
                "ended access": create_access_token(identity=ADMIN["username"], fresh=True, additional_claims=ended),
                "ended refresh": create_refresh_token(identity=ADMIN["username"], additional_claims=ended),
            }
        models.db.session.execute(models.db.delete(models.User).filter_by(username=GHOST))
        models.db.session.commit()
    claims = jwt.decode(access, options={"verify_signature": False})
    made |= {
        "not a JWT": "abc",
        "another key": sign_as(app, claims, another_key(app)),  # HS256; EdDSA with its kid from step09 on
        "alg none": jwt.encode(claims, None, "none"),
        "deleted user": ghost[0],
        "deleted user's refresh": ghost[1],
    }
    if "keys" in app.extensions:  # step09 on: signed with our key, but naming no key, or made for someone else
        made |= {
            "unknown kid": jwt.encode(claims, another_key(app), "EdDSA", headers={"kid": "no-such-key"}),
            "another audience": sign_as(app, {**claims, "aud": "another-service"}),
            "another issuer": sign_as(app, {**claims, "iss": "someone-else"}),
        }
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in made.items()}
    headers["none"] = {}
    headers["another scheme"] = {"Authorization": "JWT abc"}
    if "cookies" in app.config.get("JWT_TOKEN_LOCATION", ()):  # step07 on: the same tokens as cookies, with or without CSRF
        for kind in ("access", "refresh", "fresh access"):
            if kind not in made:
                continue
            cookie = f"{app.config[f'JWT_{kind.split()[-1].upper()}_COOKIE_NAME']}={made[kind]}"
            csrf = jwt.decode(made[kind], options={"verify_signature": False})["csrf"]
            headers[f"{kind} cookie"] = {"Cookie": cookie, "X-CSRF-TOKEN": csrf}
            headers[f"{kind} cookie, no CSRF"] = {"Cookie": cookie}  # 212
            headers[f"{kind} cookie, wrong CSRF"] = {"Cookie": cookie, "X-CSRF-TOKEN": "not-" + csrf}  # 213
    if "/logout" in {rule.rule for rule in app.url_map.iter_rules()}:
        for kind in ("access", "refresh"):  # log these two out: from now on they are revoked
            with app.app_context():
                # fresh (step08's fresh-only operations check freshness before the blocklist); earlier steps ignore it
                token = create_access_token(identity=ADMIN["username"], fresh=True) if kind == "access" else \
                    create_refresh_token(identity=ADMIN["username"])
            assert app.test_client().post("/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            headers[f"revoked {kind}"] = {"Authorization": f"Bearer {token}"}
    return headers


def path_examples(document, op):
    """{name: value} for each example of the operation's path parameter ({} for a path without one)."""
    for parameter in op.get("parameters", []):
        parameter = resolve(document, parameter, "")[0]
        if parameter["in"] == "path":
            return {why: (parameter["name"], example["value"]) for why, example in parameter["examples"].items()}
    return {}


def example_urls(document, path, op):
    """{why: the path with its parameter set to that example}; {"": path} for a path without a parameter."""
    examples = path_examples(document, op)
    return {why: path.replace("{" + name + "}", str(value)) for why, (name, value) in examples.items()} or {"": path}


def probes(document, headers):
    """(app name, method, path, request keyword arguments, why) for every request worth sending. A path with a
    parameter ({userid}) is sent with its first example, and once with each of the others (`url` in the arguments)."""
    for (path, method), op in operations(document).items():
        urls = example_urls(document, path, op)
        url = next(iter(urls.values()))
        for app_name, probe_method, probe_path, kwargs, why in operation_probes(document, headers, path, method, op):
            yield app_name, probe_method, probe_path, {"url": url, **kwargs}, why
        content = resolve(document, op["requestBody"], "")[0]["content"] if "requestBody" in op else {}
        body = content.get("application/json", {})
        first = [example["value"] for example in body.get("examples", {}).values()][:1]
        good = headers[GOOD[next(iter(op["security"][0]))]] if op.get("security") else {}
        for why, other in list(urls.items())[1:]:
            yield "up", method, path, {"url": other, "headers": good, **({"json": first[0]} if first else {})}, f"path {why}"
        if "429" in op["responses"]:  # the limit: one failure allowed, then 429 before the password is checked
            for attempt in ("first failure", "over the limit"):
                yield "login limited", method, path, {"json": {"username": ADMIN["username"], "password": "not-it"}}, attempt
    for path, item in document["paths"].items():
        unlisted = next(m for m in METHODS if m not in item)
        url = next((u for op in item.values() for u in example_urls(document, path, op).values() if u != path), path)
        yield "up", unlisted.upper(), path, {"url": url}, "MethodNotAllowed"
    yield "up", "GET", "/no-such-path", {}, "NotFound"


def operation_probes(document, headers, path, method, op):
    """The probes of one operation, as for every step: each token, each example, each kind of bad body."""
    content = resolve(document, op["requestBody"], "")[0]["content"] if "requestBody" in op else {}
    body = content.get("application/json")
    examples = [example["value"] for example in body.get("examples", {}).values()] if body else []
    good = [{}] if not op.get("security") else [headers[GOOD[name]] for requirement in op["security"] for name in requirement]
    first = {"json": examples[0]} if examples else {}
    for name, auth in ([("good token", h) for h in good] + list(headers.items()) if op.get("security") else [("", {})]):
        yield "up", method, path, {"headers": auth, **first}, name or "no token needed"
    for value in examples:
        yield "up", method, path, {"headers": good[0], "json": value}, f"example {value}"
    if body:
        for why, kwargs in {
            "not a JSON object": {"json": []},
            "JSON false": {"json": False},  # reqparse (steps 02-03) cannot read it: a 500
            "empty object": {"json": {}},
            "broken JSON": {"data": "{", "content_type": "application/json"},
            "not JSON": {"data": "username=a", "content_type": "application/x-www-form-urlencoded"},
            "too large": {"json": {"username": "x" * 20000, "password": "x"}},
            "not a string": {"json": {"username": 123, "password": ["x"]}},
        }.items():
            yield "up", method, path, {"headers": good[0], **kwargs}, why
    if "application/x-www-form-urlencoded" in content:  # the CSRF value as a form's csrf_token field, not a header
        for auth in good:
            if "X-CSRF-TOKEN" in auth:
                yield "up", method, path, {"headers": {"Cookie": auth["Cookie"]},
                                           "data": {"csrf_token": auth["X-CSRF-TOKEN"]}}, "CSRF form field"
    for down in ("database down", "blocklist down"):
        yield down, method, path, {"headers": good[0], **first}, down


def check_answer(document, response, where, pointer):
    """The answer against the response object at `pointer`; returns (the body, or None) if it is documented."""
    spec, pointer = resolve(document, {"$ref": "#" + pointer}, pointer)
    for name, header in spec.get("headers", {}).items():
        header, header_pointer = resolve(document, header, f"{pointer}/headers/{escape(name)}")
        value = response.headers.get(name)
        if header.get("required"):
            assert value is not None, f"{where}: no {name} header"
        if value is not None and "schema" in header:
            errors = list(validator(document, header_pointer + "/schema").iter_errors(value))
            assert not errors, f"{where}: header {name}: {value!r}: {errors[0].message}"
    content = spec.get("content", {})
    assert response.mimetype in content, f"{where}: answered {response.mimetype}, documented {list(content)}"
    if response.mimetype != "application/json":
        return None
    body = response.get_json()
    schema_pointer = f"{pointer}/content/{escape(response.mimetype)}/schema"
    errors = list(validator(document, schema_pointer).iter_errors(body))
    assert not errors, f"{where}: {body}: {errors[0].message} (at {'/'.join(map(str, errors[0].absolute_path))})"
    return body


@pytest.fixture(scope="module")
def answers_by_step():
    """{step: answers}: the two tests that read a step's answers share one sending of its probes."""
    return {}


@pytest.fixture
def answers(step, request, answers_by_step):
    """Every probe sent, every answer checked against the document: {response object pointer: [bodies]}."""
    if step not in answers_by_step:  # the apps are made only where the probes are sent; a failed sending is not kept
        answers_by_step[step] = send_probes(step, *map(request.getfixturevalue, ("apps", "models", "document")))
    return answers_by_step[step]


def send_probes(step, apps, models, document):
    headers = tokens(apps["up"], models)
    accounts = seeded_accounts(apps["up"], models)
    seen = {}
    for app_name, method, path, kwargs, why in probes(document, headers):
        client = apps[app_name].test_client(use_cookies=False)  # a jar would replace the probes' Cookie headers
        url = kwargs.pop("url", path)
        response = client.open(url, method=method, **kwargs)
        if accounts and app_name == "up":
            restore_accounts(apps["up"], models, accounts)
        where = f"{step}: {method} {path} ({why}) -> {response.status_code}"
        item = document["paths"].get(path)
        if why in ("MethodNotAllowed", "NotFound"):
            assert response.status_code == (405 if why == "MethodNotAllowed" else 404), where
            pointer = f"/components/responses/{why}"
            if why == "MethodNotAllowed":
                allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
                assert {m.upper() for m in item if m in METHODS} <= allowed, f"{where}: Allow: {allowed}"
        else:
            responses = item[method.lower()]["responses"]
            assert str(response.status_code) in responses, f"{where}: undocumented status {response.get_data(as_text=True)[:200]}"
            pointer = f"/paths/{escape(path)}/{method.lower()}/responses/{response.status_code}"
        seen.setdefault(pointer, []).append(check_answer(document, response, where, pointer))
    return seen


# Both tests of a step on one xdist worker, where the step's probes are sent once (answers_by_step).
@pytest.mark.xdist_group("openapi answers")
@pytest.mark.since("step02_db")
def test_every_answer_is_documented(answers):
    assert answers  # each one was checked as it came (check_answer)


@pytest.mark.xdist_group("openapi answers")
@pytest.mark.since("step02_db")
def test_every_documented_answer_happens(document, answers):
    expected = {"/components/responses/NotFound", "/components/responses/MethodNotAllowed"} | {
        f"/paths/{escape(path)}/{method.lower()}/responses/{status}"
        for (path, method), op in operations(document).items() for status in op["responses"]}
    assert sorted(expected - set(answers)) == [], "documented, but no probe got this answer: add a probe"
    for pointer in sorted(expected):
        spec, spec_pointer = resolve(document, {"$ref": "#" + pointer}, pointer)
        if "application/json" not in spec.get("content", {}):
            continue
        schema_pointer = f"{spec_pointer}/content/application~1json/schema"
        schema, schema_pointer = resolve(document, {"$ref": "#" + schema_pointer}, schema_pointer)
        for index, branch in enumerate(schema.get("oneOf", [])):
            branch_validator = validator(document, f"{schema_pointer}/oneOf/{index}")
            assert any(branch_validator.is_valid(body) for body in answers[pointer]), (
                f"{pointer}: no answer matched {branch}: add a probe")
