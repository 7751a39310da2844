"""Can 500 AdamW steps learn the k-mer logistic regression through the model's k-mer skip path?

The DNA models' k-mer path (``--kmer k``) makes the model *contain* the k-mer logistic regression:
the mean-pooled k-mer embedding ``f @ E`` (``f`` the fragment's k-mer frequencies, ``E`` the
[4^k, C] table) feeds the linear head. Containing it is not reaching it. This benchmark isolates
that path on the species task's real fragments (the demo's data and training fragments: 4 epochs
of 2,000, drawn afresh, strains held out) and trains only it, with the demos' optimiser budget
(AdamW 3e-3, 500 steps of 16, warm-up + cosine), in three parametrisations, beside the baseline
fitted to convergence (L-BFGS, L2 chosen on validation):

- ``as built``: ``head(f @ E)``, ``E ~ N(0, 1)`` (what ``KmerEmbedding`` + the skip path do);
- ``centred x 4^k``: ``head(4^k f @ (E - mean_k E))``, ``E ~ N(0, 0.01^2)``: frequencies relative
  to uniform, so one Adam step moves a logit by O(lr), not O(lr / 4^k);
- ``standardised``: ``head(((f - mu) / sigma) @ E)`` with the training set's mean and std, the
  logistic regression's own features, ``E ~ N(0, 1 / 4^k)``.

    python benchmarks/kmer_skip_scaling.py --out benchmarks/results/kmer_skip   # ~3 min, 1 thread

Writes ``kmer_skip.json`` and ``kmer_skip.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sparsemix.data.baselines import fit_logistic, kmer_features
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig


def _fragments(ds, epochs: int) -> tuple[list, torch.Tensor]:
    items, labels = [], []
    for epoch in range(epochs):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, y = ds[i]
            items.append(x)
            labels.append(int(y))
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(0)
    return items, torch.tensor(labels)


def _train_path(kind: str, feats: dict, labels: dict, k: int, channels: int, classes: int,
                steps: int, batch: int, lr: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    rows = 4 ** k
    std0 = {"as built": 1.0, "centred x 4^k": 0.01, "standardised": 1 / math.sqrt(rows)}[kind]
    table = (torch.randn(rows, channels, generator=g) * std0).requires_grad_()
    head = torch.nn.Linear(channels, classes)
    mu = feats["train"].mean(0)
    sigma = feats["train"].std(0).clamp_min(1e-6)

    def pooled(f: torch.Tensor) -> torch.Tensor:
        if kind == "as built":
            return f @ table
        if kind == "centred x 4^k":
            return rows * (f @ (table - table.mean(0)))
        return ((f - mu) / sigma) @ table

    params = [table, *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, min(100, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else
        0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    n = len(labels["train"])
    order = torch.randperm(n, generator=g)
    for step in range(steps):
        idx = order[(step * batch) % n: (step * batch) % n + batch]
        loss = F.cross_entropy(head(pooled(feats["train"][idx])), labels["train"][idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    with torch.no_grad():
        return {s: float((head(pooled(feats[s])).argmax(1) == labels[s]).float().mean())
                for s in ("val", "test")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/kmer_skip")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = TrainConfig(task="dna-species", out=tempfile.mkdtemp(), train_size=2000, val_size=500,
                      test_size=1000)
    task = build_task("dna-species", cfg)
    epochs = math.ceil(args.steps * args.batch_size / len(task.train))
    feats, labels = {}, {}
    for split, ds, ep in (("train", task.train, epochs), ("val", task.val, 1),
                          ("test", task.test, 1)):
        items, labels[split] = _fragments(ds, ep)
        feats[split] = kmer_features(items, args.k)
    classes = task.num_classes
    rows = []
    best = None
    for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
        lr_model = fit_logistic(feats["train"], labels["train"], classes, l2=l2)
        val = float((lr_model.predict(feats["val"]) == labels["val"]).float().mean())
        if best is None or val > best[0]:
            test = float((lr_model.predict(feats["test"]) == labels["test"]).float().mean())
            best = (val, test, l2)
    rows.append({"model": f"{args.k}-mer LR, L-BFGS to convergence (L2 {best[2]:g})",
                 "val": best[0], "test": best[1]})
    for kind in ("as built", "centred x 4^k", "standardised"):
        runs = [_train_path(kind, feats, labels, args.k, 32, classes, args.steps,
                            args.batch_size, args.lr, seed) for seed in args.seeds]
        rows.append({"model": f"skip path only, {kind} ({args.steps} AdamW steps of "
                              f"{args.batch_size})",
                     "val": sum(r["val"] for r in runs) / len(runs),
                     "test": sum(r["test"] for r in runs) / len(runs),
                     "seeds": runs})
    result = {"rows": rows, "train_fragments": len(labels["train"]), "k": args.k,
              "seconds": time.perf_counter() - t0, "machine": platform.processor() or platform.machine(),
              "load_1min": __import__("os").getloadavg()[0]}
    (out / "kmer_skip.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# k-mer skip path vs the k-mer LR (species task, {len(labels['train'])} training "
             f"fragments, k = {args.k})", "",
             "| model | val accuracy | test accuracy |", "|---|---:|---:|"]
    lines += [f"| {r['model']} | {r['val']:.3f} | {r['test']:.3f} |" for r in rows]
    lines += ["", f"`python benchmarks/kmer_skip_scaling.py --out {args.out}`: "
              f"{result['seconds']:.0f} s, 1 thread, 1-min load {result['load_1min']:.1f}"]
    (out / "kmer_skip.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
