#!/usr/bin/env python3
"""Checks that an hf-dense export loads in Hugging Face transformers and scores a text as pare does.

Usage: check_hf_export.py MODEL_DIR TEXT PARE_EVAL_JSON [MODEL_DIR TEXT PARE_EVAL_JSON ...]
(one call checks many exports: the GPU machine's time is counted). Protocol (pare eval's default): the whole file tokenized with no special tokens, non-overlapping
windows of `window` tokens, no BOS, a window's first token unscored, the trailing partial window
dropped. Prints both perplexities and their relative difference for each export; exits 1 when any
differs by more than --tol (default 1e-4: both compute in fp32) or does not load.
Needs torch and transformers (the GPU machine has them); pare itself never does.
"""
import argparse
import json
import math
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast


def load_tokenizer(model_dir):
    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception:  # a family's tokenizer class may want files a bare tokenizer.json folder lacks
        return PreTrainedTokenizerFast(tokenizer_file=model_dir + "/tokenizer.json")


def check(model_dir, text_path, pare_json, tol):
    ref = json.load(open(pare_json))
    window = ref["window"]
    # TEXT may be the token ids themselves (little-endian int32, FILE.i32): no tokenizer needed
    tok = None if text_path.endswith(".i32") else load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    if tok is None:
        ids = np.fromfile(text_path, dtype="<i4").tolist()
    else:
        text = open(text_path, encoding="utf-8").read()
        ids = tok(text, add_special_tokens=False)["input_ids"]
    n_win = len(ids) // window
    batch = torch.tensor(ids[: n_win * window]).view(n_win, window)
    nll, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, n_win, 16):
            x = batch[i : i + 16]
            logits = model(x).logits.double()
            lp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll -= lp.gather(-1, x[:, 1:, None]).sum().item()
            count += x.shape[0] * (window - 1)
    ppl = math.exp(nll / count)
    rel = abs(ppl - ref["ppl"]) / ref["ppl"]
    print(f"{model_dir}: config {type(model).__name__}, intermediate "
          f"{getattr(model.config, 'intermediate_size', None) or getattr(model.config, 'n_inner', None)}; "
          f"tokens {len(ids)} (pare {ref['tokens']}), predicted {count} (pare {ref['predicted']}); "
          f"ppl transformers {ppl:.6f}, pare {ref['ppl']:.6f}, rel diff {rel:.2e}")
    return rel <= tol and count == ref["predicted"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("triples", nargs="+", help="MODEL_DIR TEXT PARE_EVAL_JSON, repeated")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    if len(a.triples) % 3:
        ap.error("arguments come in triples: MODEL_DIR TEXT PARE_EVAL_JSON")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failed = 0
    for i in range(0, len(a.triples), 3):
        try:
            ok = check(*a.triples[i:i + 3], a.tol)
        except Exception as e:  # an export transformers cannot load is what this tool looks for
            print(f"{a.triples[i]}: does not load in transformers: {str(e).splitlines()[0][:300]}")
            ok = False
        failed += not ok
        print(("ok" if ok else "FAIL") + f" {a.triples[i]}")
    print(f"{len(a.triples) // 3} exports, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
