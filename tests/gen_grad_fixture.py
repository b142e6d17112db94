#!/usr/bin/python3
"""Reference gradients for tests/test_backward.c: PyTorch autograd on the shared reference models.

Run from the repository root with Debian's interpreter (package python3-torch; pare itself never
needs PyTorch), once per model; the outputs are committed:

    /usr/bin/python3 tests/gen_grad_fixture.py --model ../shared/models/ref-llama-12m > tests/data/grad_ref-llama-12m.json
    /usr/bin/python3 tests/gen_grad_fixture.py --model ../shared/models/ref-gpt2-6m > tests/data/grad_ref-gpt2-6m.json

The forward is tools/bench_torch.py's independent re-implementation of both architectures (imported,
not copied), run in float64 so the reference is exact to far below the float32 rounding of the code
under test. The batch is fixed: 2 sequences of 64 tokens from the model's reference ids of
tiny_test.txt; targets are the next tokens, with each sequence's last position and the first 8
targets of the second sequence ignored (-1) to exercise the ignore mask. The loss is the mean
cross-entropy over the scored targets.

For every trainable tensor, under pare's name and in pare's layout ([out, in] linear weights; GPT-2's
fused Conv1D c_attn split into q, k, v), the JSON has its shape, the float64 L2 norm of its gradient,
and sampled entries [flat index, value]: the largest-magnitude entry and 3 seeded random ones among
entries of at least a tenth of that magnitude (where float32 rounding is small against the value).
A tensor whose gradient is zero in exact arithmetic (norm below 1e-10 of the global norm, which is
also given) is marked "zero" and has no entries.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import bench_torch  # noqa: E402  (the reference forward: bench_torch.Llama / bench_torch.GPT2)

B, T, IGNORE_FIRST = 2, 64, 8


def pare_tensors(cfg, w, gpt2):
    """(pare name, gradient in pare's layout) for every trainable tensor, in float64 numpy."""
    out = []
    g = {k: v.grad.detach().numpy() for k, v in w.items() if v.grad is not None}
    w = {k: v for k, v in w.items() if k in g}
    if not gpt2:
        for k in w:
            out.append((k, g[k]))
        return out
    C = cfg["n_embd"]
    for k in w:
        name = k if k.startswith("transformer.") or k.startswith("lm_head") else "transformer." + k
        gk = g[k]
        if ".attn.c_attn." in name:
            base = name.rsplit(".", 1)[0]
            kind = name.rsplit(".", 1)[1]
            full = gk.T if kind == "weight" else gk          # Conv1D [in, 3C] -> [3C, in]
            for i, part in enumerate("qkv"):
                out.append(("%s.%s.%s" % (base, part, kind), full[i * C:(i + 1) * C]))
        elif name.endswith(".weight") and (".attn.c_proj." in name or ".mlp." in name):
            out.append((name, gk.T))                         # Conv1D [in, out] -> [out, in]
        else:
            out.append((name, gk))
    return out


def grad_record(head, grads, seed):
    """The fixture's JSON text: head's keys, then global_norm and per tensor its shape, float64 norm and
    sampled entries, from grads [(pare name, float64 gradient array)]; also used by
    tools/make_family_fixtures.py."""
    rng = np.random.default_rng(seed)
    global_norm = float(np.sqrt(sum(np.sum(gr * gr) for _, gr in grads)))
    tensors = {}
    for name, gr in grads:
        flat = np.ascontiguousarray(gr).reshape(-1)
        norm = float(np.sqrt(np.sum(flat * flat)))
        t = {"shape": list(gr.shape), "norm": norm}
        if norm <= 1e-10 * global_norm:
            # zero in exact arithmetic (GPT-2's key biases shift every score of a query alike, which
            # the softmax ignores): no entries, the test bounds pare's norm by float rounding instead
            t["zero"] = True
            t["entries"] = []
        else:
            top = int(np.argmax(np.abs(flat)))
            big = np.flatnonzero(np.abs(flat) >= 0.1 * abs(flat[top]))
            picks = [top] + [int(i) for i in rng.choice(big, size=min(4, len(big)), replace=False) if i != top][:3]
            t["entries"] = [[i, float(flat[i])] for i in picks]
        tensors[name] = t
    head = dict(head, global_norm=global_norm)
    # one line per key and per tensor, so a regenerated file diffs readably
    lines = ["  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in head.items()]
    lines.append('  "tensors": {\n' + ",\n".join("    %s: %s" % (json.dumps(k), json.dumps(v))
                                                   for k, v in tensors.items()) + "\n  }")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model folder (shared/models/...)")
    ap.add_argument("--seed", type=int, default=7, help="seed for the sampled entries")
    a = ap.parse_args()

    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    gpt2 = cfg.get("model_type") == "gpt2"
    w = bench_torch.load_safetensors(os.path.join(a.model, "model.safetensors"))
    # the position table holds every position of the model, as pare's does
    w = {k: v.to(torch.float64).requires_grad_(True) for k, v in w.items()}
    model = (bench_torch.GPT2 if gpt2 else bench_torch.Llama)(cfg, w, T)

    stream = np.fromfile(os.path.join(a.model, "reference_ids", "tiny_test.txt.i32"), dtype="<i4")
    ids = torch.from_numpy(stream[:B * T].astype(np.int64).reshape(B, T))
    targets = torch.full((B, T), -1, dtype=torch.int64)
    targets[:, :-1] = ids[:, 1:]
    targets[1, :IGNORE_FIRST] = -1

    logits = model.forward(ids)
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    loss.backward()

    head = {
        "generator": "tests/gen_grad_fixture.py",
        "model": os.path.basename(os.path.normpath(a.model)),
        "torch": torch.__version__,
        "dtype": "float64",
        "batch": B, "seq": T,
        "ids": ids.reshape(-1).tolist(),
        "targets": targets.reshape(-1).tolist(),
        "loss": float(loss.item()),
    }
    sys.stdout.write(grad_record(head, pare_tensors(cfg, w, gpt2), a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
