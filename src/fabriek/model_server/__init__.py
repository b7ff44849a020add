"""Fabriek's model server: a tiny causal language model in NumPy behind an
OpenAI-compatible HTTP API, for endpoints on CPU sites and in the tests; and vLLM's command
line for GPU sites. Only `server`, `model` and `tokenizer` import NumPy; `commands` and
`vllm` stay light so the control plane can import them."""
