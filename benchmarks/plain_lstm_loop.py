# Copied unchanged (but for this header) from the reference loops the charnext developers measure
# against (shared/bench/plain_lstm_loop.py in their workspace), so that the README's comparison
# can be rerun from this repository alone: `python benchmarks/quality.py --table` runs it.

"""Reference: what a plain PyTorch char LSTM loop reaches in a wall-clock budget on a text.

Split: the last 10% of the characters is validation (nanoGPT's shakespeare_char split).
Validation loss: mean nats/char over the whole validation part, state carried through.
usage: plain_lstm_loop.py FILE BUDGET_S [--cell lstm] [--hidden 256] [--layers 2]
       [--seq 64] [--batch 32] [--lr 0.003] [--bf16]
"""
import argparse, math, time
import torch

p = argparse.ArgumentParser()
p.add_argument("file"); p.add_argument("budget", type=float)
p.add_argument("--cell", default="lstm"); p.add_argument("--hidden", type=int, default=256)
p.add_argument("--layers", type=int, default=2); p.add_argument("--seq", type=int, default=64)
p.add_argument("--batch", type=int, default=32); p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--bf16", action="store_true")
a = p.parse_args()
torch.manual_seed(1337)
text = open(a.file, encoding="utf-8").read()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}; V = len(chars)
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data)); tr, va = data[:n], data[n:]
E = 64
class M(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.emb = torch.nn.Embedding(V, E)
        s.rnn = (torch.nn.LSTM if a.cell == "lstm" else torch.nn.GRU)(E, a.hidden, a.layers, batch_first=True)
        s.head = torch.nn.Linear(a.hidden, V)
    def forward(s, x, h=None):
        o, h = s.rnn(s.emb(x), h); return s.head(o), h
m = M(); opt = torch.optim.Adam(m.parameters(), a.lr)
if a.bf16:  # CPUs without native bf16 (no AVX-512 BF16) cannot run oneDNN's bf16 LSTM: fall back to fp32
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m(torch.zeros(2, 4, dtype=torch.long))
    except RuntimeError:
        a.bf16 = False
def batch(src):
    ix = torch.randint(len(src) - a.seq - 1, (a.batch,))
    return torch.stack([src[i:i + a.seq] for i in ix]), torch.stack([src[i + 1:i + a.seq + 1] for i in ix])
@torch.no_grad()
def evalv():
    m.eval(); tot = 0.0; cnt = 0; h = None
    x = va[:-1].unsqueeze(0); y = va[1:].unsqueeze(0)
    for i in range(0, x.shape[1], 1024):
        lo, h = m(x[:, i:i + 1024], h)
        tot += torch.nn.functional.cross_entropy(lo.reshape(-1, V), y[:, i:i + 1024].reshape(-1), reduction="sum").item()
        cnt += y[:, i:i + 1024].numel()
    m.train(); return tot / cnt
t0 = time.perf_counter(); step = 0
while time.perf_counter() - t0 < a.budget:
    x, y = batch(tr)
    frac = (time.perf_counter() - t0) / a.budget
    for g in opt.param_groups: g["lr"] = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        lo, _ = m(x)
    loss = torch.nn.functional.cross_entropy(lo.float().reshape(-1, V), y.reshape(-1))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); step += 1
print(f"plain {a.cell} {a.hidden}x{a.layers} seq {a.seq} batch {a.batch} bf16={a.bf16} budget {a.budget:.0f}s: "
      f"steps {step} val_loss {evalv():.4f} nats/char")
