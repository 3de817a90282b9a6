"""OpenAI conformance through the official ``openai`` client: what the client shows for errors, usage with
``include_usage``, logprobs, refused features, model retrieval and real ``created`` times."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from npusuite.platform.engine import ModelManager
from npusuite.platform.repository import ModelRepository
from npusuite.platform.serving.metrics import PlatformMetrics

CHAT = [{"role": "user", "content": "is this card payment fraud?"}]


@pytest.fixture
def client(serve, tmp_path: Path, tiny_llm_dir: Path):
    import openai

    repo = ModelRepository(tmp_path / "models")
    repo.add("tiny-llm", tiny_llm_dir)
    manager = ModelManager(repo, observer=PlatformMetrics())
    manager.start()
    with serve(manager) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_the_client_shows_the_servers_error_and_unsupported_features_are_refused(client):
    import openai

    refusals = [({"n": 2}, "n", "only n=1"),
                ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools",
                 "tools is not supported"),
                ({"response_format": {"type": "json_object"}}, "response_format", "'json_object' is not supported"),
                ({"top_logprobs": 2}, "top_logprobs", "needs logprobs"),
                ({"temperature": 3}, "temperature", "temperature"),
                ({"logit_bias": {"5": 10}}, "logit_bias", "not supported")]
    for extra, param, words in refusals:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=2, **extra)
        assert err.value.status_code == 400 and words in err.value.message, (extra, err.value.message)
        assert err.value.body["param"] == param and err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="echo is not supported"):
        client.completions.create(model="tiny-llm", prompt="the card", max_tokens=2, echo=True)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=CHAT, max_tokens=2)
    assert "'nope' is not loaded" in err.value.message and err.value.code == "model_not_found"
    # what stays allowed: the text format and zero penalties
    ok = client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=2, temperature=0,
                                        response_format={"type": "text"}, presence_penalty=0)
    assert ok.choices[0].finish_reason in ("length", "stop")


def test_usage_arrives_last_with_include_usage(client):
    chunks = list(client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=6, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    full = client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=6, temperature=0)
    assert full.choices[0].message.content == text and full.usage == last.usage
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    plain = list(client.completions.create(model="tiny-llm", prompt="the card", max_tokens=3, temperature=0,
                                           stream=True, stream_options={"include_usage": True}))
    assert plain[-1].choices == [] and 1 <= plain[-1].usage.completion_tokens <= 3


def test_logprobs_and_top_logprobs(client):
    chat = client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=5, temperature=0,
                                          logprobs=True, top_logprobs=3)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    for item in content:
        assert len(item.top_logprobs) == 3 and item.logprob <= 0
        assert item.logprob == pytest.approx(item.top_logprobs[0].logprob)  # greedy: the chosen is the top one
        assert item.bytes == list(item.token.encode())
    streamed = list(client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=5, temperature=0,
                                                   logprobs=True, top_logprobs=1, stream=True))
    got = [t.logprob for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert got == pytest.approx([item.logprob for item in content])
    comp = client.completions.create(model="tiny-llm", prompt="the card was", max_tokens=4, temperature=0,
                                     logprobs=2)
    lp = comp.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == comp.usage.completion_tokens
    assert all(len(top) <= 2 for top in lp.top_logprobs) and lp.text_offset[0] == 0
    assert "".join(lp.tokens) == comp.choices[0].text
    assert client.chat.completions.create(model="tiny-llm", messages=CHAT, max_tokens=2).choices[0].logprobs is None


def test_models_can_be_retrieved_with_real_created_times(client):
    import openai

    listed = client.models.list().data
    one = client.models.retrieve("tiny-llm")
    assert [m.id for m in listed] == ["tiny-llm"] and one.id == "tiny-llm" and one.created == listed[0].created
    assert time.time() - 3600 < one.created <= time.time()
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope")
    assert "nope" in err.value.message
    made = client.completions.create(model="tiny-llm", prompt="x", max_tokens=1)
    assert abs(made.created - time.time()) < 600
