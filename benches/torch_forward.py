"""Encoder forward of a BERT-style or ModernBERT model in PyTorch at batch x seq (random token ids), for
`just bench`: the same workload as `autoprompt bench forward` (the full encoder at every
token, no MLM head, no pooler), and PyTorch's own 2048x2048 float32 matmul, printed as one
JSON line."""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoConfig, AutoModel


# What `gflop` counts, word for word as `bench::FULL_ENCODER` on the Rust side.
FULL_ENCODER = "full encoder: every layer at every token; no MLM head, no pooler"


def encoder_flops(config, batch, seq):
    """FLOPs of one encoder forward (as `bench::encoder_flops` in Rust): projections,
    attention, feed-forward (two h x i matrices; three in ModernBERT's GeGLU), at every token
    of every layer."""
    tokens = batch * seq
    h, i = config.hidden_size, config.intermediate_size
    ffn_matrices = 3 if config.model_type == "modernbert" else 2
    return config.num_hidden_layers * (tokens * (8 * h * h + 2 * ffn_matrices * h * i) + 4 * batch * seq * seq * h)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (timings synchronise the device)")
    a = p.parse_args()
    device = torch.device(a.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if a.threads:
        torch.set_num_threads(a.threads)
    config = AutoConfig.from_pretrained(a.model)
    # No pooler: the Rust side runs (and the FLOP count covers) the encoder only.
    # (ModernBERT's encoder has none to leave out.)
    pooler = {} if config.model_type == "modernbert" else {"add_pooling_layer": False}
    model = AutoModel.from_pretrained(a.model, **pooler).eval().to(device)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (a.batch, a.seq), generator=g).to(device)
    times = []
    with torch.no_grad():
        model(input_ids=ids)
        sync()
        for _ in range(a.iters):
            t0 = time.perf_counter()
            model(input_ids=ids)
            sync()
            times.append(time.perf_counter() - t0)
    secs = statistics.median(times)
    n = 2048
    x, y = torch.randn(n, n, generator=g).to(device), torch.randn(n, n, generator=g).to(device)
    x @ y
    sync()
    mm = []
    for _ in range(5):
        t0 = time.perf_counter()
        x @ y
        sync()
        mm.append(time.perf_counter() - t0)
    gflop = encoder_flops(config, a.batch, a.seq) / 1e9
    print(json.dumps({
        "implementation": "pytorch" if device.type == "cpu" else f"pytorch-{device.type}",
        "batch": a.batch,
        "seq": a.seq,
        "median_seconds": secs,
        "gflop": gflop,
        "flops_of": FULL_ENCODER,
        "gflops_per_second": gflop / secs,
        "backend_sgemm_gflops_per_second": 2 * n**3 / statistics.median(mm) / 1e9,
    }))


if __name__ == "__main__":
    main()
