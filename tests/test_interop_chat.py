"""The spoken rewrite through the real ``openai`` client, against a chat-completions server that
each test starts on 127.0.0.1 (appendix A). Nothing leaves the machine; no key is in the repo.

The server records every request (path, headers, JSON body) and answers from a script: one
reply per request, the last one repeated. The cases are the ones a reader meets: a good answer,
the parser's reading of it, a timeout, 401, 429 (bounded retry, and the quota variant), 5xx, and
answers that hold no text.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spokenstyle.data import Obj, SceneSpec, formal_caption, spoken_caption
from spokenstyle.interop import chat

if not os.environ.get("CI"):  # CI installs the pinned extras (requirements-ci.txt): there it must not skip
    pytest.importorskip("openai", reason='the chat rewrite needs pip install "spokenstyle[tools]"')

SCENE = SceneSpec((Obj("circle", "red", "large"), Obj("square", "blue", "small")), ("left of",))
CAPTION = formal_caption(SCENE)  # "There is a large red circle left of a small blue square." or similar
KEY = "test-key-not-a-secret"


def completion(content: Any = "whoa, a big red ball to the left of a tiny blue box!", **message: Any) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "tiny-local",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content, **message}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def error(status: int, message: str, code: str | None = None, headers: dict | None = None) -> tuple:
    body = {"error": {"message": message, "type": code or "error", "code": code}}
    return status, body, headers or {}


class ChatServer:
    """A chat-completions server on 127.0.0.1 with scripted replies: (status, json, headers, delay)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple] = [(200, completion(), {}, 0.0)]
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "json": body,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, payload, headers, delay = server.script[min(len(server.requests), len(server.script)) - 1]
                time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (the timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reply(self, *replies: tuple) -> None:
        """Script the replies: (status, json) or (status, json, headers) or (..., delay)."""
        self.script = [tuple(r) + ({}, 0.0)[len(r) - 2:] for r in replies]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


def settings(server: ChatServer, **kw: Any) -> chat.ChatSettings:
    return chat.ChatSettings(**{"model": "tiny-local", "base_url": server.url, "api_key": KEY,
                                "timeout": 5.0, "backoff": 0.01, **kw})


def test_the_request_carries_model_messages_caption_and_key(server):
    sentence = chat.spoken_rewrite(CAPTION, settings=settings(server, temperature=0.3))
    assert sentence == "whoa, a big red ball to the left of a tiny blue box!"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    body = request["json"]
    assert body["model"] == "tiny-local" and body["temperature"] == 0.3 and body["max_tokens"] == 80
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == chat.SYSTEM_PROMPT
    assert CAPTION in body["messages"][1]["content"]
    assert body["messages"] == chat.rewrite_messages(CAPTION)


def test_the_answer_is_tidied(server):
    server.reply((200, completion('  "so there\'s this   big red ball,\n right of a tiny blue box"  ')))
    assert chat.spoken_rewrite(CAPTION, settings=settings(server)) == \
        "so there's this big red ball, right of a tiny blue box"


def test_content_parts_are_joined(server):
    parts = [{"type": "text", "text": "whoa, a big red ball"}, {"type": "text", "text": "next to a tiny blue box"}]
    server.reply((200, completion(parts)))
    assert chat.spoken_rewrite(CAPTION, settings=settings(server)) == "whoa, a big red ball next to a tiny blue box"


def test_the_parser_reads_the_sentence_against_the_caption(server):
    """Kept: the book's own spoken caption of the scene; changed: a colour swapped; unreadable."""
    server.reply((200, completion(spoken_caption(SCENE, seed=3))))
    kept = chat.rewrite_and_check(CAPTION, settings=settings(server))
    assert kept.caption_scene.matches(SCENE) and kept.sentence_scene is not None and kept.content_kept

    changed = SceneSpec((Obj("circle", "green", "large"), Obj("square", "blue", "small")), ("left of",))
    server.reply((200, completion(spoken_caption(changed, seed=3))))
    lost = chat.rewrite_and_check(CAPTION, settings=settings(server))
    assert lost.sentence_scene is not None and lost.sentence_scene.matches(changed) and not lost.content_kept

    server.reply((200, completion("lol what a vibe")))
    unreadable = chat.rewrite_and_check(CAPTION, settings=settings(server))
    assert unreadable.sentence_scene is None and not unreadable.content_kept
    with pytest.raises(ValueError, match="cannot read the caption"):
        chat.rewrite_and_check("a picture of nothing in particular", settings=settings(server))


def test_a_timeout_is_one_clear_error_and_not_retried(server):
    server.reply((200, completion(), {}, 1.5))
    start = time.perf_counter()
    with pytest.raises(chat.RewriteTimeout, match=r"within 0.3 s"):
        chat.spoken_rewrite(CAPTION, settings=settings(server, timeout=0.3))
    assert time.perf_counter() - start < 1.4 and len(server.requests) == 1


def test_401_says_check_the_key(server):
    server.reply(error(401, "Incorrect API key provided", "invalid_api_key"))
    with pytest.raises(chat.RewriteAuthError, match=r"refused the API key \(401\)"):
        chat.spoken_rewrite(CAPTION, settings=settings(server))
    assert len(server.requests) == 1


def test_429_is_retried_a_bounded_number_of_times(server):
    limited = error(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "20"})
    server.reply(limited, limited, (200, completion("ok, a big red ball left of a tiny blue box")))
    assert chat.spoken_rewrite(CAPTION, settings=settings(server, retries=2)).startswith("ok")
    assert len(server.requests) == 3  # two 429s, then the answer

    server.requests.clear()
    server.reply(limited)  # for ever
    with pytest.raises(chat.RewriteRateLimited, match=r"rate-limited 3 requests in a row"):
        chat.spoken_rewrite(CAPTION, settings=settings(server, retries=2))
    assert len(server.requests) == 3  # 1 + retries, then the error

    server.requests.clear()
    with pytest.raises(chat.RewriteRateLimited):
        chat.spoken_rewrite(CAPTION, settings=settings(server, retries=0))
    assert len(server.requests) == 1


def test_429_without_quota_is_not_retried(server):
    server.reply(error(429, "You exceeded your current quota", "insufficient_quota"))
    with pytest.raises(chat.RewriteRateLimited, match="quota is used up"):
        chat.spoken_rewrite(CAPTION, settings=settings(server, retries=3))
    assert len(server.requests) == 1


def test_a_server_error_is_retried_then_reported(server):
    server.reply(error(503, "overloaded"), (200, completion("yo, big red ball, tiny blue box")))
    assert chat.spoken_rewrite(CAPTION, settings=settings(server)) == "yo, big red ball, tiny blue box"
    server.requests.clear()
    server.reply(error(500, "boom"))
    with pytest.raises(chat.RewriteError, match=r"failed 2 times with a server error \(500\)"):
        chat.spoken_rewrite(CAPTION, settings=settings(server, retries=1))
    assert len(server.requests) == 2


def test_a_missing_model_or_endpoint_says_so(server):
    server.reply(error(404, "The model does not exist", "model_not_found"))
    with pytest.raises(chat.RewriteError, match=r"no model 'tiny-local' \(404\)"):
        chat.spoken_rewrite(CAPTION, settings=settings(server))


@pytest.mark.parametrize("reply, what", [
    ((200, completion("")), "no text"),
    ((200, completion("   \n ")), "no text"),
    ((200, completion(None, refusal="I can't help with that.")), "a refusal"),
    ((200, completion(None, tool_calls=[{"id": "c1", "type": "function",
                                         "function": {"name": "f", "arguments": "{}"}}])), "a tool call"),
    ((200, {**completion(), "choices": []}), "without a choice"),
    ((200, completion([{"type": "image_url", "image_url": {"url": "data:,"}}])), "no text"),
], ids=["empty", "blank", "refusal", "tool-call", "no-choices", "non-text-part"])
def test_an_answer_without_text_is_an_error(server, reply, what):
    server.reply(reply)
    with pytest.raises(chat.RewriteEmptyAnswer, match=what):
        chat.spoken_rewrite(CAPTION, settings=settings(server))


def test_an_unreachable_server_is_named(server):
    url = server.url
    server.close()  # nothing listens on that port any more
    with pytest.raises(chat.RewriteError, match="cannot reach"):
        chat.spoken_rewrite(CAPTION, settings=chat.ChatSettings(base_url=url, api_key=KEY, timeout=2.0))
    server.httpd = type("Closed", (), {"shutdown": lambda self: None, "server_close": lambda self: None})()


def test_no_key_anywhere_is_an_auth_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(chat.RewriteAuthError, match="no API key"):
        chat.make_client(chat.ChatSettings(base_url="http://127.0.0.1:9/v1"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(model=""), "model"),
    (dict(base_url="127.0.0.1:8000"), "base_url"),
    (dict(timeout=0), "timeout"),
    (dict(retries=-1), "retries"),
    (dict(retries=True), "retries"),
    (dict(backoff=-1.0), "backoff"),
    (dict(temperature=3.0), "temperature"),
    (dict(max_tokens=0), "max_tokens"),
])
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        chat.ChatSettings(**kwargs)


def test_captions_are_validated():
    with pytest.raises(ValueError, match="empty"):
        chat.rewrite_messages("  ")
    with pytest.raises(TypeError, match="string"):
        chat.rewrite_messages(42)
    with pytest.raises(ValueError, match="at most 2000"):
        chat.rewrite_messages("a " * 1500)
    with pytest.raises(TypeError, match="ChatSettings"):
        chat.spoken_rewrite(CAPTION, settings={"model": "x"})


def test_the_key_is_never_printed():
    assert "sk-secret" not in repr(chat.ChatSettings(api_key="sk-secret"))


def test_the_local_server_speaks_the_protocol_with_the_books_grammar():
    """The appendix's offline demonstration: the real client, a local server, the book's grammar."""
    with chat.LocalChatServer() as local:
        settings = chat.ChatSettings(base_url=local.base_url, api_key="local", model="grammar")
        check = chat.rewrite_and_check(CAPTION, settings=settings)
        assert check.content_kept and check.sentence == spoken_caption(SCENE, seed=0)
        assert local.requests[0]["model"] == "grammar" and CAPTION in local.requests[0]["messages"][1]["content"]
        with pytest.raises(chat.RewriteError, match="400"):  # the grammar cannot read it: a 400 answer
            chat.spoken_rewrite("hello there", settings=settings)
    with pytest.raises(RuntimeError, match="not running"):
        local.base_url
    with pytest.raises(ValueError, match="no user message"):
        chat.grammar_rewrite([{"role": "system", "content": "x"}])
