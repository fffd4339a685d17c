"""The model as a local service: OpenAI's completions API over continuous batching
(`charnext serve`, `charnext.api.serve_app`). Needs the `serve` extra (Starlette, uvicorn)."""
