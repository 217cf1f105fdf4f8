"""step01_basic: a stateless JSON endpoint, with CORS. Every later step keeps /hello."""
import pytest

OTHER_ORIGIN = "http://localhost:8000"  # where a separate front end is served from (frontend/)


@pytest.mark.since("step01_basic")
def test_hello_answers_json(client):
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {"code": 200, "message": "hello, stranger"}


@pytest.mark.since("step01_basic")
def test_server_remembers_nothing_between_requests(client):
    first = client.get("/hello?name=Alice")
    second = client.get("/hello")  # same client, right after
    assert first.get_json()["message"] == "hello, Alice"
    assert second.get_json()["message"] == "hello, stranger"
    assert "Set-Cookie" not in first.headers  # nor does it hand the client anything to bring back


@pytest.mark.since("step01_basic")
def test_chinese_is_sent_as_characters_not_escapes(client):
    response = client.get("/hello", query_string={"name": "小明"})
    assert response.get_json()["message"] == "hello, 小明"
    assert "小明".encode() in response.data
    assert b"\\u" not in response.data


@pytest.mark.since("step01_basic")
def test_cors_preflight_from_another_origin(client):
    response = client.options(
        "/hello",
        headers={
            "Origin": OTHER_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == OTHER_ORIGIN  # flask-cors echoes the origin it allows
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.since("step01_basic")
def test_simple_request_from_another_origin_is_allowed(client):
    response = client.get("/hello", headers={"Origin": OTHER_ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == OTHER_ORIGIN  # flask-cors echoes the origin it allows
