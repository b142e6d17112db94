#!/usr/bin/env python3
"""Checks the family fixtures (tests/data/families/*) against transformers itself.

The fixtures' references (logits.f32, reference.json) may come from tools/family_reference.py, pare's
independent float64 re-implementation, when no machine with transformers was at hand. This loads each
fixture folder with AutoModelForCausalLM (eager attention, fp32, CPU, TF32 off), exactly as a user
would, and compares its logits of prompt_ids and its perplexity over eval.i32 (the fixture's protocol)
with the stored reference. Run where torch and transformers are installed (the GPU machine):

    python3 tools/check_fixtures_transformers.py tests/data/families/* [--tol-logits 1e-4] [--tol-ppl 1e-5]

Exits non-zero when any folder fails to load or differs beyond the tolerances.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM


def check(folder, tol_logits, tol_ppl):
    ref = json.load(open(os.path.join(folder, "reference.json")))
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", torch_dtype=torch.float32)
    model.eval()
    want = np.fromfile(os.path.join(folder, "logits.f32"), dtype="<f4").reshape(ref["logits_shape"])
    with torch.no_grad():
        got = model(input_ids=torch.tensor([ref["prompt_ids"]])).logits[0].numpy()
        ids = np.fromfile(os.path.join(folder, "eval.i32"), dtype="<i4").astype(np.int64)
        w = ref["window"]
        nll, count = 0.0, 0
        for i in range(len(ids) // w):
            x = torch.from_numpy(ids[i * w:(i + 1) * w]).reshape(1, -1)
            lg = model(input_ids=x).logits[0, :-1].double()
            nll += float(torch.nn.functional.cross_entropy(lg, x[0, 1:], reduction="sum"))
            count += w - 1
    ppl = math.exp(nll / count)
    dl = float(np.max(np.abs(got - want)))
    dp = abs(ppl - ref["ppl"]) / ref["ppl"]
    ok = dl <= tol_logits and dp <= tol_ppl and count == ref["predicted"]
    print("%s %-14s %-20s logits max|diff| %.2e  ppl transformers %.6f reference %.6f rel %.1e" %
          ("ok  " if ok else "FAIL", os.path.basename(os.path.normpath(folder)), type(model).__name__, dl, ppl,
           ref["ppl"], dp))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--tol-logits", type=float, default=1e-4)
    ap.add_argument("--tol-ppl", type=float, default=1e-5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    failed = 0
    for f in a.folders:
        if not os.path.isfile(os.path.join(f, "reference.json")):
            continue
        try:
            failed += not check(f, a.tol_logits, a.tol_ppl)
        except Exception as e:  # a fixture transformers cannot load is what this looks for
            print("FAIL %s does not load in transformers: %s" % (f, str(e).splitlines()[0][:300]))
            failed += 1
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
