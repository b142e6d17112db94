#!/usr/bin/python3
"""Independent float64 PyTorch forward of the model families of issue 16, without transformers.

Written from transformers' modeling sources (llama, mistral, qwen2, qwen3, phi3, gemma3 and
modeling_rope_utils / masking_utils) for the machines where transformers is not installed
(Debian's python3-torch and python3-numpy suffice). It reads a Hugging Face folder: config.json as
transformers 4.x writes it (rope_theta, rope_scaling) or as 5.x does (rope_parameters, flat or keyed by
layer type), safetensors F32/F16/BF16, single or sharded with model.safetensors.index.json.

Everything is computed in the parameters' dtype (float64 for a reference) except where transformers
itself rounds to float32 whatever the model's dtype, so that this is transformers' model run in float64:
the RoPE inverse frequencies, angles, cos and sin (computed in float32, then cast), Gemma-3's embedding
scale (a float32 tensor), the RMSNorms (normalized in float32; Gemma's (1 + w) applied in float32) and
the attention softmax (float32).

    family_reference.py MODEL_DIR --ids 1,2,3         # prints the logits' shape and last row's top 5
    family_reference.py MODEL_DIR --check             # compares with the folder's reference logits

--check reads MODEL_DIR/reference.json: a fixture of tests/data/families (prompt_ids, logits_shape,
logits.f32) or a shared reference model (prompt_ids, reference_logits_shape, reference_logits_f32.bin),
prints the largest absolute difference and exits 1 when it exceeds --tol.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import load_safetensors  # noqa: E402  (ours: safetensors with numpy, no package)

SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
             "Phi3ForCausalLM", "Gemma3ForCausalLM")


class Family:
    """What an architecture adds to the LLaMA forward, read from its config the way transformers reads it."""

    def __init__(self, cfg):
        arch = (cfg.get("architectures") or [None])[0]
        if arch not in SUPPORTED:
            raise ValueError("config.json: architectures %r is not one of %s" % (arch, ", ".join(SUPPORTED)))
        self.arch = arch
        self.gemma = arch == "Gemma3ForCausalLM"
        self.fused = arch == "Phi3ForCausalLM"           # qkv_proj and gate_up_proj
        self.qk_norm = arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM")
        self.sandwich = self.gemma                        # post-attention and pre/post feed-forward norms
        self.d = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.F = cfg["intermediate_size"]
        self.L = cfg["num_hidden_layers"]
        self.V = cfg["vocab_size"]
        self.D = cfg.get("head_dim") or self.d // self.H
        default_eps = 1e-5 if self.fused else 1e-6
        self.eps = float(cfg.get("rms_norm_eps", default_eps))
        self.tied = bool(cfg.get("tie_word_embeddings", self.gemma))
        act = cfg.get("hidden_activation") if self.gemma else cfg.get("hidden_act", "silu")
        if act is None:
            act = "gelu_pytorch_tanh"
        if act not in ("silu", "gelu_pytorch_tanh"):
            raise ValueError("config.json: hidden activation %r is not silu or gelu_pytorch_tanh" % act)
        self.act = act
        self.scale = (float(cfg.get("query_pre_attn_scalar", 256)) if self.gemma else float(self.D)) ** -0.5
        self.attn_softcap = cfg.get("attn_logit_softcapping") if self.gemma else None
        self.final_softcap = cfg.get("final_logit_softcapping") if self.gemma else None
        # which linears carry a bias: Qwen2 always on q/k/v, LLaMA-likes by attention_bias / mlp_bias
        self.biased = set()
        if arch == "Qwen2ForCausalLM":
            self.biased |= {"q_proj", "k_proj", "v_proj"}
        elif arch in ("LlamaForCausalLM", "Qwen3ForCausalLM", "Gemma3ForCausalLM"):
            if cfg.get("attention_bias"):
                self.biased |= {"q_proj", "k_proj", "v_proj", "o_proj"}
            if arch == "LlamaForCausalLM" and cfg.get("mlp_bias"):
                self.biased |= {"gate_proj", "up_proj", "down_proj"}
        self.layer_types = self._layer_types(cfg)
        self.window = self._sliding_window(cfg)
        self.rope = {t: rope_parameters(cfg, t, self.gemma) for t in set(self.layer_types)}
        for t, p in self.rope.items():
            if float(p.get("partial_rotary_factor", 1.0)) != 1.0:
                raise ValueError("config.json: partial_rotary_factor %r is not supported" % p["partial_rotary_factor"])

    def _layer_types(self, cfg):
        if cfg.get("layer_types"):
            return list(cfg["layer_types"])
        if self.gemma:  # 4.x: every sliding_window_pattern-th layer is global
            pattern = cfg.get("sliding_window_pattern", 6)
            return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(self.L)]
        if self.arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
            on = cfg.get("use_sliding_window", False) and cfg.get("sliding_window") is not None
            first = cfg.get("max_window_layers", 28)
            return ["sliding_attention" if on and i >= first else "full_attention" for i in range(self.L)]
        # Mistral and Phi-3 slide in every layer when sliding_window is set
        return ["sliding_attention" if cfg.get("sliding_window") is not None else "full_attention"] * self.L

    def _sliding_window(self, cfg):
        if self.arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and not cfg.get("use_sliding_window", False):
            return None
        return cfg.get("sliding_window")

    def parameter_shapes(self):
        """[(transformers name, shape, kind)] in transformers' module order; kind: matrix, bias, norm."""
        d, D, H, KV, Fd = self.d, self.D, self.H, self.KV, self.F
        out = [("model.embed_tokens.weight", (self.V, d), "matrix")]

        def linear(prefix, name, rows, cols):
            out.append(("%s.%s.weight" % (prefix, name), (rows, cols), "matrix"))
            if name in self.biased:
                out.append(("%s.%s.bias" % (prefix, name), (rows,), "bias"))

        for i in range(self.L):
            p = "model.layers.%d" % i
            if self.fused:
                linear(p + ".self_attn", "o_proj", d, H * D)
                linear(p + ".self_attn", "qkv_proj", (H + 2 * KV) * D, d)
            else:
                linear(p + ".self_attn", "q_proj", H * D, d)
                linear(p + ".self_attn", "k_proj", KV * D, d)
                linear(p + ".self_attn", "v_proj", KV * D, d)
                linear(p + ".self_attn", "o_proj", d, H * D)
            if self.qk_norm:
                out += [(p + ".self_attn.q_norm.weight", (D,), "norm"), (p + ".self_attn.k_norm.weight", (D,), "norm")]
            if self.fused:
                linear(p + ".mlp", "gate_up_proj", 2 * Fd, d)
            else:
                linear(p + ".mlp", "gate_proj", Fd, d)
                linear(p + ".mlp", "up_proj", Fd, d)
            linear(p + ".mlp", "down_proj", d, Fd)
            norms = ["input_layernorm", "post_attention_layernorm"]
            if self.sandwich:
                norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
            out += [("%s.%s.weight" % (p, n), (d,), "norm") for n in norms]
        out.append(("model.norm.weight", (d,), "norm"))
        if not self.tied:
            out.append(("lm_head.weight", (self.V, d), "matrix"))
        return out


def rope_parameters(cfg, layer_type, gemma):
    """The RoPE settings of one layer type as a dict with rope_type and rope_theta, from 4.x or 5.x keys."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and rp:
        if layer_type in rp and isinstance(rp[layer_type], dict):
            p = dict(rp[layer_type])
        elif gemma and layer_type == "sliding_attention" and "sliding_attention" not in rp:
            p = {"rope_type": "default", "rope_theta": cfg.get("rope_local_base_freq", 10000.0)}
        else:
            p = dict(rp)
    elif gemma and layer_type == "sliding_attention":
        # 4.x Gemma-3: local layers use rope_local_base_freq without scaling
        p = {"rope_type": "default", "rope_theta": cfg.get("rope_local_base_freq", 10000.0)}
    else:
        p = dict(cfg.get("rope_scaling") or {})
        p["rope_theta"] = cfg.get("rope_theta", 1000000.0 if gemma else 10000.0)
    p["rope_type"] = p.get("rope_type", p.get("type", "default"))
    if "rope_theta" not in p:
        p["rope_theta"] = cfg.get("rope_theta", 10000.0)
    return p


def inverse_frequencies(p, head_dim):
    """float32 inverse frequencies [head_dim/2], as transformers computes them (in float32, whatever the model)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim
    inv = 1.0 / (float(p["rope_theta"]) ** exponents)
    kind = p["rope_type"]
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / float(p["factor"])
    if kind == "llama3":
        factor, low, high = float(p["factor"]), float(p["low_freq_factor"]), float(p["high_freq_factor"])
        old_len = float(p["original_max_position_embeddings"])
        wavelength = 2 * math.pi / inv
        # long wavelengths are slowed by factor, short ones kept, the band between interpolated
        scaled = torch.where(wavelength > old_len / low, inv / factor, inv)
        smooth = (old_len / wavelength - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        in_band = ~(wavelength < old_len / high) * ~(wavelength > old_len / low)
        return torch.where(in_band, blended, scaled)
    raise ValueError("config.json: rope_type %r is not supported (default, linear, llama3)" % kind)


def rope_tables(inv_freq, positions, dtype):
    """cos, sin [T, head_dim] in float32 (transformers disables autocast and forces float32), then cast."""
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], -1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


def attention_mask(T, window, dtype):
    """Additive mask [T, T]: causal, and within the last `window` keys when sliding (kv > q - window)."""
    q = torch.arange(T)[:, None]
    kv = torch.arange(T)[None, :]
    allowed = kv <= q
    if window is not None:
        allowed = allowed & (kv > q - window)
    return torch.zeros(T, T, dtype=dtype).masked_fill(~allowed, float("-inf"))


class _Output:
    def __init__(self, logits):
        self.logits = logits


class FamilyModel(nn.Module):
    """The causal LM of a supported family; parameters carry transformers' names (model.layers.0...)."""

    def __init__(self, cfg, weights):
        super().__init__()
        self.family = fam = Family(cfg)
        # what tools/make_family_fixtures.py's pare_grads reads from a transformers config
        self.config = argparse.Namespace(head_dim=fam.D, hidden_size=fam.d, num_attention_heads=fam.H,
                                         num_key_value_heads=fam.KV, intermediate_size=fam.F,
                                         tie_word_embeddings=fam.tied)
        for name, shape, _ in fam.parameter_shapes():
            if name not in weights:
                raise ValueError("weights: %s is missing" % name)
            if tuple(weights[name].shape) != tuple(shape):
                raise ValueError("weights: %s has shape %s, the config implies %s"
                                 % (name, list(weights[name].shape), list(shape)))
            self._attach(name, nn.Parameter(weights[name].clone()))

    def _attach(self, dotted, param):
        module = self
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(parts[-1], param)

    def p(self, name):
        return self.get_parameter(name)

    def _norm(self, x, name):
        """RMSNorm over the last dim. transformers normalizes in float32 whatever the model's dtype;
        LLaMA-likes multiply by w after casting back, Gemma multiplies by (1 + w) in float32 first."""
        w = self.p(name)
        x32 = x.to(torch.float32)
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.family.eps)
        if self.family.gemma:
            return (normed * (1.0 + w.to(torch.float32))).to(x.dtype)
        return w * normed.to(x.dtype)

    def _linear(self, x, prefix):
        bias = prefix + ".bias"
        return F.linear(x, self.p(prefix + ".weight"), self.p(bias) if self._has(bias) else None)

    def _has(self, name):
        try:
            self.get_parameter(name)
            return True
        except AttributeError:
            return False

    def forward(self, input_ids):
        fam = self.family
        B, T = input_ids.shape
        H, KV, D = fam.H, fam.KV, fam.D
        embed = self.p("model.embed_tokens.weight")
        dtype = embed.dtype
        x = F.embedding(input_ids, embed)                                # [B, T, d]
        if fam.gemma:
            x = x * torch.tensor(fam.d ** 0.5, dtype=torch.float32).to(dtype)
        positions = torch.arange(T)
        tables = {t: rope_tables(inverse_frequencies(p, D), positions, dtype) for t, p in fam.rope.items()}
        masks = {t: attention_mask(T, fam.window if t == "sliding_attention" else None, dtype)
                 for t in set(fam.layer_types)}
        for i in range(fam.L):
            pre = "model.layers.%d." % i
            kind = fam.layer_types[i]
            h = self._norm(x, pre + "input_layernorm.weight")
            if fam.fused:
                qkv = self._linear(h, pre + "self_attn.qkv_proj")          # [B, T, (H + 2 KV) D]
                q, k, v = qkv.split([H * D, KV * D, KV * D], -1)
            else:
                q = self._linear(h, pre + "self_attn.q_proj")
                k = self._linear(h, pre + "self_attn.k_proj")
                v = self._linear(h, pre + "self_attn.v_proj")
            q = q.view(B, T, H, D)
            k = k.view(B, T, KV, D)
            v = v.view(B, T, KV, D).transpose(1, 2)                       # [B, KV, T, D]
            if fam.qk_norm:  # per head, over D, before RoPE
                q = self._norm(q, pre + "self_attn.q_norm.weight")
                k = self._norm(k, pre + "self_attn.k_norm.weight")
            q, k = q.transpose(1, 2), k.transpose(1, 2)                    # [B, H|KV, T, D]
            cos, sin = tables[kind]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if KV != H:  # query head j reads key/value head j // (H / KV)
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            scores = torch.matmul(q, k.transpose(2, 3)) * fam.scale         # [B, H, T, T]
            if fam.attn_softcap is not None:
                scores = torch.tanh(scores / fam.attn_softcap) * fam.attn_softcap
            # transformers' eager attention takes the softmax in float32 and casts back
            weights = torch.softmax(scores + masks[kind], -1, dtype=torch.float32).to(scores.dtype)
            a = torch.matmul(weights, v).transpose(1, 2).reshape(B, T, H * D)
            a = self._linear(a, pre + "self_attn.o_proj")
            if fam.sandwich:
                a = self._norm(a, pre + "post_attention_layernorm.weight")
                x = x + a
                h = self._norm(x, pre + "pre_feedforward_layernorm.weight")
            else:
                x = x + a
                h = self._norm(x, pre + "post_attention_layernorm.weight")
            if fam.fused:
                gate, up = self._linear(h, pre + "mlp.gate_up_proj").chunk(2, -1)
            else:
                gate = self._linear(h, pre + "mlp.gate_proj")
                up = self._linear(h, pre + "mlp.up_proj")
            act = F.silu(gate) if fam.act == "silu" else F.gelu(gate, approximate="tanh")
            f = self._linear(act * up, pre + "mlp.down_proj")
            if fam.sandwich:
                f = self._norm(f, pre + "post_feedforward_layernorm.weight")
            x = x + f
        x = self._norm(x, "model.norm.weight")
        head = embed if fam.tied else self.p("lm_head.weight")
        logits = F.linear(x, head)                                          # [B, T, V]
        if fam.final_softcap is not None:
            logits = torch.tanh(logits / fam.final_softcap) * fam.final_softcap
        return _Output(logits)


def load_weights(folder):
    """{name: float32 tensor} from model.safetensors or the shards an index names."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        weights = {}
        for shard in shards:
            weights.update(load_safetensors(os.path.join(folder, shard)))
        return weights
    return load_safetensors(os.path.join(folder, "model.safetensors"))


def load(folder, dtype=torch.float64):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    weights = {k: v.to(dtype) for k, v in load_weights(folder).items()}
    model = FamilyModel(cfg, weights)
    model.eval()
    return model


def logits_of(model, ids):
    """[len(ids), V] logits of one sequence."""
    with torch.no_grad():
        return model(torch.tensor(ids, dtype=torch.int64).reshape(1, -1)).logits[0]


def check(folder, tol):
    with open(os.path.join(folder, "reference.json")) as f:
        ref = json.load(f)
    if "logits_shape" in ref:
        shape, path = ref["logits_shape"], os.path.join(folder, "logits.f32")
    else:
        shape, path = ref["reference_logits_shape"], os.path.join(folder, "reference_logits_f32.bin")
    expected = np.fromfile(path, dtype="<f4").reshape(shape)
    got = logits_of(load(folder), ref["prompt_ids"]).numpy()
    diff = float(np.max(np.abs(got - expected)))
    print("%s: %s logits %s, max |diff| %.3g (tolerance %g)" % (folder, Family(load_config(folder)).arch,
                                                                  list(shape), diff, tol))
    return 0 if diff <= tol else 1


def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ids", help="comma-separated token ids")
    ap.add_argument("--check", action="store_true", help="compare with the folder's reference logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    if a.check:
        return check(a.model_dir, a.tol)
    if not a.ids:
        ap.error("give --ids or --check")
    logits = logits_of(load(a.model_dir), [int(t) for t in a.ids.split(",")])
    top = torch.topk(logits[-1], 5)
    print(json.dumps({"shape": list(logits.shape), "top5_ids": top.indices.tolist(),
                      "top5_logits": top.values.tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
