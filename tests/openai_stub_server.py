"""A small OpenAI-compatible server for tests: real generation with a tiny random model, on loopback only.

    python tests/openai_stub_server.py [--port 0] [--arch llama] [--idle-exit 300]

prints ``PORT <n>`` once it listens on 127.0.0.1. It serves ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` by generating with ``activations.tiny.tiny_model`` through the toolkit (the request's
``seed`` seeds the sample, as vLLM does). ``POST /stub/control`` injects faults for the next requests
(``{"fail_next": 2, "status": 503}``, ``{"malformed_next": 1}``, ``{"delay_next": 1, "delay_s": 2.0}``) or sets a
reasoning channel (``{"reasoning": "..."}``, like vLLM's reasoning parsers); ``GET /stub/stats`` counts the
``/v1/`` requests.
It exits after ``--idle-exit`` seconds without a request, or after ``MAX_REQUESTS`` requests, so a test that dies
cannot leave it running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_REQUESTS = 2000
MAX_TOKENS = 128  # bounded work per request


class StubServer:
    """Run the stub as a subprocess on loopback: ``with StubServer() as base_url: ...`` (terminated on exit)."""

    def __init__(self, arch: str = "llama", *, start_timeout: float = 120.0, idle_exit: float = 300.0):
        self.arch = arch
        self.start_timeout = start_timeout
        self.idle_exit = idle_exit
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--arch", self.arch, "--idle-exit", str(self.idle_exit)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
        )
        found: list[str] = []

        def read_port() -> None:  # libraries may print blank lines before the server is up
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if line.startswith("PORT "):
                    found.append(line)
                    return

        reader = threading.Thread(target=read_port, daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not found:
            self.__exit__()
            raise RuntimeError(f"stub server did not start within {self.start_timeout} s")
        self.base_url = f"http://127.0.0.1:{int(found[0].split()[1])}"
        return self.base_url

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class StubState:
    def __init__(self, arch: str):
        sys.path.insert(0, str(REPO_ROOT))
        from activations.tiny import tiny_model

        self.model = tiny_model(arch, seed=0)
        self.served_name = f"tiny-{arch}"
        self.lock = threading.Lock()  # one generation at a time: the model is shared
        self.fail_next = 0
        self.fail_status = 503
        self.malformed_next = 0
        self.delay_next = 0
        self.delay_s = 0.0
        self.reasoning: str | None = None
        self.requests = 0
        self.last_request = time.monotonic()

    def generate(self, prompt: str, body: dict[str, Any]) -> tuple[str, str, int]:
        from activations.generation import generate_detailed

        max_tokens = min(int(body.get("max_tokens", 16)), MAX_TOKENS)
        temperature = float(body.get("temperature", 1.0))
        seed = body.get("seed")
        with self.lock:
            gen = generate_detailed(self.model, [prompt], max_new_tokens=max_tokens, temperature=temperature,
                                    top_p=float(body.get("top_p", 1.0)),
                                    seeds=None if seed is None or temperature == 0 else [int(seed)])[0]
        return gen.text, "stop" if gen.finished else "length", len(gen.token_ids)


class Handler(BaseHTTPRequestHandler):
    state: StubState

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        state = self.state
        state.requests += self.path.startswith("/v1/")  # API calls only, not the test's control calls
        state.last_request = time.monotonic()
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": state.served_name, "object": "model",
                                                         "owned_by": "stub", "root": state.model.identity.location,
                                                         "max_model_len": state.model.n_ctx}]})
        elif self.path == "/stub/stats":
            self._send(200, {"requests": state.requests})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.state
        state.requests += self.path.startswith("/v1/")  # API calls only, not the test's control calls
        state.last_request = time.monotonic()
        body = self._body()
        if self.path == "/stub/control":
            for key in ("fail_next", "malformed_next", "delay_next"):
                setattr(state, key, int(body.get(key, getattr(state, key))))
            state.fail_status = int(body.get("status", state.fail_status))
            state.delay_s = float(body.get("delay_s", state.delay_s))
            if "reasoning" in body:
                state.reasoning = body["reasoning"]
            self._send(200, {"ok": True})
            return
        if state.delay_next > 0:
            state.delay_next -= 1
            time.sleep(state.delay_s)
        if state.fail_next > 0:
            state.fail_next -= 1
            self._send(state.fail_status, {"error": {"message": "injected failure"}})
            return
        if state.malformed_next > 0:
            state.malformed_next -= 1
            self._send(200, raw=b"<html>not json")
            return
        if body.get("model") != state.served_name:
            self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        if self.path == "/v1/chat/completions":
            messages = body.get("messages") or []
            system = next((m["content"] for m in messages if m.get("role") == "system"), None)
            user = next((m["content"] for m in messages if m.get("role") == "user"), "")
            from common.prompts import PromptSource
            from activations.prompts import render_prompt

            prompt = render_prompt(PromptSource(user, system=system), state.model.tokenizer, state.model.spec)
            text, finish, n = state.generate(prompt, body)
            message = {"role": "assistant", "content": text}
            if state.reasoning is not None:
                message["reasoning_content"] = state.reasoning
            self._send(200, {"object": "chat.completion", "model": state.served_name,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": {"completion_tokens": n}})
        elif self.path == "/v1/completions":
            text, finish, n = state.generate(str(body.get("prompt", "")), body)
            self._send(200, {"object": "text_completion", "model": state.served_name,
                             "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                             "usage": {"completion_tokens": n}})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--arch", default="llama")
    parser.add_argument("--idle-exit", type=float, default=300.0)
    args = parser.parse_args()
    Handler.state = StubState(args.arch)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            idle = time.monotonic() - Handler.state.last_request
            if idle > args.idle_exit or Handler.state.requests >= MAX_REQUESTS:
                server.shutdown()
                return

    threading.Thread(target=watchdog, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
