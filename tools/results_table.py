#!/usr/bin/env python3
"""Turns the run records of tools/results.sh into the Markdown tables of docs/results.md."""
import json
import os
import sys

METHODS = [
    ("lorap", "LoRAP (AWSVD attention V,O : Q,K = 3 : 1, LoRAP channel pruning, keep_least 0.01)"),
    ("lorap-kl0", "LoRAP, keep_least = 0"),
    ("svd", "plain SVD, uniform ranks, every matrix"),
    ("asvd", "activation-weighted SVD, uniform ranks, every matrix"),
    ("lorap-magnitude", "magnitude channel pruning + plain SVD attention (LoRAP's split)"),
    ("wanda", "Wanda unstructured, at LoRAP's block-linear parameter count"),
    ("global", "pare global (activation-weighted ranks chosen together)"),
    ("auto", "pare auto (whitened ranks and FFN widths chosen together by measured loss)"),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def main(out):
    lines = []
    for model in ("ref-llama-12m", "ref-gpt2-6m"):
        wiki = os.path.join(out, f"{model}-dense-wiki.json")
        ptb = os.path.join(out, f"{model}-dense-ptb.json")
        if not (os.path.exists(wiki) and os.path.exists(ptb)):
            continue
        dw, dp = load(wiki)["ppl"], load(ptb)["ppl"]
        lines.append(f"### {model}\n")
        lines.append("| s | method | block linears kept | removed | all params kept | removed | wiki ppl | ptb ppl |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        first = None
        for s in ("0.2", "0.3", "0.5"):
            for key, what in METHODS:
                path = os.path.join(out, f"{model}-{key}-{s}.json")
                if not os.path.exists(path):
                    continue
                r = load(path)
                p = r["params"]
                if first is None:
                    first = p
                    lines.append(f"| 0 | dense | {p['block_linear_before']:,} | 0% | {p['total_before']:,} | 0% "
                                 f"| {dw:.2f} | {dp:.2f} |")
                ev = {os.path.basename(e["data"]): e["ppl"] for e in r["eval"]}
                lines.append(
                    f"| {s} | {what} | {p['block_linear_after']:,} | {100 * p['block_linear_removed']:.1f}% "
                    f"| {p['total_after']:,} | {100 * p['total_removed']:.1f}% "
                    f"| {ev.get('wiki.test.raw', float('nan')):.2f} | {ev.get('ptb.test.txt', float('nan')):.2f} |")
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/results")
