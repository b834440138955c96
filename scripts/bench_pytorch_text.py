#!/usr/bin/env python3
"""The PyTorch reference for the text model's training throughput: configs/ptb.toml's
model (embedding 100, one-layer nn.LSTM encoder and decoder with 400 units, d = 50, the
decoder's initial state from z and z concatenated to every input, vMF sample at
kappa 35 by an inverse-CDF table, softmax over the vocabulary, dropout 0.5 on the word
embeddings and the decoder's outputs as configs/ptb.toml trains, Adam lr 1e-3), batch 32,
batches bucketed by length as vmf-vae does, the loss read back every step. Prints one
JSON line: {"tokens_per_sec": ..., "torch": ..., "threads": ..., "device": ...}; tokens
are the decoder's targets, end tokens counted.

Needs torch and numpy. Usage:

    python3 scripts/bench_pytorch_text.py --threads 2 --steps 100
    python3 scripts/bench_pytorch_text.py --device cuda --steps 1000
"""
import argparse
import collections
import gzip
import json
import math
import os
import random
import time

import torch

from bench_pytorch import vmf_sample, w_table  # the MNIST reference's table and sampler


def read_sentences(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.split() for line in f if line.split()]


class TextVae(torch.nn.Module):
    def __init__(self, vocab, embed=100, hidden=400, d=50, dropout=0.5):
        super().__init__()
        self.drop = torch.nn.Dropout(dropout)
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.encoder = torch.nn.LSTM(embed, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, d)
        self.init_state = torch.nn.Linear(d, 2 * hidden)
        self.decoder = torch.nn.LSTM(embed + d, hidden, batch_first=True)
        self.output = torch.nn.Linear(hidden, vocab)

    def forward(self, words, last, inputs, table):
        out, _ = self.encoder(self.drop(self.embedding(words)))
        h = out[torch.arange(words.shape[0], device=words.device), last]
        mu = torch.nn.functional.normalize(self.head(h), dim=1)
        z = vmf_sample(mu, table)
        h0, c0 = self.init_state(z).chunk(2, dim=1)
        emb = self.drop(self.embedding(inputs))
        x = torch.cat([emb, z.unsqueeze(1).expand(-1, emb.shape[1], -1)], dim=2)
        out, _ = self.decoder(x, (torch.tanh(h0).unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        return self.output(self.drop(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "datasets", "ptb"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    dev = torch.device(args.device)

    train = read_sentences(os.path.join(args.data, "ptb.train.txt.gz"))
    counts = collections.Counter(w for s in train for w in s)
    words = [w for w, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0])) if w != "<unk>"]
    vocab = {w: i + 4 for i, w in enumerate(words)}
    ids = [[vocab.get(w, 3) for w in s] for s in train]

    # Bucketed batches, as vmf-vae forms them: pools of 50 batches sorted by length.
    order = list(range(len(ids)))
    random.shuffle(order)
    batches = []
    pool = args.batch * 50
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=lambda i: len(ids[i]))
        batches += [chunk[b:b + args.batch] for b in range(0, len(chunk) - args.batch + 1, args.batch)]
    random.shuffle(batches)

    def tensors(batch):
        sents = [ids[i] for i in batch]
        length = max(len(s) for s in sents)
        words = torch.zeros(len(sents), length, dtype=torch.long)
        inputs = torch.zeros(len(sents), length + 1, dtype=torch.long)
        targets = torch.zeros(len(sents), length + 1, dtype=torch.long)
        for r, s in enumerate(sents):
            words[r, :len(s)] = torch.tensor(s)
            inputs[r, 0] = 1
            inputs[r, 1:len(s) + 1] = torch.tensor(s)
            targets[r, :len(s)] = torch.tensor(s)
            targets[r, len(s)] = 2
        last = torch.tensor([len(s) - 1 for s in sents])
        tokens = sum(len(s) + 1 for s in sents)
        return words.to(dev), last.to(dev), inputs.to(dev), targets.to(dev), tokens

    table = w_table(50, 35.0).to(dev)
    model = TextVae(len(vocab) + 4, dropout=args.dropout).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)

    def step(k):
        words, last, inputs, targets, tokens = tensors(batches[k % len(batches)])
        logits = model(words, last, inputs, table)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0, reduction="sum"
        ) / words.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item(), tokens  # a read-back every step

    for k in range(5):  # warm-up
        step(k)
    t0 = time.perf_counter()
    total = 0
    for k in range(args.steps):
        loss, tokens = step(5 + k)
        total += tokens
    secs = time.perf_counter() - t0
    assert math.isfinite(loss)
    print(json.dumps({
        "tokens_per_sec": total / secs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "last_loss": loss,
    }))


if __name__ == "__main__":
    main()
