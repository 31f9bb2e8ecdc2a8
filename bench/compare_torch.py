#!/usr/bin/env python3
"""The PULSE teacher and student in PyTorch, timed like `pulsekd bench`.

Optional comparison for users who have PyTorch (never a build or test dependency):

    pulsekd bench --threads 1 --json > ours.json
    python3 bench/compare_torch.py --threads 1 --ours ours.json

Training: batch 256 windows of [1, 4, 256], Adam (lr 1e-4), L1 loss, 2 warm-up steps, median of
--steps (>= 10) timed steps (zero_grad + forward + loss + backward + step), train mode (dropout
on). Batch-1 inference: eval mode, no_grad, 5 warm-up runs, median of --infer-runs.
With --ours, prints ours/PyTorch for training windows/s and PyTorch/ours for latency (both:
> 1 means pulsekd is faster).

The models follow ../shared/docs/PULSE.md sections 2-3 (and models/pulse.cpp): row-shared
Conv2d kernels (1,5) dilation 2 / (1,3) dilation 2,3,4 with "same" padding and ReLU,
AvgPool2d((1,p), ceil_mode=True), Dropout; teacher: MultiheadAttention(16, 4, batch_first)
with the PPG row's 64 channels as queries and the 3 ACC rows' 192 channels as keys/values,
LayerNorm(16), Linear(1024, 32), Linear(32, 1); student: Conv2d(32, 32, (4, 1)), Linear(256, 32),
Linear(32, 1).
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - optional tool
    sys.exit("compare_torch.py needs PyTorch (e.g. Debian's python3-torch); it is optional")


def conv_block(cin, cout, k, dil, convs=3):
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, (1, k), dilation=(1, dil), padding=(0, dil * (k - 1) // 2)),
                   nn.ReLU()]
    return layers


class Teacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_block(1, 32, 5, 2), nn.AvgPool2d((1, 4), ceil_mode=True), nn.Dropout(0.5),
            *conv_block(32, 48, 5, 2), nn.AvgPool2d((1, 2), ceil_mode=True), nn.Dropout(0.5),
            *conv_block(48, 64, 5, 2), nn.AvgPool2d((1, 2), ceil_mode=True), nn.Dropout(0.5))
        self.multihead_attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.layer_norm = nn.LayerNorm(16)
        self.dense = nn.Linear(1024, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):  # x [B, 1, 4, 256]
        h = self.features(x)  # [B, 64, 4, 16]
        b, c, _, t = h.shape
        q = h[:, :, 0, :]  # [B, 64 tokens, 16]
        kv = h[:, :, 1:, :].permute(0, 2, 1, 3).reshape(b, 3 * c, t)  # [B, 192 tokens, 16]
        a, _ = self.multihead_attn(q, kv, kv, need_weights=False)
        a = self.layer_norm(a)
        return self.out(self.dense(a.flatten(1))).squeeze(1)


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_block(1, 16, 3, 2), nn.AvgPool2d((1, 4), ceil_mode=True), nn.Dropout(0.1),
            *conv_block(16, 24, 3, 3), nn.AvgPool2d((1, 4), ceil_mode=True), nn.Dropout(0.1),
            *conv_block(24, 32, 3, 4), nn.AvgPool2d((1, 2), ceil_mode=True), nn.Dropout(0.1))
        self.conv4 = nn.Conv2d(32, 32, (4, 1))
        self.dense = nn.Linear(256, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        h = self.conv4(self.features(x))  # [B, 32, 1, 8]
        return self.out(self.dense(h.flatten(1))).squeeze(1)


def bench(model, batch, steps, infer_runs, clock):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(batch, 1, 4, 256, generator=g)
    y = 60 + 100 * torch.rand(batch, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.L1Loss()
    model.train()
    times = []
    for s in range(steps + 2):  # 2 warm-up steps
        t0 = clock()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if s >= 2:
            times.append(clock() - t0)
    step = statistics.median(times)
    model.eval()
    x1 = torch.randn(1, 1, 4, 256, generator=g)
    lat = []
    with torch.no_grad():
        for i in range(infer_runs + 5):
            t0 = clock()
            model(x1)
            if i >= 5:
                lat.append(clock() - t0)
    return {"train_windows_per_s": batch / step, "train_step_ms": step * 1e3,
            "infer_b1_ms": statistics.median(lat) * 1e3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (>= 10)")
    ap.add_argument("--infer-runs", type=int, default=100)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: CPU time of the process (as `pulsekd bench --clock cpu`)")
    ap.add_argument("--ours", help="JSON from `pulsekd bench --json` ('-' = stdin)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.steps < 10:
        ap.error("--steps must be >= 10")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    res = {"threads": a.threads, "batch": a.batch, "steps": a.steps, "clock": a.clock, "torch": torch.__version__,
           "teacher": bench(Teacher(), a.batch, a.steps, a.infer_runs, clock),
           "student": bench(Student(), a.batch, a.steps, a.infer_runs, clock)}
    ours = None
    if a.ours:
        ours = json.load(sys.stdin if a.ours == "-" else open(a.ours))
        if ours.get("threads") != a.threads:
            print(f"warning: ours ran with {ours.get('threads')} threads, PyTorch with {a.threads}", file=sys.stderr)
        if ours.get("clock", "wall") != a.clock:
            print(f"warning: ours was timed on the {ours.get('clock', 'wall')} clock, PyTorch on the {a.clock} clock",
                  file=sys.stderr)
        for arch in ("teacher", "student"):
            o, t = ours[arch], res[arch]
            res[arch]["ours_over_torch_train"] = o["train_windows_per_s"] / t["train_windows_per_s"]
            res[arch]["torch_over_ours_infer_b1"] = t["infer_b1_ms"] / o["infer_b1_ms"]
    if a.json:
        print(json.dumps(res))
        return
    print(f"PyTorch {torch.__version__}, {a.threads} thread(s), batch {a.batch}, median of {a.steps} steps, {a.clock} clock")
    for arch in ("teacher", "student"):
        t = res[arch]
        line = f"{arch:8s} train {t['train_windows_per_s']:8.1f} windows/s   batch-1 inference {t['infer_b1_ms']:.3f} ms"
        if ours:
            o = ours[arch]
            line += (f"   | pulsekd {o['train_windows_per_s']:8.1f} windows/s ({t['ours_over_torch_train']:.2f}x), "
                     f"{o['infer_b1_ms']:.3f} ms ({t['torch_over_ours_infer_b1']:.2f}x faster)")
        print(line)


if __name__ == "__main__":
    main()
