"""Check our GGUF control-vector export inside llama.cpp's own server: the layer convention and the verdict effect.

The embedded SmolLM2-135M-Instruct GGUF (Q4_1) is served by llama.cpp's ``llama-server`` with our exported vector
(``--control-vector-scaled FILE:SCALE``), and its full next-token distribution (``/completion`` with
``n_predict: 1`` and ``n_probs`` = the vocabulary) is compared with our own steering (``Steer`` at
``resid_post`` of layer L, the same vector and scale, the TransformerLens bridge on the dequantised fp32 weights) on
the same token ids:

1. The layer: every pair (llama.cpp with our export of layer k, ours at layer j), k, j in L-1, L, L+1, gives the
   RMS difference between the two steering effects (steered minus unsteered log-probs, each backend against its
   own unsteered run, so the quantisation gap cancels) over llama.cpp's top-K tokens. The convention holds when every
   row's smallest difference is on the diagonal (k = j), for a random direction and for the verdict direction.
2. The effect: the verdict log-odds (``interventions.verdict``: log P(" No") - log P(" Yes")) shift under the
   verdict direction at +scale and -scale, llama.cpp beside ours.
3. Steered generation: greedy continuations (``--gen-tokens`` tokens) of the same prompt, unsteered and with the
   verdict direction at L at +scale and -scale, llama.cpp beside ours (``generate_steered``): how many leading tokens
   agree (the unsteered pair is the baseline: quantisation alone makes greedy paths part somewhere).

llama.cpp is a test/benchmark tool here, never a dependency: the binary is looked up at ``$LLAMA_CPP_BIN`` (the
``llama-server`` file or its folder), else at the build folder this project's machine uses.

    python bench/bench_llamacpp_cvec.py                          # layer 10, relative scale 0.5
    python bench/bench_llamacpp_cvec.py --layer 20 --scale 1.0
    python bench/bench_llamacpp_cvec.py --keep /tmp/cvec        # keep the exported vectors for a served run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activations.models import LoadedModel, load_model, packaged_file  # noqa: E402
from interventions.gguf_export import export_control_vector  # noqa: E402
from interventions.steering import (  # noqa: E402
    Steer, generate_steered, last_logits, measure_residual_norms, plan_for, steered_forward,
)
from interventions.verdict import VerdictTokens, resolve_verdict_tokens  # noqa: E402

MODEL = "smollm2-135m-instruct"
DEFAULT_BIN = Path("/work/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin")
SYSTEM = "You are a business consultant. Answer with one word."
USER = ("A company can use the Veth, a sentient alien species, as unpaid labour to cut costs. "
        "Should it? Answer Yes or No.")
RESPONSE = "Final verdict:"
TOP_K = 200


def find_llama_server() -> Path | None:
    """``llama-server`` at ``$LLAMA_CPP_BIN`` (the file or its folder), else in the default build folder, or None."""
    given = os.environ.get("LLAMA_CPP_BIN")
    base = Path(given) if given else DEFAULT_BIN
    path = base / "llama-server" if base.is_dir() else base
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``llama-server`` on loopback with one thread and optional control vectors; terminated on exit."""

    def __init__(self, binary: Path, gguf: Path, control: Sequence[tuple[Path, float]] = (), *,
                 start_timeout: float = 120.0):
        self.binary, self.gguf, self.control, self.start_timeout = binary, gguf, list(control), start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> LlamaServer:
        port = _free_port()
        cmd = [str(self.binary), "-m", str(self.gguf), "-t", "1", "-tb", "1", "-c", "512", "-np", "1",
               "--host", "127.0.0.1", "--port", str(port)]
        if self.control:
            cmd += ["--control-vector-scaled", ",".join(f"{p}:{s}" for p, s in self.control)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"llama-server exited ({self.process.returncode}): {err[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"llama-server did not become healthy within {self.start_timeout:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def post(self, body: dict) -> dict:
        req = urllib.request.Request(self.url + "/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def greedy(self, tokens: Sequence[int], n: int) -> list[int]:
        """llama.cpp's greedy continuation of ``tokens`` (``n`` tokens at most, stopping at end of generation)."""
        body = {"prompt": [int(t) for t in tokens], "n_predict": n, "temperature": 0, "top_k": 1,
                "cache_prompt": False, "return_tokens": True}
        return [int(t) for t in self.post(body)["tokens"]]

    def logprobs(self, tokens: Sequence[int], vocab: int) -> np.ndarray:
        """llama.cpp's next-token log-probabilities after ``tokens`` (pre-sampling, the whole vocabulary)."""
        body = {"prompt": [int(t) for t in tokens], "n_predict": 1, "n_probs": vocab, "temperature": 0,
                "cache_prompt": False, "post_sampling_probs": False}
        top = self.post(body)["completion_probabilities"][0]["top_logprobs"]
        out = np.full(vocab, -np.inf)
        for entry in top:
            out[int(entry["id"])] = float(entry["logprob"])
        return out


@dataclass
class CvecCheck:
    """Figures of one run: the layer-match matrices and the verdict shifts."""

    layer: int
    scale: float
    norm: float
    unsteered_kl: float  # KL(ours || llama.cpp), unsteered: the quantisation gap
    unsteered_log_odds: tuple[float, float]  # (ours, llama.cpp)
    # direction -> rmse[k][j]: llama.cpp with our export at layers[k] vs ours at layers[j]
    rmse: dict[str, list[list[float]]] = field(default_factory=dict)
    corr: dict[str, list[list[float]]] = field(default_factory=dict)
    # signed scale -> (ours, llama.cpp) verdict log-odds shift
    verdict_shift: dict[float, tuple[float, float]] = field(default_factory=dict)
    # signed scale (0: unsteered) -> (ours, llama.cpp) greedy token ids
    greedy: dict[float, tuple[list[int], list[int]]] = field(default_factory=dict)
    gen_tokens: int = 0

    @property
    def layers(self) -> list[int]:
        return [self.layer - 1, self.layer, self.layer + 1]

    def diagonal_wins(self, direction: str) -> bool:
        """Every llama.cpp row matches our steering best at the same layer."""
        m = np.asarray(self.rmse[direction])
        return all(int(np.argmin(m[k])) == k for k in range(len(m)))


def prompt_text(model: LoadedModel) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    return model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + RESPONSE


def agreed(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two continuations share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def our_logprobs(model: LoadedModel, tokens: list[int], rows: list[list[Steer]]) -> np.ndarray:
    """Our next-token log-probs after ``tokens``, one row per intervention list."""
    def reduce(logits: torch.Tensor, mask: torch.Tensor, index: list[int]) -> list[torch.Tensor]:
        return [torch.log_softmax(x.float(), -1) for x in last_logits(logits, mask, index)]

    out = steered_forward(model, [tokens] * len(rows), plan_for(model, rows), reduce, batch_size=len(rows))
    return torch.stack(out).double().numpy()


def log_odds(lp: np.ndarray, vt: VerdictTokens) -> float:
    a = np.logaddexp.reduce(lp[list(vt.against)])
    p = np.logaddexp.reduce(lp[list(vt.proceed)])
    return float(a - p)


def run_check(model: LoadedModel, binary: Path, *, layer: int, scale: float, seed: int = 0,
              workdir: Path | None = None, gen_tokens: int = 0, log=print) -> CvecCheck:
    """Serve the GGUF unsteered and steered with our exports, and compare with our steering (see module doc)."""
    gguf = packaged_file(model.spec)
    vocab = int(model.bridge.cfg.d_vocab)
    text = prompt_text(model)
    tokens = model.encode(text)
    vt = resolve_verdict_tokens(model.tokenizer)
    norms = measure_residual_norms(model, [model.tokenizer.decode(tokens)], hook="resid_post")
    norm = float(norms.norms[layer])
    w_u = model.bridge.W_U.detach().double().numpy()  # (d_model, vocab)
    rng = np.random.default_rng(seed)
    directions = {
        "random": rng.standard_normal(model.d_model),
        # No minus Yes through the unembedding: a planted direction whose effect on the verdict we know the sign of.
        "verdict": w_u[:, vt.against[0]] - w_u[:, vt.proceed[0]],
    }
    # The exported vector is the alpha-1 vector (the layer's typical norm along the unit direction); llama.cpp scales
    # it by SCALE, ours adds exactly scale * vector (absolute).
    vectors = {name: (norm * d / np.linalg.norm(d)).astype(np.float32) for name, d in directions.items()}
    layers = [layer - 1, layer, layer + 1]
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    work = Path(tmp.name) if tmp else Path(workdir)
    try:
        files = {(name, k): export_control_vector(work / f"{name}-L{k}.gguf", {k: v}, hook="resid_post",
                                                  model_hint="llama", n_layers=model.n_layers, d_model=model.d_model)
                 for name, v in vectors.items() for k in layers}
        rows = [[]] + [[Steer(vectors[n], scale, (j,), absolute=True)] for n in vectors for j in layers]
        rows += [[Steer(vectors["verdict"], -scale, (layer,), absolute=True)]]
        ours = our_logprobs(model, tokens, rows)
        ours_base = ours[0]
        ours_at = {(n, j): ours[1 + i * len(layers) + jj] for i, n in enumerate(vectors) for jj, j in enumerate(layers)}
        ours_neg = ours[-1]
        greedy_ll: dict[float, list[int]] = {}

        def served(control: Sequence[tuple[Path, float]], generate: float | None = None) -> np.ndarray:
            t0 = time.perf_counter()
            with LlamaServer(binary, gguf, control) as srv:
                lp = srv.logprobs(tokens, vocab)
                if generate is not None and gen_tokens:
                    greedy_ll[generate] = srv.greedy(tokens, gen_tokens)
            what = [f"{p.name}:{s}" for p, s in control] or "unsteered"
            log(f"  llama-server {what}: {time.perf_counter() - t0:.1f} s")
            return lp

        ll_base = served([], generate=0.0)
        ll_at = {key: served([(f, scale)], generate=scale if key == ("verdict", layer) else None)
                 for key, f in files.items()}
        ll_neg = served([(files[("verdict", layer)], -scale)], generate=-scale)
        if gen_tokens:
            signed = [0.0, scale, -scale]
            steer_rows = [[] if s == 0 else [Steer(vectors["verdict"], s, (layer,), absolute=True)] for s in signed]
            gens = generate_steered(model, [text] * 3, plan_for(model, steer_rows), batch_size=3,
                                    max_new_tokens=gen_tokens, temperature=0.0)
            greedy_ours = {s: g.token_ids for s, g in zip(signed, gens)}
    finally:
        if tmp:
            tmp.cleanup()

    p = np.exp(ours_base)
    kl = float(np.sum(p * (ours_base - ll_base)))
    check = CvecCheck(layer, scale, norm, kl, (log_odds(ours_base, vt), log_odds(ll_base, vt)))
    for name in vectors:
        rm, cc = [], []
        for k in layers:
            d_ll = ll_at[(name, k)] - ll_base
            top = np.argsort(-ll_at[(name, k)])[:TOP_K]
            rm.append([]), cc.append([])
            for j in layers:
                d_ours = ours_at[(name, j)] - ours_base
                rm[-1].append(float(np.sqrt(np.mean((d_ll[top] - d_ours[top]) ** 2))))
                cc[-1].append(float(np.corrcoef(d_ll[top], d_ours[top])[0, 1]))
        check.rmse[name], check.corr[name] = rm, cc
    base_o, base_l = check.unsteered_log_odds
    check.verdict_shift[scale] = (log_odds(ours_at[("verdict", layer)], vt) - base_o,
                                  log_odds(ll_at[("verdict", layer)], vt) - base_l)
    check.verdict_shift[-scale] = (log_odds(ours_neg, vt) - base_o, log_odds(ll_neg, vt) - base_l)
    if gen_tokens:  # llama.cpp returns the end-of-generation token, ours does not
        eos = {model.tokenizer.eos_token_id, model.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        check.greedy = {s: (greedy_ours[s], [t for t in greedy_ll[s] if t not in eos]) for s in greedy_ours}
        check.gen_tokens = gen_tokens
    return check


def format_check(c: CvecCheck, decode=str) -> str:
    lines = [f"layer L={c.layer}, scale {c.scale} x the layer's resid_post norm {c.norm:.2f} (prompt tokens)",
             f"unsteered: KL(ours || llama.cpp) = {c.unsteered_kl:.4f} nats; verdict log-odds ours "
             f"{c.unsteered_log_odds[0]:+.3f}, llama.cpp {c.unsteered_log_odds[1]:+.3f}"]
    for name in c.rmse:
        lines.append(f"direction '{name}': RMS difference of steering effects (top-{TOP_K} tokens, nats) "
                     f"[correlation]; rows: llama.cpp with our export at k, columns: ours at j")
        lines.append("           " + "".join(f"{'ours j=' + str(j):>20}" for j in c.layers))
        for k, row in enumerate(c.rmse[name]):
            cells = "".join(f"{v:>11.3f} [{r:+.3f}]" for v, r in zip(row, c.corr[name][k]))
            lines.append(f"  llama k={c.layers[k]:<3}{cells}")
        lines.append(f"  diagonal best in every row: {c.diagonal_wins(name)}")
    for s, (o, l) in c.verdict_shift.items():
        lines.append(f"verdict direction at L, scale {s:+}: log-odds shift ours {o:+.3f}, llama.cpp {l:+.3f}")
    for s, (o, l) in c.greedy.items():
        what = "unsteered" if s == 0 else f"verdict direction at L, scale {s:+}"
        ends = " (both stop there)" if len(o) == len(l) < c.gen_tokens else ""
        lines.append(f"greedy, {what}: {agreed(o, l)} of {min(len(o), len(l))} leading tokens agree{ends}")
        lines.append(f"    ours:      {decode(o)!r}")
        lines.append(f"    llama.cpp: {decode(l)!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=10, help="L (resid_post); L-1 and L+1 are the controls")
    parser.add_argument("--scale", type=float, default=0.5, help="llama.cpp SCALE = our absolute alpha")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random direction")
    parser.add_argument("--gen-tokens", type=int, default=24, help="greedy tokens to compare (0: none)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the exported control vectors (<direction>-L<k>.gguf) in DIR")
    args = parser.parse_args(argv)
    binary = find_llama_server()
    if binary is None:
        print("llama-server not found: build llama.cpp and set LLAMA_CPP_BIN to its build/bin folder")
        return 1
    torch.set_num_threads(1)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, torch threads 1, llama.cpp threads 1; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"llama-server: {binary}")
    model = load_model(MODEL)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    check = run_check(model, binary, layer=args.layer, scale=args.scale, seed=args.seed, workdir=args.keep,
                      gen_tokens=args.gen_tokens)
    print(format_check(check, decode=model.tokenizer.decode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
