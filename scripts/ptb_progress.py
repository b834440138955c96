#!/usr/bin/env python3
"""Per-epoch learning curves of PTB runs, as a markdown table: for each run folder,
each epoch's test ELBO NLL, KL, perplexity (ELBO), the importance-sampled NLL and
perplexity where the run computes them (`training.eval_samples`; for the LM, whose
KL is 0, its ELBO figures, which are its NLL; "-" otherwise), mutual information and
greedy token accuracy (eval.csv) beside the validation ELBO NLL and perplexity
(valid.csv). Perplexities count end tokens, as the run folders' CSVs do.

    python3 scripts/ptb_progress.py RUN[=LABEL] ...        # the table on stdout
    python3 scripts/ptb_progress.py --update docs/ptb.md   # regenerate it in place

A RUN is a run folder; LABEL (default: the folder without `runs/`) names its rows.
`--update FILE` rewrites every block of FILE between
`<!-- begin ptb_progress.py RUN[=LABEL] ... -->` and `<!-- end ptb_progress.py -->`
with the table of the runs its begin line names and a line saying when, at which
commit and on which machine it was made; the rest of FILE (the reading) is kept.
"""
import csv
import datetime
import os
import platform
import shlex
import subprocess
import sys

import doc_blocks  # scripts/: the folder of this script is on sys.path


def rows(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {int(r["epoch"]): r for r in csv.DictReader(f)}


def table(args):
    out = [
        "| run | epoch | step | test ELBO NLL | KL | test ppl (ELBO) | test NLL (IS) | test ppl (IS) | MI | tokens right | valid ELBO NLL | valid ppl (ELBO) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arg in args:
        run, _, label = arg.partition("=")
        name = label or os.path.normpath(run)
        if not label and name.startswith("runs/"):
            name = name[len("runs/"):]
        test = rows(os.path.join(run, "eval.csv"))
        valid = rows(os.path.join(run, "valid.csv"))
        for epoch in sorted(test):
            t, v = test[epoch], valid.get(epoch)
            mi = t.get("mi") or ""
            acc = t.get("recon_accuracy")
            nll_is, ppl_is = t.get("nll_is"), t.get("ppl_is")
            if nll_is:
                sampled = f"{float(nll_is):.2f} | {float(ppl_is):.1f}"
            elif float(t["kl"]) == 0.0:
                # The LM: without z its ELBO is its NLL.
                sampled = f"{-float(t['elbo']):.2f} | {float(t['ppl_elbo']):.1f}"
            else:
                sampled = "- | -"
            out.append(
                f"| {name} | {epoch} | {t['step']} | {-float(t['elbo']):.2f} | {float(t['kl']):.2f} | "
                f"{float(t['ppl_elbo']):.1f} | {sampled} | {float(mi):.2f} | "
                + (f"{100 * float(acc):.1f}%" if acc else "-")
                + " | "
                + (f"{-float(v['elbo']):.2f} | {float(v['ppl_elbo']):.1f} |" if v else "- | - |")
            )
    return out


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def provenance(args):
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Made by `python3 scripts/ptb_progress.py {shlex.join(args)}` at {when}, "
        f"commit {commit or '?'}, {cpu()}, {os.cpu_count()} cores."
    )


def update(path):
    def render(args):
        args = shlex.split(args)
        return [provenance(args), ""] + table(args)

    doc_blocks.update(path, "ptb_progress.py", render)


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--update"]:
        if len(argv) != 2:
            sys.exit("usage: ptb_progress.py --update FILE")
        update(argv[1])
    elif argv:
        print("\n".join(table(argv)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
