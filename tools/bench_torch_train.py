#!/usr/bin/python3
"""Independent PyTorch reference of a fine-tuning step for pare's benchmark (tools/bench.sh).

Benchmark reference only: pare never depends on PyTorch. Run with Debian's interpreter
(/usr/bin/python3, package python3-torch).

Fine-tunes the LLaMA or GPT-2 model of tools/bench_torch.py (the same independent forward, now with
gradients) the way `pare finetune` does: every step B random windows of T + 1 tokens (inputs and
shifted targets), mean cross-entropy, backward, global gradient-norm clipping at 1, AdamW (lr 3e-4,
weight decay 0.01 on matrices, none on norms and biases), fp32, the given threads. One warm-up step
is not timed. Prints one JSON object: steps, batch, seq, tokens_per_second, seconds, loss_first,
loss_last, peak_rss_bytes, threads, torch.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("bench_torch_train: PyTorch not importable by %s; install it with: "
                     "apt-get install python3-torch\n" % sys.executable)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import build  # noqa: E402  (the forward pass shared with the inference benchmark)


def parameters(model):
    """The model's tensors as trainable leaves: (matrices, vectors), each tensor once (tied heads)."""
    seen, mats, vecs = set(), [], []

    def add(t):
        if isinstance(t, tuple):
            for x in t:
                add(x)
            return
        if not isinstance(t, torch.Tensor) or id(t) in seen:
            return
        seen.add(id(t))
        t.requires_grad_(True)
        (mats if t.dim() >= 2 else vecs).append(t)

    for name in ("emb", "wte", "wpe", "head", "norm", "lnf"):
        if hasattr(model, name):
            add(getattr(model, name))
    for layer in model.layers:
        for v in layer.values():
            add(v)
    return mats, vecs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--ids", required=True, help="token ids, little-endian int32")
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after one warm-up step)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ids = torch.from_numpy(np.fromfile(a.ids, dtype="<i4").astype(np.int64))
    if len(ids) < a.seq + 2:
        sys.stderr.write("bench_torch_train: fewer than %d tokens in %s\n" % (a.seq + 2, a.ids))
        return 2
    model = build(a.model, a.seq)
    mats, vecs = parameters(model)
    opt = torch.optim.AdamW([{"params": mats, "weight_decay": 0.01}, {"params": vecs, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.999), eps=1e-8)
    params = mats + vecs
    gen = torch.Generator().manual_seed(a.seed)

    def step():
        starts = torch.randint(0, len(ids) - a.seq - 1, (a.batch,), generator=gen)
        win = torch.stack([ids[s:s + a.seq + 1] for s in starts.tolist()])
        logits = model.forward(win[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), win[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    first = step()  # warm-up: allocations, thread pool
    t0 = time.perf_counter()
    last = first
    for _ in range(a.steps):
        last = step()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "steps": a.steps, "batch": a.batch, "seq": a.seq, "seconds": dt,
        "tokens_per_second": a.steps * a.batch * a.seq / dt, "loss_first": first, "loss_last": last,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": a.threads, "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
