#!/usr/bin/env bash
# vLLM on a GPU machine, served with the command line Fabriek builds for an endpoint's
# replica (src/fabriek/model_server/vllm.py), on a tiny random Llama model built here (no
# model hub download): time to first token and throughput from a small client.
#
#   bench/endpoint_vllm.sh            # from the repository root
#
# Needs: an NVIDIA GPU with its driver (nvidia-smi), python3 with venv, and PyPI reachable
# for `pip install vllm` (it brings PyTorch, transformers and tokenizers). Without a GPU it
# says so and exits 0. Environment: VLLM_SPEC (default "vllm"), WORK (default a temp dir),
# PORT (default 8765), REQUESTS (default 64), CONCURRENCY (default 16).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d)}
PORT=${PORT:-8765}
REQUESTS=${REQUESTS:-64}
CONCURRENCY=${CONCURRENCY:-16}
VLLM_SPEC=${VLLM_SPEC:-vllm}

if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "endpoint_vllm: no NVIDIA GPU here (nvidia-smi fails): vLLM not measured"
    exit 0
fi
echo "machine: $(nproc) CPUs; $(nvidia-smi -L | head -1)"
echo "work dir: $WORK"

if [ ! -x "$WORK/venv/bin/vllm" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q --upgrade pip
    "$WORK/venv/bin/pip" install -q "$VLLM_SPEC"
fi
PY="$WORK/venv/bin/python"
echo "vllm $("$PY" -c 'import vllm; print(vllm.__version__)')"

# A tiny Llama: random weights, a byte-level BPE tokenizer trained on a few sentences.
MODEL="$WORK/tiny-llama"
"$PY" - "$MODEL" <<'PYEOF'
import sys
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
sentences = [
    "The factory trains models and serves them to the people who pay for it.",
    "A job runs on a site with GPUs, and its energy is counted per project.",
    "Hello! How can I help you with your model today?",
    "The quick brown fox jumps over the lazy dog.",
] * 50
bpe = Tokenizer(models.BPE(unk_token=None))
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
bpe.train_from_iterator(sentences, trainers.BpeTrainer(
    vocab_size=512, special_tokens=["<s>", "</s>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
tok.chat_template = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "<|assistant|>\n")
tok.save_pretrained(out)
config = LlamaConfig(
    vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, torch_dtype="bfloat16")
torch.manual_seed(0)
LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
print(f"built {out}: vocab {len(tok)}")
PYEOF

# The command line exactly as Fabriek builds it for a replica (the secret in VLLM_API_KEY).
mapfile -t ARGV < <(PYTHONPATH="$ROOT/src" python3 -c '
import sys
from fabriek.model_server.vllm import VllmOptions, vllm_argv
print("\n".join(vllm_argv(VllmOptions(sys.argv[1], "tiny", gpus=1, port=sys.argv[2],
                                      dtype="bfloat16", max_model_len=2048))))
' "$MODEL" "$PORT")
ARGV[0]="$WORK/venv/bin/vllm"
export VLLM_API_KEY=bench-secret
echo "\$ ${ARGV[*]}"
SECONDS=0
"${ARGV[@]}" >"$WORK/vllm.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
until python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; do
    if ! kill -0 $SERVER 2>/dev/null; then
        echo "vLLM exited; its log:"; tail -40 "$WORK/vllm.log"; exit 1
    fi
    sleep 1
done
echo "vLLM healthy after ${SECONDS} s (start, model load, CUDA graphs)"

"$PY" - "$PORT" "$REQUESTS" "$CONCURRENCY" <<'PYEOF'
import asyncio, statistics, sys, time
import openai

port, requests, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench-secret")
messages = [{"role": "user", "content": "Hello! How can I help the factory?"}]

async def first_token() -> float:
    start = time.perf_counter()
    stream = await client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=32, stream=True)
    took = None
    async for chunk in stream:
        if took is None and chunk.choices and chunk.choices[0].delta.content:
            took = time.perf_counter() - start
    return (took or 0.0) * 1000

async def one(sem: asyncio.Semaphore) -> int:
    async with sem:
        done = await client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=128, temperature=1.0,
            extra_body={"ignore_eos": True})
        return done.usage.completion_tokens

async def main() -> None:
    ttft = [await first_token() for _ in range(20)]
    print(f"time to first token (20 streamed chats): median {statistics.median(ttft):.1f} ms,"
          f" max {max(ttft):.1f} ms")
    sem = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(sem) for _ in range(requests))))
    took = time.perf_counter() - start
    print(f"throughput: {requests} chats x 128 tokens, {concurrency} at once: "
          f"{requests / took:.1f} req/s, {tokens / took:.0f} generated tokens/s")
    wrong = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope")
    try:
        await wrong.models.list()
        print("WARNING: a wrong key was accepted")
    except openai.AuthenticationError:
        print("a wrong key is refused (401), as through VLLM_API_KEY")

asyncio.run(main())
PYEOF
