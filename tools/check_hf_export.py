#!/usr/bin/env python3
"""Checks that an hf-dense export loads in Hugging Face transformers and scores a text as pare does.

Usage: check_hf_export.py MODEL_DIR TEXT PARE_EVAL_JSON
Protocol (pare eval's default): the whole file tokenized with no special tokens, non-overlapping
windows of `window` tokens, no BOS, a window's first token unscored, the trailing partial window
dropped. Prints both perplexities and their relative difference; exits 1 beyond 1e-3.
Needs torch and transformers (the GPU machine has them); pare itself never does.
"""
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(model_dir, text_path, pare_json):
    ref = json.load(open(pare_json))
    window = ref["window"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
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
    return 0 if rel <= 1e-3 and count == ref["predicted"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
