#!/usr/bin/python3
"""Independent PyTorch reference forward pass for pare's benchmark (tools/bench.sh).

Benchmark reference only: pare never depends on PyTorch. Run with Debian's interpreter
(/usr/bin/python3, package python3-torch); no safetensors/transformers package is needed.

Evaluates a LLaMA (LlamaForCausalLM) or GPT-2 (GPT2LMHeadModel) Hugging Face model folder on
pre-tokenized ids (little-endian int32 file), with the perplexity protocol of shared/README.md:
non-overlapping windows of --window tokens (a trailing partial window is dropped), no BOS, loss over
the window-1 shifted targets of each window, NLL summed in float64, ppl = exp(nll / predicted).
B windows go through the forward together. One warm-up batch is run before timing.

Prints one JSON object: tokens, windows, predicted, ppl, seconds, tokens_per_second,
flop_per_token, peak_rss_bytes, threads, batch, model.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("bench_torch: PyTorch not importable by %s; install it with: "
                     "apt-get install python3-torch\n" % sys.executable)
    sys.exit(3)


# ---------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data.

def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = blob[base + start:base + end]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("unsupported dtype %s for %s" % (dt, name))
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


# ---------------------------------------------------------------------------------------------
# LLaMA

class Llama:
    def __init__(self, cfg, w, window):
        self.L = cfg["num_hidden_layers"]
        self.d = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or self.d // self.H
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        theta = cfg.get("rope_theta")
        if theta is None:
            theta = (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        self.emb = w["model.embed_tokens.weight"]
        self.head = w.get("lm_head.weight", self.emb)   # tied when absent
        self.norm = w["model.norm.weight"]
        self.layers = []
        for i in range(self.L):
            p = "model.layers.%d." % i
            self.layers.append(dict(
                ln1=w[p + "input_layernorm.weight"],
                ln2=w[p + "post_attention_layernorm.weight"],
                # q, k, v fused into one GEMM (a standard, neutral optimisation)
                qkv=torch.cat([w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"],
                               w[p + "self_attn.v_proj.weight"]], 0).contiguous(),
                o=w[p + "self_attn.o_proj.weight"],
                gu=torch.cat([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]], 0).contiguous(),
                down=w[p + "mlp.down_proj.weight"],
                ffn=w[p + "mlp.gate_proj.weight"].shape[0],
            ))
        # HF default RoPE, rotate-half layout: inv_freq over even dims, cos/sin duplicated halves.
        inv = 1.0 / (float(theta) ** (torch.arange(0, self.D, 2, dtype=torch.float32) / self.D))
        ang = torch.outer(torch.arange(window, dtype=torch.float32), inv)
        ang = torch.cat([ang, ang], -1)
        self.cos, self.sin = ang.cos(), ang.sin()
        self.mask = torch.full((window, window), float("-inf")).triu(1)
        linear = sum(l["qkv"].numel() + l["o"].numel() + l["gu"].numel() + l["down"].numel()
                     for l in self.layers) + self.head.numel()
        # FLOPs/token: 2 per weight of every linear (incl. lm_head) + per layer QK^T and PV over the
        # full window as computed here (masked entries still multiplied): 2 * 2 * T * H * D.
        self.flop_per_token = 2 * linear + self.L * 4 * window * self.H * self.D

    def rms(self, x, wt):
        var = x.pow(2).mean(-1, keepdim=True)
        return wt * (x * torch.rsqrt(var + self.eps))

    @staticmethod
    def rot_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def forward(self, ids):
        B, T = ids.shape
        H, KV, D = self.H, self.KV, self.D
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        x = F.embedding(ids, self.emb)
        for l in self.layers:
            h = self.rms(x, l["ln1"])
            qkv = F.linear(h, l["qkv"])
            q = qkv[..., :H * D].view(B, T, H, D).transpose(1, 2)
            k = qkv[..., H * D:(H + KV) * D].view(B, T, KV, D).transpose(1, 2)
            v = qkv[..., (H + KV) * D:].view(B, T, KV, D).transpose(1, 2)
            q = q * cos + self.rot_half(q) * sin
            k = k * cos + self.rot_half(k) * sin
            if KV != H:   # GQA: query head i uses kv head i // (H / KV)
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(D)) + mask
            a = torch.matmul(torch.softmax(s, -1), v)
            x = x + F.linear(a.transpose(1, 2).reshape(B, T, H * D), l["o"])
            h = self.rms(x, l["ln2"])
            gu = F.linear(h, l["gu"])
            f = l["ffn"]
            x = x + F.linear(F.silu(gu[..., :f]) * gu[..., f:], l["down"])
        return F.linear(self.rms(x, self.norm), self.head)


# ---------------------------------------------------------------------------------------------
# GPT-2

class GPT2:
    def __init__(self, cfg, w, window):
        w = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in w.items()}
        self.L = cfg["n_layer"]
        self.d = cfg["n_embd"]
        self.H = cfg["n_head"]
        self.D = self.d // self.H
        self.eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        act = cfg.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError("unsupported GPT-2 activation %s" % act)
        self.wte, self.wpe = w["wte.weight"], w["wpe.weight"]
        self.head = w.get("lm_head.weight", self.wte)
        self.lnf = (w["ln_f.weight"], w["ln_f.bias"])
        self.layers = []
        for i in range(self.L):
            p = "h.%d." % i
            # Conv1D stores [in, out]; transpose once to nn.Linear's [out, in].
            self.layers.append(dict(
                ln1=(w[p + "ln_1.weight"], w[p + "ln_1.bias"]),
                ln2=(w[p + "ln_2.weight"], w[p + "ln_2.bias"]),
                attn=(w[p + "attn.c_attn.weight"].t().contiguous(), w[p + "attn.c_attn.bias"]),
                proj=(w[p + "attn.c_proj.weight"].t().contiguous(), w[p + "attn.c_proj.bias"]),
                fc=(w[p + "mlp.c_fc.weight"].t().contiguous(), w[p + "mlp.c_fc.bias"]),
                mproj=(w[p + "mlp.c_proj.weight"].t().contiguous(), w[p + "mlp.c_proj.bias"]),
            ))
        self.mask = torch.full((window, window), float("-inf")).triu(1)
        linear = sum(l[n][0].numel() for l in self.layers for n in ("attn", "proj", "fc", "mproj")) \
            + self.head.numel()
        # Same formula as Llama.flop_per_token.
        self.flop_per_token = 2 * linear + self.L * 4 * window * self.H * self.D

    def ln(self, x, p):
        return F.layer_norm(x, (self.d,), p[0], p[1], self.eps)

    def forward(self, ids):
        B, T = ids.shape
        H, D = self.H, self.D
        x = F.embedding(ids, self.wte) + self.wpe[:T]
        mask = self.mask[:T, :T]
        for l in self.layers:
            qkv = F.linear(self.ln(x, l["ln1"]), *l["attn"])
            q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in qkv.split(self.d, -1))
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(D)) + mask
            a = torch.matmul(torch.softmax(s, -1), v)
            x = x + F.linear(a.transpose(1, 2).reshape(B, T, self.d), *l["proj"])
            hdn = F.gelu(F.linear(self.ln(x, l["ln2"]), *l["fc"]), approximate="tanh")
            x = x + F.linear(hdn, *l["mproj"])
        return F.linear(self.ln(x, self.lnf), self.head)


# ---------------------------------------------------------------------------------------------

def build(model_dir, window):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    arch = (cfg.get("architectures") or [""])[0]
    mt = cfg.get("model_type", "")
    if arch == "LlamaForCausalLM" or mt == "llama":
        return Llama(cfg, w, window)
    if arch == "GPT2LMHeadModel" or mt == "gpt2":
        return GPT2(cfg, w, window)
    raise ValueError("unsupported architecture %r" % (arch or mt))


def batch_nll(model, ids):
    """Sum (float64) of the NLL of the T-1 shifted targets of each window in ids [B, T]."""
    logits = model.forward(ids)
    logp = torch.log_softmax(logits[:, :-1, :], -1)
    tgt = ids[:, 1:].unsqueeze(-1)
    return -logp.gather(-1, tgt).to(torch.float64).sum().item()


def load_windows(path, limit, W):
    """The first limit (0: all) int32 ids of path cut into whole windows of W: int64 [nwin, W], or None
    when not even one window fits."""
    ids = np.fromfile(path, dtype="<i4")
    if limit > 0:
        ids = ids[:limit]
    nwin = len(ids) // W
    if nwin == 0:
        return None
    return torch.from_numpy(ids[:nwin * W].astype(np.int64).reshape(nwin, W))


def evaluate(model, wins, B):
    """(summed NLL, seconds) over the windows wins [n, T], B at a time, after an untimed warm-up batch."""
    batch_nll(model, wins[:B])
    nll = 0.0
    t0 = time.perf_counter()
    for s in range(0, wins.shape[0], B):
        nll += batch_nll(model, wins[s:s + B])
    return nll, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--ids", required=True, help="token ids, little-endian int32")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit-tokens", type=int, default=0, help="use only the first N ids (0: all)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    W, B = a.window, max(1, a.batch)
    wins = load_windows(a.ids, a.limit_tokens, W)
    if wins is None:
        sys.stderr.write("bench_torch: fewer than %d tokens\n" % W)
        return 2
    nwin = wins.shape[0]

    with torch.inference_mode():
        model = build(a.model, W)
        nll, secs = evaluate(model, wins, B)

    predicted = nwin * (W - 1)
    print(json.dumps(dict(
        model=os.path.basename(os.path.normpath(a.model)),
        tokens=nwin * W, windows=nwin, predicted=predicted,
        ppl=math.exp(nll / predicted), seconds=secs, tokens_per_second=nwin * W / secs,
        flop_per_token=model.flop_per_token,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        threads=a.threads, batch=B, torch=torch.__version__)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
