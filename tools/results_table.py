#!/usr/bin/env python3
"""Turns the run records of tools/results.sh into the Markdown tables of docs/results.md, and reads the
method list (tools/results_methods.txt) for the shell scripts.

Usage: results_table.py [OUT]      the tables (comparison, compression time, evaluation window)
       results_table.py --methods  one line per method, KEY|COMPRESS ARGS|PRESET|PRESET ARGS|AT|WINDOWS
"""
import json
import os
import re
import sys

MODELS = ("ref-llama-12m", "ref-gpt2-6m")
TEXTS = (("wiki.test.raw", "wiki"), ("ptb.test.txt", "ptb"))


def methods():
    """The rows of tools/results_methods.txt with their defaults filled in, in table order."""
    rows = []
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_methods.txt")) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [x.strip() for x in line.split("|")] + [""] * 4
            key, compress, preset, flags, label = fields[:5]
            preset = (preset or key).split(None, 1) + [""]
            flags = flags.split() if fields[1:] != [""] * 4 else ["windows"]
            at = next((x[3:] for x in flags if x.startswith("at=")), "")
            rows.append({"key": key, "compress": compress or f"--method {key}", "preset": preset[0],
                         "preset_args": preset[1], "at": at, "windows": "windows" in flags, "label": label or key})
    return rows


def load(path):
    with open(path) as f:
        return json.load(f)


def ppl_by_text(record):
    return {os.path.basename(e["data"]): e["ppl"] for e in record["eval"]}


def ratios_run(out, model, key):
    """The ratios s with a record OUT/MODEL-KEY-S.json."""
    prefix = f"{model}-{key}-"
    found = []
    for name in os.listdir(out):
        if name.startswith(prefix) and name.endswith(".json"):
            try:
                found.append(float(name[len(prefix):-5]))
            except ValueError:
                pass
    return found


def comparison(out, model, rows):
    dense = [os.path.join(out, f"{model}-dense-{t}.json") for _, t in TEXTS]
    dense = [f"{load(p)['ppl']:.2f}" if os.path.exists(p) else "—" for p in dense]
    ratios = sorted({s for m in rows for s in ratios_run(out, model, m["key"])})
    if not ratios:
        return []
    lines = [f"### {model}\n",
             "| s | method | block linears kept | removed | all params kept | removed | wiki ppl | ptb ppl |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    first = None
    for s in ratios:
        for m in rows:
            path = os.path.join(out, f"{model}-{m['key']}-{s}.json")
            if not os.path.exists(path):
                continue
            r = load(path)
            p = r["params"]
            if first is None:
                first = p
                lines.append(f"| 0 | dense | {p['block_linear_before']:,} | 0% | {p['total_before']:,} | 0% "
                             f"| {dense[0]} | {dense[1]} |")
            ev = ppl_by_text(r)
            lines.append(
                f"| {s} | {m['label']} | {p['block_linear_after']:,} | {100 * p['block_linear_removed']:.1f}% "
                f"| {p['total_after']:,} | {100 * p['total_removed']:.1f}% "
                f"| {ev.get('wiki.test.raw', float('nan')):.2f} | {ev.get('ptb.test.txt', float('nan')):.2f} |")
    return lines + [""]


def compression_time(out, rows):
    """OUT/times/MODEL-KEY.json: /usr/bin/time of `pare compress` without evaluation."""
    lines = ["| model | method | wall s | CPU s (user + sys) | CPU vs LoRAP |", "|---|---|---:|---:|---:|"]
    for model in MODELS:
        times = {}
        for m in rows:
            path = os.path.join(out, "times", f"{model}-{m['key']}.json")
            if os.path.exists(path):
                t = load(path)
                times[m["key"]] = (t["wall_s"], t["user_s"] + t["sys_s"])
        for m in rows:
            if m["key"] in times:
                wall, cpu = times[m["key"]]
                rel = f"{cpu / times['lorap'][1]:.2f}x" if "lorap" in times else "—"
                lines.append(f"| {model} | {m['label']} | {wall:.1f} | {cpu:.1f} | {rel} |")
    return lines + [""] if len(lines) > 2 else []


def window_effect(out, rows, s):
    """Perplexity at s of the `windows` methods under each evaluation window recorded in OUT/windows."""
    lines = []
    for model in MODELS:
        wdir = os.path.join(out, "windows")
        names = os.listdir(wdir) if os.path.isdir(wdir) else []
        windows = sorted({int(m.group(1)) for m in (re.fullmatch(re.escape(model) + r"-.*-w(\d+)\.json", n)
                                                    for n in names) if m})
        if not windows:
            continue
        # the comparison table's runs are the default window's column
        cols = sorted(set(windows) | {256})

        def record(key, w):
            if w == 256:
                return os.path.join(out, f"{model}-{key}-{s}.json")
            return os.path.join(wdir, f"{model}-{key}-{s}-w{w}.json")

        head = " | ".join(f"{t} @ {w}" for _, t in TEXTS for w in cols)
        lines += [f"{model}, s = {s}:\n", f"| method | {head} |", "|---|" + "---:|" * (len(cols) * len(TEXTS))]
        dense = []
        for file, t in TEXTS:
            for w in cols:
                path = (os.path.join(out, f"{model}-dense-{t}.json") if w == 256
                        else os.path.join(wdir, f"{model}-dense-{t}-w{w}.json"))
                dense.append(f"{load(path)['ppl']:.2f}" if os.path.exists(path) else "—")
        lines.append("| dense | " + " | ".join(dense) + " |")
        for m in rows:
            if not m["windows"]:
                continue
            cells = []
            for file, _ in TEXTS:
                for w in cols:
                    path = record(m["key"], w)
                    cells.append(f"{ppl_by_text(load(path))[file]:.2f}" if os.path.exists(path) else "—")
            lines.append(f"| {m['key']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main(argv):
    rows = methods()
    if argv[1:2] == ["--methods"]:
        for m in rows:
            print("|".join([m["key"], m["compress"], m["preset"], m["preset_args"], m["at"],
                            "1" if m["windows"] else ""]))
        return
    out = argv[1] if len(argv) > 1 else "build/results"
    lines = []
    for model in MODELS:
        lines += comparison(out, model, rows)
    t = compression_time(out, rows)
    if t:
        lines += ["Compression time (`pare compress` without evaluation, s = "
                  f"{os.environ.get('TIME_RATIO', '0.5')}):\n"] + t
    lines += window_effect(out, rows, os.environ.get("WINDOW_RATIO", "0.5"))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv)
