#!/usr/bin/env python3
"""The S-VAE protocol's table, built from the records that scripts/svae_record.sh wrote.

    python3 scripts/svae_table.py [SOURCE ...]     # print the table of these records
    python3 scripts/svae_table.py --brief [SOURCE ...]  # its short form (the README's)
    python3 scripts/svae_table.py --update FILE    # regenerate it in place

A SOURCE is DIR, every record of that folder, or DIR:KIND[,KIND...], only those kinds'
records (e.g. docs/svae-patience100:vmf-product, a column trained under the same
protocol but recorded beside another table). DIR (default docs/svae-patience100) holds
KIND-dD-TAG-eval-k500.json, -valid.csv and .toml per run, TAG being seedN, initX-seedN
or, for a product of spheres, blocks-sB-seedN (blocks of S^B) or blocks-sB1-sB2-..-seedN
(S^B1 x S^B2 x .., model.blocks), with -kK1-K2-..- before seedN where each block's kappa
starts at its own value (kappa.block_init) (other tags, e.g. seed1-907ep, a run
stopped by hand, are left out). Each cell is the mean over the seeds of the test
log-likelihood (K = 500, nats) and, per seed, its epochs (best epoch); a dagger marks a
run that the epoch budget ended before its early stop did. Two more columns compare the
best vMF column's mean with the published S-VAE figure and our Gaussian with the
published N-VAE (Davidson et al. 2018, table 1): positive is ours ahead.

The product column holds, at each d, the runs of one block layout (from the run's
config: S^B with B = latent_dim / factors - 1, or model.blocks' spheres, e.g. S^14 x
S^6, and kappa.block_init where given): the one whose runs have the best mean validation
ELBO (each run's best epoch), as a user would choose it without the test set; the
others are named beside it.

`--update FILE` rewrites every block of FILE between `<!-- begin svae_table.py SOURCE
... -->` (or `--brief SOURCE ...`) and `<!-- end svae_table.py -->` with the table of
those sources, so the tables in the docs are made from the records, never copied by hand.
"""
import csv
import glob
import json
import math
import os
import re
import sys
import tomllib

import doc_blocks  # scripts/: the folder of this script is on sys.path

# Published test log-likelihoods (Davidson et al. 2018, table 1): N-VAE, S-VAE.
PUBLISHED = {2: (-135.73, -132.50), 5: (-110.21, -108.43), 10: (-93.84, -93.16),
             20: (-88.90, -89.02), 40: (-88.93, -90.87)}
KINDS = [("gaussian", "our Gaussian"), ("vmf-learned", "vMF, one learned kappa"),
         ("vmf-per-example", "vMF, kappa per example")]
# Shown, with its own two differences, only where the folder has runs of it: a product
# of spheres (configs/svae-vmf-product.toml, with its KL warm-up; docs/svae-product.md),
# its block size chosen per d on the validation ELBO (choose_blocks).
PRODUCT = ("vmf-product", "vMF, product of spheres (block chosen on validation), KL warm-up")
NAME = re.compile(r"^(?P<kind>.+)-d(?P<d>\d+)-(?:blocks-(?P<block>s\d+(?:-s\d+)*)-"
                  r"(?:k(?P<starts>[\d.]+(?:-[\d.]+)*)-)?)?"
                  r"(?:init(?P<init>[\d.]+)-)?seed(?P<seed>\d+)-eval-k500\.json$")


def config_value(path, key, default=None):
    """The first `key = value` of a run's TOML config (budget, patience, burn-in); where
    the config has no such line, `default`, or an error naming the file if none."""
    with open(path) as f:
        for line in f:
            m = re.match(rf"^{key}\s*=\s*([^#\s]+)", line)
            if m:
                return m.group(1)
    if default is not None:
        return default
    sys.exit(f"{path}: no `{key} =` line")


def runs(sources):
    """(kind, d) -> list of runs, each a dict of seed, init, ll, se, kl, epochs, best,
    budget_hit, patience and burn_in, from every SOURCE (DIR or DIR:KIND[,KIND...]) of the
    list."""
    table, seen = {}, set()
    for source in sources:
        folder, _, only = source.partition(":")
        kinds = set(only.split(",")) if only else None
        paths = sorted(glob.glob(os.path.join(folder, "*-eval-k500.json")))
        found = [(p, m) for p in paths if (m := NAME.match(os.path.basename(p)))
                 and (kinds is None or m["kind"] in kinds)]
        if not found:
            sys.exit(f"{source}: no KIND-dD-seedN-eval-k500.json records"
                     + (f" of {only}" if only else ""))
        for path, m in found:
            # Overlapping sources (DIR and DIR:KIND) name a record once in the table.
            if os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                add_run(table, path, m)
    for rs in table.values():
        rs.sort(key=lambda r: r["seed"])
    return table


def add_run(table, path, m):
    """Read the record whose evaluation is at `path` (its name matched by NAME as `m`)
    into `table`."""
    stem = path[: -len("-eval-k500.json")]
    with open(path) as f:
        e = json.load(f)
    with open(stem + "-valid.csv") as f:
        elbo = [float(r["elbo"]) for r in csv.DictReader(f)]
    if not elbo:
        sys.exit(f"{stem}-valid.csv: no epochs")
    budget = int(config_value(stem + ".toml", "epochs"))
    block = layout(stem + ".toml")
    named = m["block"] and " x ".join(f"S^{b[1:]}" for b in m["block"].split("-"))
    if named and m["starts"]:
        named += f" (kappa from {', '.join(f'{float(k):g}' for k in m['starts'].split('-'))})"
    if named and named != block:
        sys.exit(f"{stem}.toml: its blocks are {block}, its name says {named}")
    table.setdefault((m["kind"], int(m["d"])), []).append({
        "seed": int(m["seed"]), "init": m["init"], "ll": e["log_likelihood"],
        "se": e["log_likelihood_se"], "kl": e["metrics"]["kl"], "epochs": len(elbo),
        "best": max(range(len(elbo)), key=elbo.__getitem__) + 1,
        "budget_hit": len(elbo) >= budget, "block": block, "valid": max(elbo),
        "patience": int(config_value(stem + ".toml", "patience")),
        # The KL warm-up's epochs: svae_protocol.sh WARMUP=E sets burn_in = E beside it.
        "burn_in": int(config_value(stem + ".toml", "burn_in", "0")),
        # A plateau schedule (svae_protocol.sh LR_DECAY, LR_PATIENCE): the rate times
        # lr_decay after every lr_patience epochs without a better validation ELBO.
        "schedule": (float(config_value(stem + ".toml", "lr_decay", "1")),
                     int(config_value(stem + ".toml", "lr_patience", "1"))),
    })


def layout(path):
    """The spheres of a run's latent as a label: S^B for one sphere or equal blocks (a
    sphere S^B has B + 1 coordinates: B = latent_dim / factors - 1), or model.blocks'
    spheres in order, e.g. S^14 x S^6, with each block's starting kappa where the
    config gives them (kappa.block_init), e.g. S^14 x S^6 (kappa from 10, 100)."""
    with open(path, "rb") as f:
        config = tomllib.load(f)
    model = config.get("model", {})
    if model.get("blocks"):
        label = " x ".join(f"S^{m - 1}" for m in model["blocks"])
    else:
        label = f"S^{model['latent_dim'] // model.get('factors', 1) - 1}"
    starts = config.get("kappa", {}).get("block_init")
    return label + (f" (kappa from {', '.join(f'{k:g}' for k in starts)})" if starts else "")


def mean_se(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def choose_blocks(t):
    """Keeps, at each d, only the product runs of the block size with the best mean
    validation ELBO (in place in `t`); returns d -> [(block, mean validation ELBO, runs
    count)] of every size trained there, the chosen one first."""
    sizes = {}
    for (kind, d), rs in t.items():
        if kind != PRODUCT[0]:
            continue
        groups = {}
        for r in rs:
            groups.setdefault(r["block"], []).append(r)
        ranked = sorted(groups.items(), key=lambda g: -sum(r["valid"] for r in g[1]) / len(g[1]))
        t[(kind, d)] = ranked[0][1]
        sizes[d] = [(b, sum(r["valid"] for r in g) / len(g), len(g)) for b, g in ranked]
    return sizes


def signed(value, ref):
    """`value - ref` with its sign, two decimals; empty where either is missing."""
    return f"{value - ref:+.2f}" if value is not None and ref is not None else ""


def best_sphere(means):
    """(mean, kind) of the better one-sphere vMF column of `means` (kind -> mean, None
    where the column has no run at this d), or None if there is none."""
    one = [(m, k) for k, m in means.items()
           if k.startswith("vmf") and k != PRODUCT[0] and m is not None]
    return max(one) if one else None


def cell(rs):
    if not rs:
        return "", None
    mean, se = mean_se([r["ll"] for r in rs])
    per = "; ".join(
        f"s{r['seed']}{' init ' + r['init'] if r['init'] else ''}: "
        + (f"{r['ll']:.2f}, " if len(rs) > 1 else "")
        + f"{r['epochs']}{'†' if r['budget_hit'] else ''} ({r['best']})"
        for r in rs)
    head = f"**{mean:.2f}**" + (f" +- {se:.2f}" if se is not None else f" +- {rs[0]['se']:.2f}")
    kl = sum(r["kl"] for r in rs) / len(rs)
    return f"{head} ({per}; KL {kl:.1f})", mean


def protocol(t):
    """What the runs of `t` share or not: patience, KL warm-up and burn-in, a plateau
    schedule of the learning rate."""
    patience = sorted({r["patience"] for rs in t.values() for r in rs})
    burn_in = sorted({r["burn_in"] for rs in t.values() for r in rs if r["burn_in"]})
    warm_kinds = sorted({k for (k, _), rs in t.items() if any(r["burn_in"] for r in rs)})
    cold = any(not r["burn_in"] for rs in t.values() for r in rs)
    warmup = ("" if not burn_in else
              f"; KL warm-up and burn-in of {', '.join(map(str, burn_in))} epochs"
              + (f" for the {', '.join(warm_kinds)} runs only" if cold else ""))
    schedules = sorted({r["schedule"] for rs in t.values() for r in rs})
    plateau = [s for s in schedules if s[0] < 1]
    plateau_kinds = sorted({k for (k, _), rs in t.items() if any(r["schedule"][0] < 1 for r in rs)})
    constant = any(s[0] == 1 for s in schedules)
    lr = ("" if not plateau else "; the learning rate "
          + " or ".join(f"times {f:g} after every {n} epochs without a better validation ELBO"
                        for f, n in plateau)
          + (f" for the {', '.join(plateau_kinds)} runs only, constant for the others"
             if constant else ""))
    return f"patience {', '.join(map(str, patience))}{warmup}{lr}"


def table(sources):
    """The markdown table of the records of `sources` (a list of SOURCE strings)."""
    t = runs(sources)
    sizes = choose_blocks(t)
    product = bool(sizes)
    kinds = KINDS + [PRODUCT] if product else KINDS
    out = [
        f"Made by `python3 scripts/svae_table.py {' '.join(sources)}` from its records "
        f"({protocol(t)}). Cells: test log p(x), K = 500, nats: the mean "
        "over seeds **in bold**, +- the standard error over the seeds (one seed: over the "
        "test images); per seed sN, its log p(x) where there are several, its epochs (best "
        "epoch; † the epoch budget ended it); KL: the test set's mean"
        + ("; product: the block size S^B whose runs have the best mean validation ELBO "
           "(each run's best epoch), the others' beside it" if product else "")
        + ". Difference columns: ours minus the paper's, positive ahead"
        + (" (best vMF: of the one-sphere columns)." if product else "."),
        "",
        "| d | N-VAE (paper) | S-VAE (paper) | " + " | ".join(label for _, label in kinds)
        + " | best vMF - S-VAE | our Gaussian - N-VAE |"
        + (" product - S-VAE | product - N-VAE |" if product else ""),
        "|---" * (5 + len(kinds) + (2 if product else 0)) + "|",
    ]
    for d in sorted({d for _, d in t}):
        n_vae, s_vae = PUBLISHED.get(d, (None, None))
        cells, means = [], {}
        for kind, _ in kinds:
            text, mean = cell(t.get((kind, d), []))
            if kind == PRODUCT[0] and d in sizes:
                (block, valid, _), *others = sizes[d]
                text = (f"{block}: {text}; validation ELBO {valid:.2f}"
                        + "".join(f", {b}'s {v:.2f} ({n} run{'s' if n > 1 else ''})"
                                  for b, v, n in others))
            cells.append(text)
            means[kind] = mean
        best = best_sphere(means)
        best = signed(best[0] if best else None, s_vae)
        gauss = signed(means["gaussian"], n_vae)
        pub = [f"{v:.2f}" if v is not None else "" for v in (n_vae, s_vae)]
        row = f"| {d} | {pub[0]} | {pub[1]} | " + " | ".join(cells) + f" | {best} | {gauss} |"
        if product:
            diffs = (signed(means[PRODUCT[0]], v) for v in (s_vae, n_vae))
            row += "".join(f" {x} |" if x else " |" for x in diffs)
        out.append(row)
    return "\n".join(out)


def brief(sources):
    """The README's short form of `table(sources)`: per d, each column's mean over its
    seeds (and how many), the better one-sphere vMF column (naming the other where it
    has no run at that d: then there was no choice), and the differences with the
    published columns."""
    t = runs(sources)
    sizes = choose_blocks(t)
    product = bool(sizes)
    label = {"vmf-learned": "one kappa", "vmf-per-example": "per example"}

    def runs_of(kind, d):
        n = len(t[(kind, d)])
        return f"{n} run{'s' if n > 1 else ''}"

    out = [
        f"Made by `python3 scripts/svae_table.py --brief {' '.join(sources)}` from its records "
        f"({protocol(t)}): test log p(x), "
        "K = 500, nats, the mean over runs (seeds); the vMF column is the better of one learned "
        "kappa and a kappa per example on one sphere"
        + ("; the product's blocks S^B are the size with the best validation ELBO at that d"
           if product else "")
        + "; differences: ours minus the paper's, positive ahead.",
        "",
        "| d | N-VAE (paper) | S-VAE (paper) | our Gaussian | vMF, one sphere"
        + (" | vMF, product of spheres" if product else "")
        + " | vMF - S-VAE" + (" | product - S-VAE" if product else "")
        + " | Gaussian - N-VAE |",
        "|---" * (7 + (2 if product else 0)) + "|",
    ]
    for d in sorted({d for _, d in t}):
        n_vae, s_vae = PUBLISHED.get(d, (None, None))
        means = {k: cell(t.get((k, d), []))[1] for k, _ in KINDS + [PRODUCT]}
        best = best_sphere(means)
        cells = [str(d)] + [f"{v:.2f}" if v is not None else "" for v in (n_vae, s_vae)]
        cells.append(f"{means['gaussian']:.2f} ({runs_of('gaussian', d)})"
                     if means["gaussian"] is not None else "")
        # Where only one of the two one-sphere kinds has runs at this d, there was no
        # choice: say so rather than call it the better one.
        other = [label[k] for k in label if best and means[k] is None]
        cells.append(f"{best[0]:.2f} ({label[best[1]]}, {runs_of(best[1], d)}"
                     f"{''.join(f'; {o} not run' for o in other)})" if best else "")
        if product:
            p = means[PRODUCT[0]]
            cells.append(f"{p:.2f} ({sizes[d][0][0]}, {runs_of(PRODUCT[0], d)})"
                         if p is not None else "")
        cells.append(signed(best[0] if best else None, s_vae))
        if product:
            cells.append(signed(means[PRODUCT[0]], s_vae))
        cells.append(signed(means["gaussian"], n_vae))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def render(args):
    """The lines of the table that `args` ([--brief] [SOURCE ...]) asks for, a generated
    block's or the command line's (no SOURCE: docs/svae-patience100)."""
    words = args.split()
    make, sources = (brief, words[1:]) if words[:1] == ["--brief"] else (table, words)
    return make(sources or ["docs/svae-patience100"]).split("\n")


def update(path):
    doc_blocks.update(path, "svae_table.py", render)


def main(argv):
    if argv[:1] == ["--update"]:
        if len(argv) != 2:
            sys.exit("usage: svae_table.py --update FILE")
        update(argv[1])
    elif argv[:1] and argv[0].startswith("-") and argv[0] != "--brief":
        sys.exit(__doc__)
    else:
        print("\n".join(render(" ".join(argv))))


if __name__ == "__main__":
    main(sys.argv[1:])
