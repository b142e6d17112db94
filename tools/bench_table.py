"""The plain-text tables tools/bench.sh prints: first and last column left-aligned, the rest right."""


def print_table(cols, rows):
    w = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda r: " | ".join((x.ljust(w[i]) if i in (0, len(cols) - 1) else x.rjust(w[i]))
                               for i, x in enumerate(r)).rstrip()
    print(line(cols))
    print("-+-".join("-" * x for x in w))
    for r in rows:
        print(line(r))
