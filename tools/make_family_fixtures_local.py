#!/usr/bin/python3
"""The fixtures of tools/make_family_fixtures.py made without transformers (issue 16's fallback).

Same seven families (its FAMILIES table is the spec), same folder layout and file formats; the model is
tools/family_reference.py's independent re-implementation instead of transformers, the reference is
computed in float64 (logits.f32 is its float32 rounding) and reference.json says so in "reference".
config.json, generation_config.json and the safetensors (names, dtypes, llama3's shards and index) are
written as transformers 5 writes them for each config class. When the GPU machine is available,
tools/make_family_fixtures.py's transformers-made fixtures replace these (same formats).

    /usr/bin/python3 tools/make_family_fixtures_local.py --out tests/data/families [--only qwen3] [--steps 150]

Per family: random init (normal 0.02 matrices, zero biases, unit norms - zero for Gemma's (1 + w)),
Adam on the bytes of the repository's docs (batch 8 x 64), then the norms and biases perturbed as the
generator does, stored in the family's dtype and reloaded from disk for every reference number.
"""
import argparse
import json
import os
import struct
import sys
import types

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

# The format of this transformers release is what we write (that of /work/shared's ref-llama-12m).
TRANSFORMERS_FORMAT = "5.17.0"
try:
    import transformers  # noqa: F401
except ImportError:
    # make_family_fixtures imports transformers only to build its table in the style of the version at
    # hand; without it, the table is read in the 5.x style this script writes
    stub = types.ModuleType("transformers")
    stub.__version__ = TRANSFORMERS_FORMAT
    stub.AutoModelForCausalLM = None
    sys.modules["transformers"] = stub

import make_family_fixtures as spec  # noqa: E402
from family_reference import Family, FamilyModel, load  # noqa: E402

GENERATOR = "tools/make_family_fixtures_local.py"
REFERENCE = "tools/family_reference.py (float64, not transformers)"

# Per config class: architecture, model_type, and the defaults of the fields transformers 5 declares
# (and so writes) beyond those every fixture sets (vocab, sizes, heads, positions, special ids).
CLASSES = {
    "LlamaConfig": ("LlamaForCausalLM", "llama", dict(
        hidden_act="silu", initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pretraining_tp=1,
        tie_word_embeddings=False, rope_parameters=None, attention_bias=False, attention_dropout=0.0,
        mlp_bias=False, head_dim=None)),
    "MistralConfig": ("MistralForCausalLM", "mistral", dict(
        head_dim=None, hidden_act="silu", initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
        tie_word_embeddings=False, rope_parameters=None, sliding_window=4096, attention_dropout=0.0)),
    "Qwen2Config": ("Qwen2ForCausalLM", "qwen2", dict(
        hidden_act="silu", initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, tie_word_embeddings=False,
        rope_parameters=None, use_sliding_window=False, sliding_window=4096, max_window_layers=28,
        layer_types=None, attention_dropout=0.0)),
    "Qwen3Config": ("Qwen3ForCausalLM", "qwen3", dict(
        head_dim=128, hidden_act="silu", initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
        tie_word_embeddings=False, rope_parameters=None, attention_bias=False, use_sliding_window=False,
        sliding_window=4096, max_window_layers=28, layer_types=None, attention_dropout=0.0)),
    "Phi3Config": ("Phi3ForCausalLM", "phi3", dict(
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, hidden_act="silu",
        original_max_position_embeddings=4096, initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True,
        tie_word_embeddings=False, rope_parameters=None, sliding_window=None)),
    "Gemma3TextConfig": ("Gemma3ForCausalLM", "gemma3_text", dict(
        head_dim=256, hidden_activation="gelu_pytorch_tanh", initializer_range=0.02, rms_norm_eps=1e-6,
        use_cache=True, tie_word_embeddings=True, rope_parameters=None, attention_bias=False,
        attention_dropout=0.0, query_pre_attn_scalar=256, sliding_window=4096, layer_types=None,
        final_logit_softcapping=None, attn_logit_softcapping=None, use_bidirectional_attention=False)),
}

SAFETENSORS_DTYPES = {"float32": (torch.float32, "F32"), "float16": (torch.float16, "F16"),
                      "bfloat16": (torch.bfloat16, "BF16")}


def transformers5_config(cls_name, kw, dtype):
    """config.json's dict as transformers 5 saves a config of this class built from kw."""
    arch, model_type, defaults = CLASSES[cls_name]
    kw = dict(kw)
    rope_theta = kw.pop("rope_theta", None)
    rope_scaling = kw.pop("rope_scaling", None)
    local_theta = kw.pop("rope_local_base_freq", None)
    unknown = set(kw) - set(defaults) - set(spec.COMMON)
    if unknown:
        raise ValueError("%s: fields this script does not know: %s" % (cls_name, sorted(unknown)))
    c = dict(defaults, **kw)
    if c.get("num_key_value_heads") is None:
        c["num_key_value_heads"] = c["num_attention_heads"]
    if "head_dim" in c and c["head_dim"] is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    if "use_sliding_window" in c:  # Qwen2 / Qwen3
        c["sliding_window"] = c["sliding_window"] if c["use_sliding_window"] else None
        if c["layer_types"] is None:
            c["layer_types"] = ["sliding_attention" if c["sliding_window"] is not None and i >= c["max_window_layers"]
                                else "full_attention" for i in range(c["num_hidden_layers"])]
    if cls_name == "Gemma3TextConfig":
        if c["layer_types"] is None:
            c["layer_types"] = ["sliding_attention" if (i + 1) % 6 else "full_attention"
                                for i in range(c["num_hidden_layers"])]
        c["rope_parameters"] = {
            "full_attention": dict({"rope_type": "default"}, **(rope_scaling or {}),
                                   rope_theta=rope_theta if rope_theta is not None else 1000000.0),
            "sliding_attention": {"rope_type": "default",
                                  "rope_theta": local_theta if local_theta is not None else 10000.0}}
    else:
        rp = dict(rope_scaling or c["rope_parameters"] or {})
        rp.setdefault("rope_theta", rope_theta if rope_theta is not None else 10000.0)
        if cls_name == "Phi3Config":
            rp.setdefault("partial_rotary_factor", 1.0)
        rp.setdefault("rope_type", rp.pop("type", "default"))
        c["rope_parameters"] = rp
    c.update(architectures=[arch], model_type=model_type, dtype=dtype)
    return c


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_safetensors(path, tensors, dtype):
    """tensors: [(name, float tensor)], stored as dtype; data in name order, header padded to 8 bytes."""
    torch_dtype, tag = SAFETENSORS_DTYPES[dtype]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in sorted(tensors, key=lambda nt: nt[0]):
        stored = t.detach().to(torch_dtype).contiguous()
        raw = (stored.numpy().astype("<f4") if tag == "F32" else stored.view(torch.int16).numpy().astype("<i2")).tobytes()
        header[name] = {"dtype": tag, "shape": list(stored.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def save_weights(folder, tensors, dtype, max_shard_bytes=None):
    """model.safetensors, or shards split as huggingface_hub splits a state dict (in module order:
    a tensor over the limit alone, otherwise a new shard when the next tensor would pass it) and the index."""
    if not max_shard_bytes:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
        return
    itemsize = torch.empty(0, dtype=SAFETENSORS_DTYPES[dtype][0]).element_size()
    shards, current, current_bytes, total = [], [], 0, 0
    for name, t in tensors:
        size = t.numel() * itemsize
        total += size
        if size > max_shard_bytes:
            shards.append([(name, t)])
            continue
        if current and current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append((name, t))
        current_bytes += size
    if current:
        shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        file = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        write_safetensors(os.path.join(folder, file), shard, dtype)
        weight_map.update({name: file for name, _ in shard})
    index = {"metadata": {"total_parameters": sum(t.numel() for _, t in tensors), "total_size": total},
             "weight_map": weight_map}
    write_json(os.path.join(folder, "model.safetensors.index.json"), index)


def shard_bytes(text):
    """'4KB' -> 4000, as huggingface_hub reads a size (powers of ten)."""
    units = {"KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9}
    return int(text[:-2]) * units[text[-2:].upper()] if text else None


def initial_weights(cfg):
    fam = Family(cfg)
    weights = {}
    for name, shape, kind in fam.parameter_shapes():
        if kind == "matrix":
            weights[name] = torch.randn(shape) * 0.02
        elif kind == "bias":
            weights[name] = torch.zeros(shape)
        else:  # Gemma's norms multiply by (1 + w): transformers starts them at 0, the others at 1
            weights[name] = torch.zeros(shape) if fam.gemma else torch.ones(shape)
    return weights


def train(model, data, steps, batch=8):
    """Adam on next-byte prediction, then the generator's perturbation of norms and biases."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - spec.WINDOW - 1, (batch,), generator=g)
        x = torch.stack([torch.from_numpy(data[s:s + spec.WINDOW]) for s in starts.tolist()])
        logits = model(x).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    model.eval()
    return float(loss)


def grad_json_local(model, eval_ids):
    """The generator's grad.json of this model, its provenance lines saying what made it."""
    text = spec.grad_json(model, eval_ids)
    text = text.replace('"generator": "tools/make_family_fixtures.py"', '"generator": "%s"' % GENERATOR, 1)
    text = text.replace('"transformers": %s' % json.dumps(spec.transformers.__version__),
                        '"transformers": null,\n  "reference": %s' % json.dumps(REFERENCE), 1)
    json.loads(text)
    return text


def make(name, cls_name, kw, dtype, shard, out, train_data, eval_ids, steps):
    cfg = transformers5_config(cls_name, kw, dtype)
    torch.manual_seed(0)
    model = FamilyModel(cfg, initial_weights(cfg))
    last_loss = train(model, train_data, steps)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), cfg)
    gen = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
           "output_attentions": False, "output_hidden_states": False,
           "use_cache": True}
    if cfg.get("pad_token_id") is not None:
        gen["pad_token_id"] = cfg["pad_token_id"]
    write_json(os.path.join(d, "generation_config.json"), gen)
    save_weights(d, [(n, p) for n, p in model.named_parameters()], dtype, shard_bytes(shard))
    eval_ids.astype("<i4").tofile(os.path.join(d, "eval.i32"))
    eval_ids.astype(np.uint8).tofile(os.path.join(d, "eval.txt"))
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(spec.byte_tokenizer(), f, ensure_ascii=False, indent=1)
    # every number below comes from the files just written, read back in float64
    ref = load(d)
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(spec.N_EVAL // spec.WINDOW):
            x = torch.from_numpy(eval_ids[w * spec.WINDOW:(w + 1) * spec.WINDOW]).reshape(1, -1)
            lg = ref(x).logits[0, :-1]
            nll += float(torch.nn.functional.cross_entropy(lg, x[0, 1:], reduction="sum"))
            count += spec.WINDOW - 1
        prompt = np.concatenate([[256], eval_ids[:spec.PROMPT - 1]]).astype(np.int64)
        logits = ref(torch.from_numpy(prompt).reshape(1, -1)).logits[0].float().numpy()
    logits.astype("<f4").tofile(os.path.join(d, "logits.f32"))
    refj = {"generator": GENERATOR, "family": name, "class": cls_name, "architecture": cfg["architectures"][0],
            "torch": torch.__version__, "transformers": None, "stored_dtype": dtype,
            "compute": "float64 cpu", "reference": REFERENCE,
            "window": spec.WINDOW, "n_tokens": int(spec.N_EVAL), "predicted": count, "nll_sum": nll,
            "ppl": float(np.exp(nll / count)), "prompt_ids": prompt.tolist(), "logits_shape": list(logits.shape)}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(refj, f, indent=1)
        f.write("\n")
    with open(os.path.join(d, "grad.json"), "w") as f:
        f.write(grad_json_local(ref, eval_ids))
    print("%-13s %-18s ppl %8.4f  last train loss %.3f  stored %s" % (name, cfg["architectures"][0], refj["ppl"],
                                                                        last_loss, dtype), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma-separated family names")
    ap.add_argument("--steps", type=int, default=150)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = spec.corpus(os.path.join(TOOLS, ".."))
    # the generator's held-out text: N_EVAL bytes starting and ending on character boundaries
    cut = len(data) - spec.N_EVAL - 1
    while data[cut] >= 0x80 or data[cut + spec.N_EVAL] >= 0x80:
        cut -= 1
    train_data, eval_ids = data[:cut], data[cut:cut + spec.N_EVAL]
    only = [s for s in a.only.split(",") if s]
    for name, (cls_name, kw, dtype, shard) in spec.FAMILIES.items():
        if not only or name in only:
            make(name, cls_name, kw, dtype, shard, a.out, train_data, eval_ids, a.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
