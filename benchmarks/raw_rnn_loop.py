# Copied unchanged (but for this header) from the reference loops the charnext developers measure
# against (shared/bench/raw_rnn_loop.py in their workspace), so that benchmarks/throughput.py can
# be rerun from this repository alone: it runs this file beside charnext's own training step.

"""The throughput ceiling for training a character RNN with plain PyTorch on this machine.

It times the bare work of one training step -- embedding, nn.RNN/GRU/LSTM, linear head,
cross-entropy, backward, gradient clipping, Adam -- on tensors made once up front, so that
no data loading, logging or bookkeeping is counted. A trainer's end-to-end throughput on the
same shapes, divided by this figure, says how much it loses to overhead (1.0 is the ceiling).

    python ../shared/bench/raw_rnn_loop.py --cell lstm --hidden-size 256 --num-layers 2 \
        --embedding-size 64 --seq-len 128 --batch-size 64 --vocab-size 65

Prints one line: the median characters per second over the timed steps, and the shapes.
Add --precision bf16 to run the forward pass under CPU/GPU bfloat16 autocast.
"""

import argparse
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="lstm")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--steps", type=int, default=20, help="timed steps, after 3 warm-up steps")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    torch.manual_seed(0)
    dev = torch.device(a.device)
    rnn_cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[a.cell]
    emb = torch.nn.Embedding(a.vocab_size, a.embedding_size).to(dev)
    rnn = rnn_cls(a.embedding_size, a.hidden_size, a.num_layers, batch_first=True).to(dev)
    head = torch.nn.Linear(a.hidden_size, a.vocab_size).to(dev)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    x = torch.randint(0, a.vocab_size, (a.batch_size, a.seq_len), device=dev)
    y = torch.randint(0, a.vocab_size, (a.batch_size, a.seq_len), device=dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            out, _ = rnn(emb(x))
            logits = head(out)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, a.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rates.append(a.batch_size * a.seq_len / (time.perf_counter() - t))
    print(
        f"raw {a.cell} loop: {statistics.median(rates):,.0f} chars/s median over {a.steps} steps "
        f"(hidden {a.hidden_size} x {a.num_layers} layers, embedding {a.embedding_size}, "
        f"seq {a.seq_len}, batch {a.batch_size}, vocab {a.vocab_size}, {a.precision}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__})"
    )


if __name__ == "__main__":
    main()
