"""The CPU model server as a real process, driven by the official `openai` client: chat,
streaming token by token, completions, embeddings, usage, the context limit, the secret,
and a client that leaves mid-stream."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from fabriek.domain.endpoints import RUNNING_METRIC, WAITING_METRIC, queue_from_metrics
from fabriek.model_server.commands import server_command
from fabriek.model_server.generation import chat_prompt
from fabriek.model_server.tokenizer import Tokenizer
from tests.model_fixtures import RunningServer, model_server, tiny_model
from tests.servers import free_port


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(root=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[RunningServer]:
    with model_server(folder) as running:
        yield running


@pytest.fixture()
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.secret, max_retries=0)


def metric(server: RunningServer, name: str = RUNNING_METRIC) -> float:
    answer = httpx.get(
        f"{server.base_url}/metrics",
        headers={"authorization": f"Bearer {server.secret}"},
        trust_env=False,
    )
    assert answer.status_code == 200
    return queue_from_metrics(answer.text, name)


MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello! How can I help the factory?"},
]


def test_models_lists_the_served_name(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_chat_answers_with_usage_counted_by_the_tokenizer(
    client: openai.OpenAI, folder: Path
) -> None:
    tokenizer = Tokenizer.load(folder / "tokenizer.json")
    answer = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
    )
    text = answer.choices[0].message.content or ""
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(
        tokenizer.encode(chat_prompt([dict(m) for m in MESSAGES]))
    )
    assert answer.usage.completion_tokens == 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 12
    # Greedy decoding is deterministic: the same question, the same answer.
    again = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
    )
    assert again.choices[0].message.content == text


def test_a_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        done = client.completions.create(
            model="tiny", prompt="The factory", max_tokens=20, seed=seed
        )
        return done.choices[0].text

    assert sample(1) == sample(1)


def test_stop_string_ends_the_answer_before_it(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="tiny", prompt="A job", max_tokens=30, temperature=0)
    text = whole.choices[0].text
    stop = text[5:7]
    assert stop
    cut = client.completions.create(
        model="tiny", prompt="A job", max_tokens=30, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_completions_count_the_prompts_tokens(client: openai.OpenAI, folder: Path) -> None:
    tokenizer = Tokenizer.load(folder / "tokenizer.json")
    prompt = "The quick brown fox"
    done = client.completions.create(model="tiny", prompt=prompt, max_tokens=3)
    assert done.usage is not None
    assert done.usage.prompt_tokens == len(tokenizer.encode(prompt))
    assert done.usage.completion_tokens == 3


def test_streaming_arrives_token_by_token_before_the_answer_is_done(
    client: openai.OpenAI, server: RunningServer
) -> None:
    stream = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 5  # one event per token (or per character a token completes)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 40
    whole = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=40,
        temperature=0,
    )
    assert "".join(pieces) == whole.choices[0].message.content


def test_first_chunk_comes_while_still_generating_and_leaving_stops_the_work(
    client: openai.OpenAI, server: RunningServer
) -> None:
    made_before = metric(server, "vllm:generation_tokens_total")
    stream = client.completions.create(
        model="tiny", prompt="Tokens are counted", max_tokens=1900, stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].text is not None
    assert metric(server) == 1  # the answer is still being generated
    stream.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 30
    while metric(server) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server) == 0
    made = metric(server, "vllm:generation_tokens_total") - made_before
    assert made < 1900  # it stopped, not ran to max_tokens


def test_embeddings_are_unit_vectors_with_usage(client: openai.OpenAI, folder: Path) -> None:
    tokenizer = Tokenizer.load(folder / "tokenizer.json")
    done = client.embeddings.create(model="tiny", input=["hello there", "a job runs"])
    assert [d.index for d in done.data] == [0, 1]
    for d in done.data:
        assert abs(sum(x * x for x in d.embedding) - 1.0) < 1e-3
    count = len(tokenizer.encode("hello there")) + len(tokenizer.encode("a job runs"))
    assert done.usage.prompt_tokens == count


def test_a_prompt_past_the_context_is_refused_naming_the_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="fox " * 3000, max_tokens=4)
    assert caught.value.status_code == 400
    assert "maximum context length is 2048 tokens" in str(caught.value)
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"


def test_a_wrong_or_missing_key_is_refused_but_health_is_open(server: RunningServer) -> None:
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    bare = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "tiny", "messages": MESSAGES},
        trust_env=False,
    )
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{server.base_url}/metrics", trust_env=False).status_code == 401
    assert httpx.get(f"{server.base_url}/health", trust_env=False).status_code == 200


def test_without_its_secret_variable_the_server_does_not_start(folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fabriek.model_server", "--model", str(folder), "--port", "1",
         "--api-key-env", "FABRIEK_TEST_UNSET_SECRET"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "FABRIEK_TEST_UNSET_SECRET is not set" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another user")
def test_a_replicas_cpu_command_runs_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The command an endpoint's replica runs, exactly as built, run as `nobody` with the
    environment the control plane gives a job: it serves the model, trusting the secret."""
    datasets = Path(tempfile.mkdtemp(prefix="fabriek-model-"))
    try:
        datasets.chmod(0o755)
        folder = tiny_model(root=datasets)
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        argv = server_command(f"$FABRIEK_DATASETS/{folder.name}", "replica", gpus=0)
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "FABRIEK_DATASETS": str(datasets),
            "FABRIEK_WEB_PORT": str(port),
            "FABRIEK_WEB_SECRET": "job-secret",
        }
        process = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
            env=env,
            cwd="/",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, "the replica's server exited"
                try:
                    if httpx.get(f"{base}/health", trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.1)
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="job-secret", max_retries=0)
            assert [m.id for m in client.models.list()] == ["replica"]
            owner = Path(f"/proc/{process.pid}").stat().st_uid
            assert owner == pwd.getpwnam("nobody").pw_uid
        finally:
            process.terminate()
            process.wait(10)
    finally:
        shutil.rmtree(datasets)


def test_a_client_leaving_a_long_plain_request_stops_its_work(server: RunningServer) -> None:
    made_before = metric(server, "vllm:generation_tokens_total")
    body = {"model": "tiny", "prompt": "A job runs", "max_tokens": 1900}
    headers = {"authorization": f"Bearer {server.secret}"}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{server.base_url}/v1/completions",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(10, read=0.05),
            trust_env=False,
        )
    deadline = time.monotonic() + 30
    while metric(server) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server) == 0
    assert metric(server, "vllm:generation_tokens_total") - made_before < 1900


def test_past_its_running_limit_requests_wait_and_are_counted_waiting(folder: Path) -> None:
    with model_server(folder, max_running=1) as one:
        client = openai.OpenAI(base_url=f"{one.base_url}/v1", api_key=one.secret, max_retries=0)
        first = client.completions.create(
            model="tiny", prompt="A job", max_tokens=1900, stream=True
        )
        next(iter(first))  # generating: it holds the only slot
        headers = {"authorization": f"Bearer {one.secret}"}
        body = {"model": "tiny", "prompt": "A job", "max_tokens": 2}
        answers: list[httpx.Response] = []

        def send() -> None:
            answers.append(
                httpx.post(
                    f"{one.base_url}/v1/completions",
                    json=body,
                    headers=headers,
                    timeout=60,
                    trust_env=False,
                )
            )

        second = threading.Thread(target=send)
        second.start()
        deadline = time.monotonic() + 30
        while metric(one, WAITING_METRIC) != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert metric(one, WAITING_METRIC) == 1
        assert metric(one) == 1
        first.close()  # the slot frees: the waiting request runs
        second.join(60)
        assert answers[0].status_code == 200
        assert answers[0].json()["usage"]["completion_tokens"] == 2
        assert metric(one, WAITING_METRIC) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"model": "tiny", "input": {"a": 1}},
        {"model": "tiny", "input": [3, "x", None]},
        {"model": "tiny", "input": [[1, 2], [10**9]]},
        {"model": "tiny", "input": []},
    ],
)
def test_bad_embedding_inputs_are_refused_in_openais_shape(
    server: RunningServer, body: dict[str, object]
) -> None:
    answer = httpx.post(
        f"{server.base_url}/v1/embeddings",
        json=body,
        headers={"authorization": f"Bearer {server.secret}"},
        trust_env=False,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input"


def test_token_ids_embed_like_their_text(client: openai.OpenAI, folder: Path) -> None:
    ids = Tokenizer.load(folder / "tokenizer.json").encode("a job runs")
    by_text = client.embeddings.create(model="tiny", input="a job runs").data[0].embedding
    by_ids = client.embeddings.create(model="tiny", input=ids).data[0].embedding
    assert by_text == by_ids


@pytest.mark.parametrize(
    "body",
    [
        {"model": "tiny", "messages": "hello"},
        {"model": "tiny", "messages": ["hello"]},
        {"model": "tiny", "messages": []},
    ],
)
def test_bad_chat_messages_are_refused_in_openais_shape(
    server: RunningServer, body: dict[str, object]
) -> None:
    answer = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {server.secret}"},
        trust_env=False,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "messages"
