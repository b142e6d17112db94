#!/usr/bin/python3
"""Independent PyTorch references for pare's compression benchmarks (tools/bench.sh, `make bench`).

Benchmark reference only: pare never depends on PyTorch. Run with Debian's interpreter
(/usr/bin/python3, package python3-torch). Weights come from model.safetensors through
bench_torch.load_safetensors (BF16 widened to fp32, as pare computes). Each mode prints one JSON
object; pare's side is build/opt/bench_compress (tools/bench_compress.c) with the same mode names.

  spectra --model M [--pare-values FILE]
      every singular value of every decoder-block matrix with torch.linalg.svdvals in fp32;
      with pare's values (float64, matrices in order) also their largest relative difference over
      the values the fp32 data determines well (s_i >= 1e-3 s_1).
  svd --model M --k K --iters FILE
      torch.svd_lowrank(W, q=l, niter=q) with the l (= k + oversampling) and power iterations pare
      used for each matrix (FILE: "l q" per line, from bench_compress svd) against
      torch.linalg.svd(W, full_matrices=False); max relative error of the top-K values.
  lorap --model M --ids FILE --ratio S
      LoRAP as pare compress --method lorap does it, on the calibration windows pare picked (FILE:
      int32 [128, 256]): block by block, a statistics pass (per-input-channel sums of squares at
      the attention input, the o_proj input, the MLP input and the down-projection input), then
      the block is compressed (activation-weighted SVD of q, k, v, o with LoRAP's rank split,
      LoRAP channel score and slicing of the FFN) and the windows are fed through the compressed
      block to calibrate the next one. With --eval-ids (tools/bench_scale.sh's pipeline stage) the
      compressed model and then the dense one are evaluated on those ids (int32; the first
      --eval-tokens) as bench_torch.py evaluates (windows of --window, --batch at a time, one untimed
      warm-up batch): time, tokens/s and perplexity of each, under "eval".

All timings exclude loading the weights; rounds are repeated and the best is kept (--rounds).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("bench_torch_compress: PyTorch not importable by %s; install it with: "
                     "apt-get install python3-torch\n" % sys.executable)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import evaluate, load_safetensors, load_windows  # noqa: E402

PROJ = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    return cfg, w


def block_mats(cfg, w):
    """(name, weight [out, in]) of every decoder-block linear, in pare_model_linears order."""
    return [("model.layers.%d.%s" % (i, p), w["model.layers.%d.%s.weight" % (i, p)])
            for i in range(cfg["num_hidden_layers"]) for p in PROJ]


# ---------------------------------------------------------------------------------------------
# spectra

def mode_spectra(a):
    cfg, w = load(a.model)
    mats = [m for _, m in block_mats(cfg, w)]
    best, vals = 1e30, None
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        vals = [torch.linalg.svdvals(m) for m in mats]
        best = min(best, time.perf_counter() - t0)
    out = dict(seconds=best, matrices=len(mats), values=sum(v.numel() for v in vals))
    if a.pare_values:
        pv = np.fromfile(a.pare_values, dtype="<f8")
        off, worst, worst_all = 0, 0.0, 0.0
        for v in vals:
            t = v.double().numpy()
            p = pv[off:off + len(t)]
            off += len(t)
            rel = np.abs(p - t) / np.maximum(t, 1e-300)
            sel = t >= 1e-3 * t[0]
            worst = max(worst, float(rel[sel].max()))
            worst_all = max(worst_all, float(np.abs(p - t).max() / t[0]))
        # both against a float64 reference (untimed): which side's values are the closer ones
        ref_p = ref_t = 0.0
        off = 0
        for m, v in zip(mats, vals):
            r = torch.linalg.svdvals(m.double()).numpy()
            p = pv[off:off + len(r)]
            off += len(r)
            sel = r >= 1e-3 * r[0]
            ref_p = max(ref_p, float((np.abs(p - r) / r)[sel].max()))
            ref_t = max(ref_t, float((np.abs(v.double().numpy() - r) / r)[sel].max()))
        out.update(max_rel_diff_vs_pare=worst, max_abs_diff_over_s1_vs_pare=worst_all,
                   values_match=bool(off == len(pv)), pare_rel_err_vs_f64=ref_p, torch_rel_err_vs_f64=ref_t)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# randomized top-k vs full SVD

def mode_svd(a):
    cfg, w = load(a.model)
    mats = [m for _, m in block_mats(cfg, w)]
    iters = [tuple(int(x) for x in line.split()) for line in open(a.iters) if line.strip()]
    if len(iters) != len(mats):
        raise SystemExit("bench_torch_compress: %d iteration lines for %d matrices" % (len(iters), len(mats)))
    K = a.k
    best_r = best_e = 1e30
    rs = ex = None
    for _ in range(a.rounds):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        rs = [torch.svd_lowrank(m, q=l, niter=q) for m, (l, q) in zip(mats, iters)]
        best_r = min(best_r, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ex = [torch.linalg.svd(m, full_matrices=False) for m in mats]
        best_e = min(best_e, time.perf_counter() - t0)
    worst = 0.0
    for (_, s, _), (_, se, _) in zip(rs, ex):
        s, se = s[:K].double(), se[:K].double()
        worst = max(worst, float(((s - se).abs() / se).max()))
    qs = [q for _, q in iters]
    print(json.dumps(dict(k=K, matrices=len(mats), rand_seconds=best_r, exact_seconds=best_e, max_rel_err=worst,
                          q_mean=sum(qs) / len(qs))))


# ---------------------------------------------------------------------------------------------
# LoRAP

def lorap_ranks(shapes, s, a=3.0):
    """pare_allocate_lorap (src/core/allocate.h) for one block: ranks of q, k, v, o (None: dense)."""
    (mq, nq), (mk, nk), (mv, nv), (mo, no) = shapes
    P = dict(q=mq * nq, k=mk * nk, v=mv * nv, o=mo * no)
    c_qk = (mq + nq) + (mk + nk)
    c_vo = (mv + nv) + (mo + no)
    sigma = c_qk + c_vo
    budget = (1.0 - s) * sum(P.values())
    k_att = math.floor(budget / sigma + 1e-9)
    k_vo = math.floor(k_att * sigma * a / ((1.0 + a) * c_vo) + 1e-9)
    k_qk = math.floor(k_att * sigma / ((1.0 + a) * c_qk) + 1e-9)
    if k_vo * c_vo >= P["v"] + P["o"]:
        k_vo = -1
        k_qk = math.floor((budget - (P["v"] + P["o"])) / c_qk + 1e-9)
    if k_qk * c_qk >= P["q"] + P["k"]:
        k_qk = -1
    ranks = {}
    for name, k, (m, n) in (("q", k_qk, shapes[0]), ("k", k_qk, shapes[1]), ("v", k_vo, shapes[2]),
                            ("o", k_vo, shapes[3])):
        if k < 0:
            ranks[name] = None
        elif k < 1:
            ranks[name] = 1
        elif k * (m + n) < m * n:   # saves parameters: factorize; else the matrix stays dense
            ranks[name] = k
        else:
            ranks[name] = None
    return ranks


def act_svd(W, sumsq, k):
    """Activation-weighted SVD (ASVD / LoRAP): W diag(d) = U S V^T, d_j = ||X_j||;
    A = U_k S_k^1/2, B = S_k^1/2 V_k^T diag(d)^-1. Returns A, B and ||W - A B|| / ||W||."""
    d = sumsq.sqrt()
    d = torch.where(d > 0, d, d.max() * 1e-6)
    U, S, Vh = torch.linalg.svd(W * d.float(), full_matrices=False)
    r = S[:k].sqrt()
    A = (U[:, :k] * r).contiguous()
    B = (r[:, None] * Vh[:k] / d.float()).contiguous()
    err = float(torch.linalg.norm(W - A @ B) / torch.linalg.norm(W))
    return A, B, err


def lorap_channels(up, gate, down, x_ss, z_ss, s, keep_least=0.01):
    """LoRAP channel score and selection (src/core/prune.h): the kept channels, in order."""
    xn, zn = x_ss.sqrt(), z_ss.sqrt()
    score = (torch.linalg.norm(up.double().abs() * xn, dim=1) + torch.linalg.norm(gate.double().abs() * xn, dim=1)
             + torch.linalg.norm(down.double(), dim=0) * zn)
    n = score.numel()
    lo, hi = math.floor(keep_least * n + 1e-9), math.floor((keep_least + s) * n + 1e-9)
    # ascending score; of equal scores the higher index ranks lower (is removed first)
    order = sorted(range(n), key=lambda i: (float(score[i]), -i))
    gone = set(order[lo:hi])
    return torch.tensor([i for i in range(n) if i not in gone], dtype=torch.long)


class Block:
    def __init__(self, cfg, w, i, cos, sin, mask):
        p = "model.layers.%d." % i
        self.H, self.KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.ln1, self.ln2 = w[p + "input_layernorm.weight"], w[p + "post_attention_layernorm.weight"]
        self.lin = {n: w[p + "self_attn.%s_proj.weight" % n] for n in "qkvo"}
        self.lin.update(gate=w[p + "mlp.gate_proj.weight"], up=w[p + "mlp.up_proj.weight"],
                        down=w[p + "mlp.down_proj.weight"])
        self.cos, self.sin, self.mask = cos, sin, mask
        self.qkv = self.gu = None

    def fuse(self):
        """For evaluation, as bench_torch.Llama fuses q/k/v and gate/up: one GEMM for the input-side
        matrices of q, k and v (the weight, or B of a factorized x B^T A^T) and one for gate and up."""
        first = [self.lin[n][1] if isinstance(self.lin[n], tuple) else self.lin[n] for n in "qkv"]
        self.qkv = (torch.cat(first, 0).contiguous(), [f.shape[0] for f in first])
        self.gu = torch.cat([self.lin["gate"], self.lin["up"]], 0).contiguous()
        return self

    def linear(self, name, x):
        l = self.lin[name]
        if isinstance(l, tuple):   # factorized: x B^T A^T
            return F.linear(F.linear(x, l[1]), l[0])
        return F.linear(x, l)

    def rms(self, x, wt):
        return wt * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @staticmethod
    def rot_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def forward(self, x, acts=None):
        """x [B, T, C] -> block output; acts (dict) receives the four linear inputs."""
        B, T, _ = x.shape
        H, KV, D = self.H, self.KV, self.D
        h = self.rms(x, self.ln1)
        if self.qkv is None:
            q, k, v = (self.linear(n, h) for n in "qkv")
        else:
            parts = F.linear(h, self.qkv[0]).split(self.qkv[1], -1)
            q, k, v = (F.linear(p, self.lin[n][0]) if isinstance(self.lin[n], tuple) else p
                       for n, p in zip("qkv", parts))
        q = q.reshape(B, T, H, D).transpose(1, 2)
        k = k.reshape(B, T, KV, D).transpose(1, 2)
        v = v.reshape(B, T, KV, D).transpose(1, 2)
        cos, sin = self.cos[:T], self.sin[:T]
        q = q * cos + self.rot_half(q) * sin
        k = k * cos + self.rot_half(k) * sin
        if KV != H:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(D)) + self.mask[:T, :T]
        y = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.linear("o", y)
        h2 = self.rms(x, self.ln2)
        if self.gu is None:
            hm = F.silu(self.linear("gate", h2)) * self.linear("up", h2)
        else:
            gu = F.linear(h2, self.gu)
            f = self.gu.shape[0] // 2
            hm = F.silu(gu[..., :f]) * gu[..., f:]
        if acts is not None:
            acts.update(attn=h, o=y, mlp=h2, down=hm)
        return x + self.linear("down", hm)


class BlockModel:
    """Embedding, the given blocks (dense or compressed), final norm and head: a forward(ids) for
    bench_torch.evaluate."""

    def __init__(self, w, blocks):
        self.emb = w["model.embed_tokens.weight"]
        self.head = w.get("lm_head.weight", self.emb)   # tied when absent
        self.norm = w["model.norm.weight"]
        self.blocks = blocks

    def forward(self, ids):
        x = F.embedding(ids, self.emb)
        for b in self.blocks:
            x = b.forward(x)
        return F.linear(self.blocks[-1].rms(x, self.norm), self.head)


def rope_tables(cfg, T):
    """cos, sin [T, D] (HF default RoPE, rotate-half layout) and the causal mask [T, T]."""
    D = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = cfg.get("rope_theta") or 10000.0
    inv = 1.0 / (float(theta) ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin(), torch.full((T, T), float("-inf")).triu(1)


def eval_models(cfg, w, blocks, a):
    """The compressed blocks, then the dense model, over the first --eval-tokens of --eval-ids."""
    W, B = a.window, max(1, a.batch)
    wins = load_windows(a.eval_ids, a.eval_tokens, W)
    if wins is None:
        raise SystemExit("bench_torch_compress: %s holds fewer than %d ids" % (a.eval_ids, W))
    nwin = wins.shape[0]
    cos, sin, mask = rope_tables(cfg, W)
    out = dict(window=W, batch=B, tokens=nwin * W, windows=nwin)
    with torch.inference_mode():
        for name in ("comp", "dense"):
            if name == "dense":
                blocks = [Block(cfg, w, i, cos, sin, mask) for i in range(cfg["num_hidden_layers"])]
            for b in blocks:
                b.cos, b.sin, b.mask = cos, sin, mask
                b.fuse()
            nll, secs = evaluate(BlockModel(w, blocks), wins, B)
            out.update({name + "_seconds": secs, name + "_tok_s": nwin * W / secs,
                        "ppl_" + name: math.exp(nll / (nwin * (W - 1)))})
            blocks = None   # the compressed model's memory goes before the dense copies are made
    return out


def mode_lorap(a):
    cfg, w = load(a.model)
    ids = torch.from_numpy(np.fromfile(a.ids, dtype="<i4").astype(np.int64))
    S, T = a.samples, a.len
    if ids.numel() < S * T:
        raise SystemExit("bench_torch_compress: %s holds %d ids, not %d x %d" % (a.ids, ids.numel(), S, T))
    ids = ids[:S * T].view(S, T)
    Bt = a.batch
    best, res, blocks = 1e30, None, None
    for _ in range(a.rounds):
        ww = dict(w)   # compression replaces entries of the block dicts, never the loaded tensors
        r, bl = run_lorap(cfg, ww, ids, a.ratio, Bt)
        if r["seconds"] < best:
            best, res, blocks = r["seconds"], r, bl
        bl = None
    if a.eval_ids:
        res["eval"] = eval_models(cfg, w, blocks, a)
    print(json.dumps(res))


def run_lorap(cfg, w, ids, ratio, Bt):
    """(the result, the compressed blocks)"""
    S, T = ids.shape
    cos, sin, mask = rope_tables(cfg, T)
    t_stats = t_fact = t_prune = t_prop = 0.0
    worst, ranks_all, kept_all, blocks = 0.0, [], [], []
    with torch.inference_mode():
        t0 = time.perf_counter()
        hidden = F.embedding(ids, w["model.embed_tokens.weight"])          # [S, T, C]
        for i in range(cfg["num_hidden_layers"]):
            blk = Block(cfg, w, i, cos, sin, mask)
            blocks.append(blk)
            # statistics pass: sums of squares of every input channel, accumulated in float64
            ta = time.perf_counter()
            ss = {}
            for s0 in range(0, S, Bt):
                acts = {}
                blk.forward(hidden[s0:s0 + Bt], acts)
                for site, x in acts.items():
                    v = x.reshape(-1, x.shape[-1]).square().sum(0, dtype=torch.float64)
                    ss[site] = ss[site] + v if site in ss else v
            tb = time.perf_counter()
            # attention: activation-weighted SVD at LoRAP's ranks
            ranks = lorap_ranks([tuple(blk.lin[n].shape) for n in "qkvo"], ratio)
            for n in "qkvo":
                if ranks[n] is not None:
                    A, B, err = act_svd(blk.lin[n], ss["attn" if n in "qkv" else "o"], ranks[n])
                    blk.lin[n] = (A, B)
                    worst = max(worst, err)
                ranks_all.append(ranks[n] if ranks[n] is not None else -1)
            ranks_all += [-1, -1, -1]
            tc = time.perf_counter()
            # FFN: LoRAP channel score, slice gate/up rows and down columns
            keep = lorap_channels(blk.lin["up"], blk.lin["gate"], blk.lin["down"], ss["mlp"], ss["down"], ratio)
            blk.lin["gate"] = blk.lin["gate"][keep].contiguous()
            blk.lin["up"] = blk.lin["up"][keep].contiguous()
            blk.lin["down"] = blk.lin["down"][:, keep].contiguous()
            kept_all.append(keep.tolist())
            td = time.perf_counter()
            # propagation: the windows through the compressed block
            for s0 in range(0, S, Bt):
                hidden[s0:s0 + Bt] = blk.forward(hidden[s0:s0 + Bt])
            te = time.perf_counter()
            t_stats += tb - ta
            t_fact += tc - tb
            t_prune += td - tc
            t_prop += te - td
        secs = time.perf_counter() - t0
    return dict(ratio=ratio, samples=S, len=T, seconds=secs, worst_rel_error=worst,
                split=dict(stats_forward=t_stats, factorize=t_fact, prune=t_prune, propagate=t_prop),
                threads=torch.get_num_threads(), ranks=ranks_all, kept_channels=kept_all), blocks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("spectra", "svd", "lorap"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pare-values", help="spectra: pare's values (float64) to compare with")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--iters", help="svd: 'l q' per matrix, from bench_compress svd")
    ap.add_argument("--ids", help="lorap: calibration windows, int32 [samples, len]")
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="windows per forward, calibration and evaluation")
    ap.add_argument("--eval-ids", help="lorap: also evaluate on these ids (int32), compressed and dense")
    ap.add_argument("--eval-tokens", type=int, default=0, help="only the first N eval ids (0: all)")
    ap.add_argument("--window", type=int, default=256, help="evaluation window")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    {"spectra": mode_spectra, "svd": mode_svd, "lorap": mode_lorap}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
