#!/usr/bin/env python3
"""Per-epoch learning curves of PTB runs, as a markdown table: for each run folder,
each epoch's test ELBO NLL, KL, perplexity (ELBO), the importance-sampled NLL and
perplexity where the run computes them (`training.eval_samples`; for the LM, whose
KL is 0, its ELBO figures, which are its NLL; "-" otherwise),
mutual information and greedy token accuracy (eval.csv) beside the validation ELBO
NLL and perplexity (valid.csv). Perplexities count end tokens, as the run folders'
CSVs do.

    python3 scripts/ptb_progress.py runs/ptb [runs/ptb-lm ...]
"""
import csv
import os
import sys


def rows(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {int(r["epoch"]): r for r in csv.DictReader(f)}


def main():
    print("| run | epoch | step | test ELBO NLL | KL | test ppl (ELBO) | test NLL (IS) | test ppl (IS) | MI | tokens right | valid ELBO NLL | valid ppl (ELBO) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        test = rows(os.path.join(run, "eval.csv"))
        valid = rows(os.path.join(run, "valid.csv"))
        name = os.path.normpath(run)
        name = name[len("runs/"):] if name.startswith("runs/") else name
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
            print(
                f"| {name} | {epoch} | {t['step']} | {-float(t['elbo']):.2f} | {float(t['kl']):.2f} | "
                f"{float(t['ppl_elbo']):.1f} | {sampled} | {float(mi):.2f} | "
                + (f"{100 * float(acc):.1f}%" if acc else "-")
                + " | "
                + (f"{-float(v['elbo']):.2f} | {float(v['ppl_elbo']):.1f} |" if v else "- | - |")
            )


if __name__ == "__main__":
    main()
