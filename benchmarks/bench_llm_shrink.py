"""A structurally pruned decoder LLM, back in its own class: parameters, MACs and CPU speed.

A ``LlamaForCausalLM`` (random weights; hidden 256, 4 layers, 8 query heads on 4 key/value
heads, SwiGLU 688, vocabulary 512) is exported on a short example, pruned with
``ns.structured_prune`` (key/value groups with their query heads, SwiGLU units; optionally the
RMSNorm'd hidden width, ``--norm-width``) and put back into a copy of the model with
``ns.to_torch(plan.apply(G), shrink=True, into=model)``: the model's own class, which runs at
any batch and sequence length (the module ``to_torch`` rebuilds from a recorded run takes the
example's shape only). Timed: one forward of a (batch, sequence) of token ids, dense and shrunk
alternated, one torch thread; speed-up = dense time / shrunk time by the fastest and the median
round. MACs per token: every Linear's weight (one multiply-add per weight and token) plus
attention's ``2 x sequence x query width`` per layer (scores and mixing).

``python benchmarks/bench_llm_shrink.py [--amount 0.5] [--batch 8] [--seq 128]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any


def build(seed: int = 0) -> Any:
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    cfg = tf.LlamaConfig(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=512,
        use_cache=False,
    )
    return tf.LlamaForCausalLM(cfg).eval()


def macs_per_token(model: Any, seq: int) -> float:
    """Linear multiply-adds per token plus attention's scores and mixing at ``seq`` tokens."""
    import torch

    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    attn = sum(
        2 * seq * m.q_proj.out_features for n, m in model.named_modules() if n.endswith("self_attn")
    )
    return float(linear + attn)


def time_pair(dense: Any, small: Any, x: Any, rounds: int = 15) -> tuple[list[float], list[float]]:
    import torch

    td, ts = [], []
    with torch.inference_mode():
        for m in (dense, small):
            m(x)  # warm up
        for _ in range(rounds):
            for m, out in ((dense, td), (small, ts)):
                t = time.perf_counter()
                m(x)
                out.append(time.perf_counter() - t)
    return td, ts


def main(argv: list[str] | None = None) -> None:
    import torch

    import netstruct as ns

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amount", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model = build()
    example = torch.randint(0, 512, (1, 16), generator=torch.Generator().manual_seed(1))
    x = torch.randint(0, 512, (args.batch, args.seq), generator=torch.Generator().manual_seed(2))
    n = lambda m: sum(q.numel() for q in m.parameters())  # noqa: E731
    print(
        f"LlamaForCausalLM hidden 256, 4 layers, 8/4 heads, SwiGLU 688; batch {args.batch} x "
        f"{args.seq} tokens, one thread, {args.rounds} rounds"
    )
    print(f"{'variant':<24}{'params':>10}{'MAC ratio':>11}{'speed-up min':>14}{'med':>7}  check")
    for width in (False, True):
        t0 = time.perf_counter()
        G = ns.from_torch(model, example)
        plan = ns.structured_prune(G, amount=args.amount, norm_width=width)
        small = ns.to_torch(plan.apply(G), shrink=True, into=model)
        took = time.perf_counter() - t0
        with torch.inference_mode():
            masked = ns.to_torch(plan.apply(G), into=model)
            diff = float((small(x[:2]).logits - masked(x[:2]).logits).abs().max())
        td, ts = time_pair(model, small, x, args.rounds)
        ratio = macs_per_token(model, args.seq) / macs_per_token(small, args.seq)
        name = f"{args.amount:.0%} heads+SwiGLU" + (" +width" if width else "")
        print(
            f"{name:<24}{n(small):>10}{ratio:>11.2f}{min(td) / min(ts):>14.2f}"
            f"{statistics.median(td) / statistics.median(ts):>7.2f}  masked-shrunk "
            f"{diff:.1e} at another shape; export+plan+shrink {took:.2f} s"
        )
    print(f"{'dense':<24}{n(model):>10}")


if __name__ == "__main__":
    main()
