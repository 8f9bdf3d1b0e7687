"""The spoken rewrite through a chat-completions API: OpenAI, or any server that speaks its protocol.

The source's §7 recommends OpenAI "for the spoken-picture processing". In the book the spoken
register comes from the captioner S of chapter 6, trained on our own data; this module is the
alternative for a reader with an API key: send a *formal* caption ("A large red circle is left
of a small blue square.") to a hosted language model and get back one *spoken* sentence.
:func:`rewrite_and_check` then reads the sentence back with the book's parser
(:func:`spokenstyle.data.parse`) and says whether the content survived the rewrite, the same
question chapter 8 asks of every step of the pipeline.

The client is the official ``openai`` package with a configurable ``base_url`` and ``model``, so
the same code talks to OpenAI or to any OpenAI-compatible server (a local one included). The
failures a reader meets each become one clear error, a subclass of :class:`RewriteError`:

============================  ============================================================
what happened                 error
============================  ============================================================
no answer in ``timeout``      :class:`RewriteTimeout` (not retried: raise the timeout)
401 / 403, or no key          :class:`RewriteAuthError` (never retried)
429, 5xx                      retried at most ``retries`` times, waiting the server's
                              ``Retry-After`` (else ``backoff · 2^k``), at most ``max_wait``
                              seconds; then :class:`RewriteRateLimited` (429) or
                              :class:`RewriteError` (5xx)
429 ``insufficient_quota``    :class:`RewriteRateLimited` at once (waiting cannot help)
an empty or non-text answer   :class:`RewriteEmptyAnswer` (a refusal, a tool call, no choice)
============================  ============================================================

Nothing here holds a key: it comes from ``ChatSettings.api_key`` or ``$OPENAI_API_KEY``.

:class:`LocalChatServer` is a small OpenAI-compatible server on 127.0.0.1 whose "model" is the
book's own spoken grammar (:func:`grammar_rewrite`): the same client code runs end to end
offline, in the appendix and in CI, without a key or a network.

References:
    OpenAI chat completions: https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ..data.captions import ParseError, parse, spoken_caption
from ..data.scenes import SceneSpec

__all__ = [
    "INSTALL_HINT",
    "DEFAULT_MODEL",
    "SYSTEM_PROMPT",
    "RewriteError",
    "RewriteTimeout",
    "RewriteAuthError",
    "RewriteRateLimited",
    "RewriteEmptyAnswer",
    "ChatSettings",
    "RewriteCheck",
    "openai_available",
    "make_client",
    "rewrite_messages",
    "spoken_rewrite",
    "rewrite_and_check",
    "grammar_rewrite",
    "LocalChatServer",
]

#: What the error says when the ``openai`` client is missing.
INSTALL_HINT = 'the openai client is not installed: pip install "spokenstyle[tools]" (or pip install "openai>=1")'

if importlib.util.find_spec("openai") is not None:
    import openai
else:  # optional: make_client raises ImportError(INSTALL_HINT)
    openai = None

#: The model asked when ``ChatSettings.model`` is not set: small and cheap; any chat model of the server will do.
DEFAULT_MODEL = "gpt-4o-mini"
MAX_CAPTION_CHARS = 2000  # a caption, not a document: bounds the cost of one request (private)
#: The instructions sent before every caption: keep every object and relation, add nothing.
SYSTEM_PROMPT = (
    "You rewrite picture descriptions as one casual, spoken English sentence, the way a friend "
    "would say it out loud. Keep every object with its size, colour and shape, and every spatial "
    "relation between objects; add no object and no relation. Answer with the sentence only."
)


class RewriteError(RuntimeError):
    """The rewrite failed; the message says why and what to do."""


class RewriteTimeout(RewriteError):
    """The server did not answer within ``ChatSettings.timeout`` seconds."""


class RewriteAuthError(RewriteError):
    """No API key, or the server refused it (401/403)."""


class RewriteRateLimited(RewriteError):
    """Still rate-limited (429) after the bounded retries, or the account's quota is used up."""


class RewriteEmptyAnswer(RewriteError):
    """The server answered, but with no text: an empty message, a refusal, a tool call or no choice."""


@dataclass(frozen=True)
class ChatSettings:
    """Where and how to ask. ``None`` for ``base_url``/``api_key`` means ``$OPENAI_BASE_URL`` /
    ``$OPENAI_API_KEY`` (the openai client's own defaults; without them, OpenAI's API)."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None  # e.g. "http://127.0.0.1:8000/v1" for a local OpenAI-compatible server
    api_key: str | None = field(default=None, repr=False)  # never printed
    timeout: float = 30.0  # seconds for one request
    retries: int = 2  # extra tries after a 429 or 5xx; 0 = fail at once
    backoff: float = 1.0  # seconds before retry k: backoff * 2**k, unless the server says Retry-After
    max_wait: float = 30.0  # the longest single wait, whatever Retry-After asks
    temperature: float = 0.7  # some variety in the wording; the content is pinned by the prompt
    max_tokens: int = 80  # one sentence

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a non-empty string, got {self.model!r}")
        if self.base_url is not None and not re.match(r"https?://", str(self.base_url)):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        for name in ("timeout", "max_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(self.backoff, bool) or not isinstance(self.backoff, (int, float)) or self.backoff < 0:
            raise ValueError(f"backoff must be a number of seconds >= 0, got {self.backoff!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise ValueError(f"retries must be an int in [0, 10], got {self.retries!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")


@dataclass(frozen=True)
class RewriteCheck:
    """A rewrite and what the book's parser reads in it.

    ``sentence_scene`` is None when the parser cannot read the sentence (the model's wording
    left the grammar it knows); ``content_kept`` is True when both parse to the same objects and
    relations (:meth:`SceneSpec.matches <spokenstyle.data.scenes.SceneSpec.matches>`)."""

    caption: str
    sentence: str
    caption_scene: SceneSpec
    sentence_scene: SceneSpec | None
    content_kept: bool


def openai_available() -> bool:
    """True when the ``openai`` client can be imported (``pip install "spokenstyle[tools]"``)."""
    return openai is not None


def make_client(settings: ChatSettings | None = None) -> Any:
    """An ``openai.OpenAI`` client for ``settings``, with the client's own retries off (the
    bounded retry of :func:`spoken_rewrite` decides, so the behaviour is the same on every
    version of the client)."""
    if openai is None:
        raise ImportError(INSTALL_HINT)
    settings = _settings(settings)
    try:
        return openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url,
                             timeout=settings.timeout, max_retries=0)
    except openai.OpenAIError as err:  # raised when no key is given and $OPENAI_API_KEY is unset
        raise RewriteAuthError("no API key: set $OPENAI_API_KEY or ChatSettings(api_key=...) (a local "
                               f"server accepts any non-empty key) ({err})") from None


def rewrite_messages(caption: str) -> list[dict[str, str]]:
    """The chat messages sent for ``caption``: the instructions, then the caption."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Description: {_check_caption(caption)}"}]


def spoken_rewrite(caption: str, *, settings: ChatSettings | None = None, client: Any = None) -> str:
    """One spoken sentence for a formal ``caption``, from the chat model of ``settings``.

    Args:
        caption: the formal description (a non-empty string of at most 2,000 characters).
        settings: model, server, key, timeout and retries (:class:`ChatSettings`); default OpenAI's
            API with ``$OPENAI_API_KEY``.
        client: an ``openai.OpenAI`` client to reuse (default: :func:`make_client` of ``settings``).

    Returns:
        The sentence, whitespace collapsed and surrounding quotes removed.

    Raises:
        RewriteError: one of its subclasses for each failure (see the module's table).
    """
    if openai is None:
        raise ImportError(INSTALL_HINT)
    messages = rewrite_messages(caption)
    settings = _settings(settings)
    client = client if client is not None else make_client(settings)
    where = str(getattr(client, "base_url", settings.base_url or "the server"))
    for attempt in range(settings.retries + 1):
        try:
            response = client.chat.completions.create(model=settings.model, messages=messages,
                                                      temperature=settings.temperature,
                                                      max_tokens=settings.max_tokens)
            return _sentence(response, where)
        except openai.APITimeoutError:
            raise RewriteTimeout(f"no answer from {where} within {settings.timeout:g} s: the server is slow "
                                 "or unreachable; raise ChatSettings.timeout or check base_url") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise RewriteAuthError(f"{where} refused the API key ({err.status_code}): check $OPENAI_API_KEY "
                                   "or ChatSettings.api_key") from None
        except openai.RateLimitError as err:
            if _error_code(err) == "insufficient_quota":
                raise RewriteRateLimited(f"{where} says the account's quota is used up (429 insufficient_quota): "
                                         "waiting will not help; check the plan and billing") from None
            if attempt == settings.retries:
                raise RewriteRateLimited(f"{where} rate-limited {attempt + 1} requests in a row (429); wait a "
                                         "minute or lower the request rate (ChatSettings.retries bounds the "
                                         "tries)") from None
            time.sleep(_wait(err, attempt, settings))
        except openai.InternalServerError as err:
            if attempt == settings.retries:
                raise RewriteError(f"{where} failed {attempt + 1} times with a server error "
                                   f"({err.status_code}); try again later") from None
            time.sleep(_wait(err, attempt, settings))
        except openai.NotFoundError:
            raise RewriteError(f"{where} has no chat-completions endpoint or no model {settings.model!r} (404): "
                               "check base_url (it usually ends in /v1) and ChatSettings.model") from None
        except openai.APIStatusError as err:
            raise RewriteError(f"{where} answered {err.status_code}: {err.message}") from None
        except openai.APIConnectionError as err:
            raise RewriteError(f"cannot reach {where} ({err}): check base_url and the network") from None
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def rewrite_and_check(caption: str, *, settings: ChatSettings | None = None, client: Any = None) -> RewriteCheck:
    """:func:`spoken_rewrite`, then both texts read by the book's parser and compared.

    The caption must be one the parser reads (a ShapeScenes formal caption); the sentence may not
    be, and then ``sentence_scene`` is None and ``content_kept`` False."""
    try:
        caption_scene = parse(_check_caption(caption))
    except ParseError as err:
        raise ValueError(f"the book's parser cannot read the caption, so there is nothing to compare: {err}") from None
    sentence = spoken_rewrite(caption, settings=settings, client=client)
    try:
        sentence_scene: SceneSpec | None = parse(sentence)
    except ParseError:
        sentence_scene = None
    kept = sentence_scene is not None and sentence_scene.matches(caption_scene)
    return RewriteCheck(caption, sentence, caption_scene, sentence_scene, kept)


# -- helpers -----------------------------------------------------------------------------------

def _settings(settings: ChatSettings | None) -> ChatSettings:
    if settings is None:
        return ChatSettings()
    if not isinstance(settings, ChatSettings):
        raise TypeError(f"settings must be a ChatSettings, got {type(settings).__name__}")
    return settings


def _check_caption(caption: str) -> str:
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}")
    text = " ".join(caption.split())
    if not text:
        raise ValueError("caption is empty: give the formal description of a picture")
    if len(text) > MAX_CAPTION_CHARS:
        raise ValueError(f"caption has {len(text)} characters; at most {MAX_CAPTION_CHARS} are sent")
    return text


def _sentence(response: Any, where: str) -> str:
    """The text of the first choice, or RewriteEmptyAnswer saying what came instead."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise RewriteEmptyAnswer(f"{where} answered without a choice (not a chat completion?)")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if isinstance(content, list):  # some servers send content parts: keep the text ones
        content = " ".join(str(part.get("text", "")) for part in content
                           if isinstance(part, dict) and part.get("type") == "text")
    if not isinstance(content, str) or not content.strip():
        reason = getattr(choices[0], "finish_reason", None)
        refusal = getattr(message, "refusal", None)
        tools = getattr(message, "tool_calls", None)
        what = (f"a refusal ({refusal!r})" if refusal else "a tool call" if tools
                else f"no text (finish_reason={reason!r})")
        raise RewriteEmptyAnswer(f"{where} answered with {what} instead of a sentence")
    return " ".join(content.split()).strip("\"'“”‘’ ")


def _error_code(err: Any) -> str | None:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code") or inner.get("type")
    return None


def _wait(err: Any, attempt: int, settings: ChatSettings) -> float:
    """Seconds before the next try: the server's Retry-After when it gives one, else exponential."""
    headers = getattr(getattr(err, "response", None), "headers", {}) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return min(max(float(headers[name]) * scale, 0.0), settings.max_wait)
        except (KeyError, TypeError, ValueError):
            continue
    return min(settings.backoff * 2 ** attempt, settings.max_wait)


# -- a local OpenAI-compatible server ------------------------------------------------------------

def grammar_rewrite(messages: list[dict[str, Any]], seed: int = 0) -> str:
    """A "model" for :class:`LocalChatServer`: the last user message's caption, read by the
    book's parser and said again by its spoken grammar (:func:`spokenstyle.data.spoken_caption`).

    Raises:
        ValueError: there is no user message, or the parser cannot read its caption.
    """
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1], str):
        raise ValueError("no user message with text to rewrite")
    caption = users[-1].removeprefix("Description:").strip()
    try:
        return spoken_caption(parse(caption), seed=seed)
    except ParseError as err:
        raise ValueError(f"the book's grammar cannot read {caption!r}: {err}") from None


class LocalChatServer:
    """A chat-completions server on 127.0.0.1 (a free port) in a background thread.

    ``answer(messages) -> str`` writes the assistant's message (default :func:`grammar_rewrite`);
    a ``ValueError`` from it becomes a 400 answer. Use it as a context manager::

        with LocalChatServer() as server:
            settings = ChatSettings(base_url=server.base_url, api_key="local", model="grammar")
            spoken_rewrite("A large red circle is left of a small blue square.", settings=settings)

    ``requests`` keeps the JSON body of every request, for inspection.
    """

    def __init__(self, answer: Callable[[list[dict[str, Any]]], str] = grammar_rewrite) -> None:
        if not callable(answer):
            raise TypeError(f"answer must be a function of the messages, got {type(answer).__name__}")
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        """The URL to give as ``ChatSettings.base_url`` (ends in ``/v1``, as OpenAI's does)."""
        if self._httpd is None:
            raise RuntimeError("the server is not running: use it in a with block (or call start())")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "LocalChatServer":
        """Starts serving; returns the server."""
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
            self._httpd.daemon_threads = True
            threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops serving and frees the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LocalChatServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                if not self.path.endswith("/chat/completions") or not 0 < length <= 1 << 20:
                    return self._send(404, {"error": {"message": f"no endpoint {self.path}", "code": "not_found"}})
                try:
                    body = json.loads(self.rfile.read(length))
                    server.requests.append(body)
                    text = server.answer(body.get("messages", []))
                except (ValueError, AttributeError) as err:
                    return self._send(400, {"error": {"message": str(err), "code": "bad_request"}})
                self._send(200, {"id": f"local-{len(server.requests)}", "object": "chat.completion",
                                 "created": int(time.time()), "model": body.get("model", "local"),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet: no line per request on stderr
                pass

        return Handler
