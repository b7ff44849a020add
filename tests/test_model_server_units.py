"""The model server's pure parts: the tokenizer (round trips, as property tests), the
OpenAI protocol's checks, and the replica command lines (CPU server, vLLM)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.model_server.build import SENTENCES
from fabriek.model_server.commands import server_command
from fabriek.model_server.protocol import RequestError, sampling_of
from fabriek.model_server.tokenizer import Tokenizer, chunks
from fabriek.model_server.vllm import VllmOptions, vllm_argv

TOKENIZER = Tokenizer.train(SENTENCES, 120)


@given(st.text())
def test_any_text_round_trips(text: str) -> None:
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


@given(st.text())
def test_chunks_cover_the_text_exactly(text: str) -> None:
    assert b"".join(chunks(text)) == text.encode()


@given(st.text())
def test_streamed_decoding_gives_the_same_text(text: str) -> None:
    decoder = TOKENIZER.stream_decoder()
    pieces = [decoder.feed(t) for t in TOKENIZER.encode(text)]
    assert "".join(pieces) + decoder.flush() == text


def test_training_learns_merges_that_shorten_its_corpus(tmp_path: Path) -> None:
    sentence = SENTENCES[0]
    assert TOKENIZER.vocab_size > 256
    assert len(TOKENIZER.encode(sentence)) < len(sentence.encode()) * 0.6
    TOKENIZER.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(sentence) == TOKENIZER.encode(sentence)


def test_context_limit_is_named_and_defaults_fill_the_room() -> None:
    with pytest.raises(RequestError, match="maximum context length is 100 tokens") as caught:
        sampling_of({"prompt": "x", "max_tokens": 10}, 95, 100)
    assert caught.value.status == 400
    with pytest.raises(RequestError, match="maximum context length"):
        sampling_of({"prompt": "x"}, 100, 100)
    assert sampling_of({"prompt": "x"}, 90, 100).max_tokens == 10
    assert sampling_of({"prompt": "x", "stop": "!"}, 1, 100).stop == ["!"]
    with pytest.raises(RequestError):
        sampling_of({"prompt": "x", "temperature": 9}, 1, 100)


def test_vllm_command_line_keeps_the_secret_off_the_argv() -> None:
    argv = vllm_argv(VllmOptions("/m", "chat", gpus=2, dtype="bfloat16", max_model_len=4096))
    assert argv == [
        "vllm", "serve", "/m", "--host", "127.0.0.1", "--port", "8000",
        "--served-model-name", "chat", "--tensor-parallel-size", "2",
        "--dtype", "bfloat16", "--max-model-len", "4096",
    ]  # fmt: skip
    assert not any("key" in a for a in argv)
    with pytest.raises(ValueError):
        vllm_argv(VllmOptions("/m", "chat", gpus=0))


def test_replica_commands_pick_the_server_for_the_site() -> None:
    cpu = server_command("$FABRIEK_DATASETS/m", "chat", gpus=0)
    assert cpu[:2] == ["sh", "-c"]
    assert "-m fabriek.model_server" in cpu[2] and "vllm" not in cpu[2]
    assert '--model "$FABRIEK_DATASETS/m"' in cpu[2]
    assert "--api-key-env FABRIEK_WEB_SECRET" in cpu[2]
    assert '"${FABRIEK_WEB_PORT:-8000}"' in cpu[2]
    image = server_command("/data/m", "chat", gpus=4, image="vllm/vllm-openai")
    assert image[2].startswith('export VLLM_API_KEY="$FABRIEK_WEB_SECRET"; exec vllm serve')
    assert "--tensor-parallel-size 4" in image[2]
    auto = server_command("/data/m", "chat", gpus=1)
    assert "nvidia-smi" in auto[2] and "vllm serve" in auto[2] and "fabriek.model_server" in auto[2]
    assert (
        server_command("/m", "chat", gpus=1, engine_kind="cpu")[2]
        == server_command("/m", "chat", gpus=0)[2]
    )


def test_a_path_cannot_break_out_of_its_quotes() -> None:
    line = server_command('/m"; rm -rf / #`x`', "a'b", gpus=0)[2]
    assert '"/m\\"; rm -rf / #\\`x\\`"' in line
    assert "'a'\"'\"'b'" in line


def test_the_build_command_writes_a_folder_the_server_loads(tmp_path: Path) -> None:
    from fabriek.model_server.build import main
    from fabriek.model_server.model import load_model

    main([str(tmp_path / "tiny"), "--layers", "1", "--width", "16", "--context", "64"])
    loaded = load_model(tmp_path / "tiny")
    assert loaded.config.n_layers == 1 and loaded.config.max_context == 64
    cache = loaded.model.new_cache()
    hidden = loaded.model.forward(loaded.tokenizer.encode("hello"), cache)
    assert hidden.shape == (len(loaded.tokenizer.encode("hello")), 16)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "odd"), "--width", "15", "--heads", "2"])


@given(
    prompt=st.integers(0, 300),
    asked=st.none() | st.integers(1, 300),
    context=st.integers(1, 256),
)
def test_a_request_fits_the_context_or_is_refused_naming_it(
    prompt: int, asked: int | None, context: int
) -> None:
    body: dict[str, object] = (
        {"prompt": "x"} if asked is None else {"prompt": "x", "max_tokens": asked}
    )
    fits = prompt < context and (asked is None or prompt + asked <= context)
    if fits:
        sampling = sampling_of(body, prompt, context)
        assert 1 <= sampling.max_tokens <= context - prompt
    else:
        with pytest.raises(RequestError, match=f"maximum context length is {context} tokens"):
            sampling_of(body, prompt, context)
