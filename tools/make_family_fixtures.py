#!/usr/bin/env python3
"""Fixtures of the model families pare reads, made by transformers itself (issue 16).

For each family a tiny model is built from a config of that family (AutoModelForCausalLM.from_config,
eager attention), briefly trained on the bytes of the repository's docs so that every term of the
forward moves the perplexity, saved with save_pretrained exactly as transformers saves it, reloaded
from disk and evaluated in strict fp32 on the CPU (TF32 off). Nothing here is run by pare or its CI:
the outputs are committed under tests/data/families/ and this script says how they were made.

    python3 tools/make_family_fixtures.py --out DIR     # needs torch + transformers (the GPU machine)

Per family, DIR/<name>/ holds:
  config.json, model.safetensors (or an index + shards), generation_config.json  - as saved
  eval.txt       held-out text (1,024 bytes, cut at character boundaries)
  eval.i32       its ids (little-endian int32): the bytes of eval.txt
  tokenizer.json a byte-level BPE without merges whose id of each byte is the byte's value (256 and 257
                 are <s> and </s>), so `pare eval`, calibration and compression run on the fixture
  reference.json the protocol (non-overlapping windows of `window` tokens, loss over the window-1
                 shifted targets, ppl = exp(total NLL / predicted)), its NLL sum and perplexity;
                 prompt_ids and the logits shape of logits.f32 (row-major [positions][vocab]);
                 the gradient batch (ids, targets) and its mean loss
  logits.f32     fp32 logits of the prompt
  grad.json      float64 autograd gradients of the batch's mean loss, in pare's names and layout
                 (Phi-3's fused qkv_proj / gate_up_proj split into q, k, v / gate, up), the format of
                 tests/gen_grad_fixture.py
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from gen_grad_fixture import grad_record  # noqa: E402  (the grad_ref fixtures' format, one writer)

V = 272          # 256 byte ids + 16 spare ids (specials)
WINDOW = 64      # evaluation window; every sliding window below is shorter
N_EVAL = 16 * WINDOW
PROMPT = 24
GB, GT = 2, 32   # gradient batch
MAJOR = int(transformers.__version__.split(".")[0])


def rope(theta, scaling=None):
    """RoPE settings in the style this transformers writes (5.x: rope_parameters; 4.x: top level)."""
    if MAJOR >= 5:
        p = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            p.update(scaling)
        return {"rope_parameters": p}
    d = {"rope_theta": theta}
    if scaling:
        d["rope_scaling"] = scaling
    return d


COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, bos_token_id=256, eos_token_id=257,
              pad_token_id=None)

FAMILIES = {
    # Llama-3.x: llama3 frequency scaling (head_dim 16 puts one frequency in the smoothed band), tied
    "llama3": ("LlamaConfig", dict(COMMON, tie_word_embeddings=True, eos_token_id=[257, 258],
                                   **rope(10000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0,
                                                    "original_max_position_embeddings": 32})), "float32", "4KB"),
    # Llama with linear position interpolation, biases on attention and MLP
    "llama-linear": ("LlamaConfig", dict(COMMON, attention_bias=True, mlp_bias=True,
                                         **rope(10000.0, {"rope_type": "linear", "factor": 2.0})), "float16", None),
    "mistral": ("MistralConfig", dict(COMMON, sliding_window=16, tie_word_embeddings=False), "bfloat16", None),
    "qwen2": ("Qwen2Config", dict(COMMON, tie_word_embeddings=True, use_sliding_window=False), "bfloat16", None),
    "qwen3": ("Qwen3Config", dict(COMMON, head_dim=24, tie_word_embeddings=True, use_sliding_window=False,
                                  attention_bias=False), "float32", None),
    "phi3": ("Phi3Config", dict(COMMON, tie_word_embeddings=False, original_max_position_embeddings=128,
                                rope_scaling=None, sliding_window=None, resid_pdrop=0.0, embd_pdrop=0.0,
                                attention_dropout=0.0), "float32", None),
    "gemma3": ("Gemma3TextConfig", dict(COMMON, head_dim=24, query_pre_attn_scalar=20, sliding_window=16,
                                        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                        rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                                        final_logit_softcapping=None, attn_logit_softcapping=None),
               "float32", None),
}


def corpus(root):
    files = sorted(glob.glob(os.path.join(root, "docs", "*.md"))) + [os.path.join(root, "README.md")]
    data = b"".join(open(f, "rb").read() for f in files)
    return np.frombuffer(data, dtype=np.uint8).astype(np.int64)


def bytes_to_unicode():
    """GPT-2's printable stand-in for each byte (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    added = [{"id": 256 + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(["<s>", "</s>"])]
    vocab.update({a["content"]: a["id"] for a in added})
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": []}}


def make_config(cls_name, kw):
    cls = getattr(transformers, cls_name)
    try:
        return cls(**kw)
    except TypeError:
        # keys this version does not take (e.g. rope_parameters on 4.x) fall back to the 4.x form
        kw = dict(kw)
        rp = kw.pop("rope_parameters", None)
        if rp:
            kw["rope_theta"] = rp.pop("rope_theta")
            if rp.get("rope_type", "default") != "default":
                kw["rope_scaling"] = rp
        return cls(**kw)


def train(model, data, device, steps=300):
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - WINDOW - 1, (16,), generator=g)
        x = torch.stack([torch.from_numpy(data[s:s + WINDOW]) for s in starts.tolist()]).to(device)
        out = model(input_ids=x, labels=x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    # make the norms' weights differ from their initial values so a wrong (1 + w) or a missing norm shows
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g).to(p.device))
            elif p.dim() == 1:  # biases
                p.add_(0.02 * torch.randn(p.shape, generator=g).to(p.device))
    model.eval().cpu()


def pare_grads(name_cfg, model):
    cfg = model.config
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    H, KV, Fd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size
    out = []
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().numpy()
        if n.endswith("qkv_proj.weight"):
            base = n[: -len(".weight")]
            cuts = [0, H * hd, H * hd + KV * hd, (H + 2 * KV) * hd]
            for i, part in enumerate("qkv"):
                out.append(("%s.%s.weight" % (base, part), g[cuts[i]:cuts[i + 1]]))
        elif n.endswith("gate_up_proj.weight"):
            base = n[: -len(".weight")]
            out.append((base + ".gate.weight", g[:Fd]))
            out.append((base + ".up.weight", g[Fd:]))
        else:
            out.append((n, g))
    if getattr(cfg, "tie_word_embeddings", False):
        out = [(n, g) for n, g in out if n != "lm_head.weight"]
    return out


def grad_json(model, ids, seed=7):
    model = model.double()
    x = torch.from_numpy(ids[: GB * GT].reshape(GB, GT))
    targets = torch.full((GB, GT), -1, dtype=torch.int64)
    targets[:, :-1] = x[:, 1:]
    targets[1, :8] = -1
    logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(GB * GT, -1), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    head = {"generator": "tools/make_family_fixtures.py", "torch": torch.__version__,
            "transformers": transformers.__version__, "dtype": "float64", "batch": GB, "seq": GT,
            "ids": x.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(), "loss": float(loss.item())}
    return grad_record(head, pare_grads(None, model), seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma-separated family names")
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    data = corpus(root)
    # held-out text of N_EVAL bytes that starts and ends on character boundaries
    cut = len(data) - N_EVAL - 1
    while data[cut] >= 0x80 or data[cut + N_EVAL] >= 0x80:
        cut -= 1
    train_data, eval_ids = data[:cut], data[cut:cut + N_EVAL]
    only = [s for s in a.only.split(",") if s]
    for name, (cls_name, kw, dtype, shard) in FAMILIES.items():
        if only and name not in only:
            continue
        try:
            make_family(name, cls_name, kw, dtype, shard, a, train_data, eval_ids, device)
        except Exception as e:  # one family's failure must not cost the others (the GPU machine's time is counted)
            print("%-13s FAILED: %s" % (name, str(e).splitlines()[0][:300]), flush=True)
    return 0


def make_family(name, cls_name, kw, dtype, shard, a, train_data, eval_ids, device):
    torch.manual_seed(0)
    cfg = make_config(cls_name, kw)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
    train(model, train_data, device, a.steps)
    d = os.path.join(a.out, name)
    os.makedirs(d, exist_ok=True)
    saved = model.to(getattr(torch, dtype))
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    saved.save_pretrained(d, **kwargs)
    # the reference: what transformers computes from the files, fp32 on the CPU
    ref = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32)
    ref.eval()
    eval_ids.astype("<i4").tofile(os.path.join(d, "eval.i32"))
    eval_ids.astype(np.uint8).tofile(os.path.join(d, "eval.txt"))
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(), f, ensure_ascii=False, indent=1)
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(N_EVAL // WINDOW):
            x = torch.from_numpy(eval_ids[w * WINDOW:(w + 1) * WINDOW]).reshape(1, -1)
            lg = ref(input_ids=x).logits[0, :-1].double()
            nll += float(torch.nn.functional.cross_entropy(lg, x[0, 1:], reduction="sum"))
            count += WINDOW - 1
        prompt = np.concatenate([[256], eval_ids[:PROMPT - 1]]).astype(np.int64)
        logits = ref(input_ids=torch.from_numpy(prompt).reshape(1, -1)).logits[0].float().numpy()
    logits.astype("<f4").tofile(os.path.join(d, "logits.f32"))
    refj = {"generator": "tools/make_family_fixtures.py", "family": name, "class": cls_name,
            "architecture": type(ref).__name__, "torch": torch.__version__,
            "transformers": transformers.__version__, "stored_dtype": dtype, "compute": "float32 cpu eager",
            "window": WINDOW, "n_tokens": int(N_EVAL), "predicted": count, "nll_sum": nll,
            "ppl": float(np.exp(nll / count)), "prompt_ids": prompt.tolist(),
            "logits_shape": list(logits.shape)}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(refj, f, indent=1)
        f.write("\n")
    with open(os.path.join(d, "grad.json"), "w") as f:
        f.write(grad_json(ref, eval_ids))
    print("%-13s %-22s ppl %.4f  stored %s" % (name, type(ref).__name__, refj["ppl"], dtype), flush=True)


if __name__ == "__main__":
    sys.exit(main())
