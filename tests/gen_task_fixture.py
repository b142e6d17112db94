#!/usr/bin/python3
"""Independent PyTorch reference for pare's zero-shot task scoring (tests/test_tasks.c, make bench).

Two modes:

  fixture (default): writes tests/data/zeroshot_ref_llama_12m.json, the per-choice log-likelihoods of
      the first --items items of PIQA, ARC-Easy, BoolQ and HellaSwag on ref-llama-12m. Everything but
      tokenization is implemented here, independently of pare's C code: the readers of the published
      files, the lm-evaluation-harness prompt templates, its _encode_pair and left truncation, and the
      model (tools/bench_torch.py, pare's benchmark reference forward, imported, not copied).
          /usr/bin/python3 tests/gen_task_fixture.py            # from the repository root, after `make`

  --bench: times the scoring of pare's own requests (`pare eval --task ... --dump-requests FILE`: every
      choice's input and continuation ids) with the same batching pare uses: inputs sorted longest
      first, right padding, about --batch-tokens tokens per forward, the LM
      head applied only to the rows that predict continuation tokens, and a
      request whose input is a prefix of another's read from that one's row. Prints one JSON object with
      items/s, acc, acc_norm and the largest |ll_torch - ll_pare|.

Token ids. Python here has no Hugging Face `tokenizers`; the ids come from pare's own tokenizer through
`./pare tokenize`, one call per string. That is acceptable for a reference because pare's tokenizer is
verified separately against the ids the Hugging Face library produces for every evaluation text
(tests/test_tokenizer.c with shared/models/*/reference_ids); what this script checks is everything after
tokenization. Context and context+continuation are tokenized as whole strings, as the harness does.

HellaSwag is published here in the 6-lines-per-item text form (activity_label + ": " + ctx, label, 4
endings), which has lost the ctx_a / ctx_b boundary the harness capitalizes at. The same rule as
docs/formats.md states is applied: when the context does not end with . ! or ?, the first letter of its
final fragment (after the last ". ", "! " or "? ") is upper-cased.

PyTorch is a test-data generator and benchmark reference only, never a dependency of pare.
"""
import argparse
import bz2
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("gen_task_fixture: PyTorch not importable by %s; apt-get install python3-torch\n" % sys.executable)
    sys.exit(3)
import bench_torch  # noqa: E402  (tools/bench_torch.py: the reference forward pass)


# ---------------------------------------------------------------------------------------------
# task files, as published, with the harness templates: (context, [choice texts], gold)

def read_piqa(folder):
    docs = [json.loads(l) for l in open(os.path.join(folder, "valid.jsonl"), encoding="utf-8") if l.strip()]
    labels = [int(l) for l in open(os.path.join(folder, "valid-labels.lst")) if l.strip()]
    assert len(docs) == len(labels)
    return [("Question: %s\nAnswer:" % d["goal"], [d["sol1"], d["sol2"]], g) for d, g in zip(docs, labels)]


def read_arc(path):
    out = []
    for l in open(path, encoding="utf-8"):
        if not l.strip():
            continue
        d = json.loads(l)
        q = d["question"]
        labels = [c["label"] for c in q["choices"]]
        out.append(("Question: %s\nAnswer:" % q["stem"], [c["text"] for c in q["choices"]], labels.index(d["answerKey"])))
    return out


def read_boolq(path):
    out = []
    for l in open(path, encoding="utf-8"):
        if not l.strip():
            continue
        d = json.loads(l)
        lab = d.get("label", d.get("answer"))
        gold = int(lab in (True, "true", 1))
        out.append(("%s\nQuestion: %s?\nAnswer:" % (d["passage"], d["question"]), ["no", "yes"], gold))
    return out


def hs_preprocess(text):
    """lm-evaluation-harness tasks/hellaswag/utils.py preprocess()"""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hs_capitalize(ctx):
    s = ctx.rstrip()
    if not s or s[-1] in ".!?":
        return ctx
    body_at = ctx.find(": ")
    body_at = body_at + 2 if body_at >= 0 else 0
    cut = max(ctx.rfind(". ", body_at), ctx.rfind("! ", body_at), ctx.rfind("? ", body_at))
    if cut < 0:
        return ctx
    k = cut + 2
    if k < len(ctx) and "a" <= ctx[k] <= "z":
        return ctx[:k] + ctx[k].upper() + ctx[k + 1:]
    return ctx


def read_hellaswag(path):
    with bz2.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(lines) % 6 == 0
    out = []
    for i in range(0, len(lines), 6):
        ctx = hs_preprocess(hs_capitalize(lines[i]))
        out.append((ctx, [hs_preprocess(e) for e in lines[i + 2:i + 6]], int(lines[i + 1])))
    return out


TASKS = {
    "piqa": ("data/tasks/piqa", read_piqa),
    "arc-easy": ("data/tasks/arc-easy/ARC-Easy-Test.jsonl", read_arc),
    "boolq": ("data/tasks/boolq/val.jsonl", read_boolq),
    "hellaswag": ("data/tasks/hellaswag/hellaswag_val_full.txt.bz2", read_hellaswag),
}


# ---------------------------------------------------------------------------------------------
# tokenization (pare tokenize, see the header) and the harness's request construction

class PareTokenizer:
    def __init__(self, pare, model):
        self.pare, self.model, self.cache = pare, model, {}

    def __call__(self, text):
        if text not in self.cache:
            out = subprocess.run([self.pare, "tokenize", "--model", self.model, "--text", text], check=True,
                                 stdout=subprocess.PIPE).stdout.decode("utf-8")
            self.cache[text] = [int(l.split("\t", 1)[0]) for l in out.split("\n") if l]
        return self.cache[text]


def encode_pair(tok, context, continuation):
    """lm-evaluation-harness _encode_pair: trailing spaces of the context move to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation)
    ctx = tok(context)
    return ctx, whole[len(ctx):]


def make_request(ctx, cont, max_len):
    """The harness's model input: (ctx + cont)[-(max_len + 1):][:-1]; the last len(cont) logits score cont."""
    seq = ctx + cont
    inp = seq[-(max_len + 1):][:-1]
    assert 0 < len(cont) <= len(inp)
    return inp, cont


# ---------------------------------------------------------------------------------------------
# scoring

def score(model, requests, batch_tokens):
    """requests: list of (inp, cont). Returns the log-likelihood (float64 sum of fp32 log-softmax values) of
    each, batching as pare does (see the header). The model's head is swapped for the identity so that
    bench_torch's forward returns the final-norm hidden states; the real head is applied to the rows that
    predict continuation tokens only."""
    head = model.head
    model.head = torch.eye(head.shape[1], dtype=head.dtype)
    try:
        # a request whose input is a prefix of another's is read from that row (lexicographic order puts
        # a prefix right before an extension of it); rows then go longest first
        order = sorted(range(len(requests)), key=lambda i: (requests[i][0], i))
        rows, chain = [], []   # row: [inp, [request indices], first needed position]
        for k, i in enumerate(order):
            chain.append(i)
            nxt = requests[order[k + 1]][0] if k + 1 < len(order) else None
            inp = requests[i][0]
            if nxt is not None and nxt[:len(inp)] == inp:
                continue
            rows.append([inp, chain, min(len(requests[c][0]) - len(requests[c][1]) for c in chain)])
            chain = []
        rows.sort(key=lambda r: -len(r[0]))
        ll = [0.0] * len(requests)
        s = 0
        while s < len(rows):
            T = len(rows[s][0])
            B = max(1, batch_tokens // T)
            batch = rows[s:s + B]
            ids = torch.zeros((len(batch), T), dtype=torch.long)
            for b, r in enumerate(batch):
                ids[b, :len(r[0])] = torch.tensor(r[0], dtype=torch.long)
            h = model.forward(ids)
            sel = torch.cat([h[b, r[2]:len(r[0])] for b, r in enumerate(batch)], 0)
            logp = torch.log_softmax(F.linear(sel, head), -1)
            g0 = 0
            for r in batch:
                for i in r[1]:
                    inp, cont = requests[i]
                    g = g0 + len(inp) - len(cont) - r[2]
                    ll[i] = logp[torch.arange(g, g + len(cont)), torch.tensor(cont)].to(torch.float64).sum().item()
                g0 += len(r[0]) - r[2]
            s += B
        return ll
    finally:
        model.head = head


def decide(lls, chars, gold):
    acc = max(range(len(lls)), key=lambda j: (lls[j], -j)) == gold
    norm = [l / max(c, 1) for l, c in zip(lls, chars)]
    acc_norm = max(range(len(norm)), key=lambda j: (norm[j], -j)) == gold
    return int(acc), int(acc_norm)


# ---------------------------------------------------------------------------------------------

def fixture(a):
    shared = os.environ.get("PARE_SHARED", os.path.join(ROOT, "..", "shared"))
    model_dir = os.path.join(shared, "models", a.model_name)
    tok = PareTokenizer(a.pare, model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        max_len = json.load(f)["max_position_embeddings"]
    torch.set_num_threads(a.threads)
    out = dict(
        generator="tests/gen_task_fixture.py (PyTorch %s, tools/bench_torch.py forward, fp32; ids from pare tokenize)"
                  % torch.__version__,
        model=a.model_name, max_len=max_len, items_per_task=a.items, tasks={})
    with torch.inference_mode():
        model = bench_torch.build(model_dir, max_len)
        for name, (rel, reader) in TASKS.items():
            docs = reader(os.path.join(shared, rel))[:a.items]
            reqs, shape = [], []
            for ctx, choices, gold in docs:
                shape.append(len(choices))
                for c in choices:
                    reqs.append(make_request(*encode_pair(tok, ctx, " " + c), max_len))
            lls = score(model, reqs, a.batch_tokens)
            items, k, hits = [], 0, [0, 0]
            for (ctx, choices, gold), n in zip(docs, shape):
                chars = [len(c) for c in choices]
                ll = lls[k:k + n]
                acc, accn = decide(ll, chars, gold)
                hits[0] += acc
                hits[1] += accn
                items.append(dict(gold=gold, ll=ll, cont_tokens=[len(r[1]) for r in reqs[k:k + n]],
                                  inp_tokens=[len(r[0]) for r in reqs[k:k + n]], chars=chars))
                k += n
            out["tasks"][name] = dict(data=rel, items=items, acc=hits[0] / len(docs), acc_norm=hits[1] / len(docs))
            sys.stderr.write("gen_task_fixture: %s: %d items, acc %.3f acc_norm %.3f\n"
                             % (name, len(docs), hits[0] / len(docs), hits[1] / len(docs)))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    sys.stderr.write("gen_task_fixture: wrote %s\n" % a.out)


def bench(a):
    torch.set_num_threads(a.threads)
    items = [json.loads(l) for l in open(a.requests) if l.strip()]
    reqs, pare_ll = [], []
    for it in items:
        for c in it["choices"]:
            reqs.append((c["inp"], c["cont"]))
            pare_ll.append(c["ll"])
    T = max(len(r[0]) for r in reqs)
    with torch.inference_mode():
        model = bench_torch.build(a.model, T)
        score(model, reqs[:min(len(reqs), 16)], a.batch_tokens)   # warm-up, not timed
        best = None
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            lls = score(model, reqs, a.batch_tokens)
            secs = time.perf_counter() - t0
            best = secs if best is None or secs < best else best
    k, hits = 0, [0, 0]
    for it in items:
        n = len(it["choices"])
        acc, accn = decide(lls[k:k + n], [c["chars"] for c in it["choices"]], it["gold"])
        hits[0] += acc
        hits[1] += accn
        k += n
    print(json.dumps(dict(items=len(items), requests=len(reqs), seconds=best, items_per_second=len(items) / best,
                          acc=hits[0] / len(items), acc_norm=hits[1] / len(items),
                          max_abs_diff_vs_pare=max(abs(x - y) for x, y in zip(lls, pare_ll)),
                          threads=a.threads, batch_tokens=a.batch_tokens, torch=torch.__version__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", action="store_true", help="time pare's dumped requests (see the header)")
    ap.add_argument("--requests", help="--bench: pare eval --dump-requests output")
    ap.add_argument("--model", help="--bench: Hugging Face model folder")
    ap.add_argument("--rounds", type=int, default=1, help="--bench: timed rounds, the best is kept")
    ap.add_argument("--model-name", default="ref-llama-12m", help="fixture: model folder under shared/models")
    ap.add_argument("--items", type=int, default=20, help="fixture: items per task")
    ap.add_argument("--pare", default=os.path.join(ROOT, "pare"), help="fixture: pare binary (for tokenize)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "zeroshot_ref_llama_12m.json"))
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if a.bench:
        if not a.requests or not a.model:
            ap.error("--bench needs --requests and --model")
        bench(a)
    else:
        fixture(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
