#!/usr/bin/env python3
"""Streamed epochs over a survey against torchfits-py (the PyTorch library) with torch's
DataLoader, in one run, on the same files with the same workers and stamp size.

    python3 benches/stream_peer.py [--images 200] [--positions 100000]

1. runs `cargo bench -p torchfits-burn --bench stream` (it makes the survey once: RICE_1 images of
   2048x2048, 64x64 stamps; see that file) and takes its epoch 1 (local files) and epoch 2 (from
   the decoded-stamp cache) items/s;
2. in its own virtual environment (torch and torchfits 1.3.1, installed on the first run; set
   TORCHFITS_LOADER_PEER_VENV to choose where) streams the same images with torchfits-py's
   `FitsStagedCutoutIterableDataset` (positions/images cutouts of 64x64 per file from HDU 1,
   files shuffled, a shuffle buffer of 4096) through torch's DataLoader, batches of 64, 2
   workers: two epochs, one pass each;
3. prints items/s of both per epoch, and torchfits over torchfits-py (the target: at least 2x).

torchfits-py draws its own cutout positions in each file (as many per file); torchfits cuts the
catalog's. Both decode the same RICE tiles for a stamp anywhere on an image.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("TORCHFITS_LOADER_PEER_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "torchfits-loader-peer-venv"))
NEEDS = ["torch", "torchfits==1.3.1", "numpy<3"]
TARGET = 2.0
STAMP, BATCH, WORKERS, BUFFER = 64, 64, 2, 4096


def ensure_venv():
    """Re-runs this script in the peer's virtual environment (made and filled on the first run)."""
    if os.environ.get("_TORCHFITS_STREAM_PEER_INNER") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    try:
        subprocess.check_call([py, "-c", "import torch, torchfits"], stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + NEEDS)
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:],
              dict(os.environ, _TORCHFITS_STREAM_PEER_INNER="1"))


def ours(images, positions):
    """torchfits' epoch 1 and epoch 2 items/s, and the survey's folder, from the stream bench."""
    args = ["cargo", "bench", "-p", "torchfits-burn", "--bench", "stream", "--",
            "--images", str(images), "--positions", str(positions)]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    sys.stderr.write(out)
    last = [l for l in out.splitlines() if l.startswith("stream: epoch 1")][-1]
    epoch1 = float(re.search(r"epoch 1 (\d+) items/s local", last).group(1))
    epoch2 = float(re.search(r"epoch 2 (\d+) items/s from cache", last).group(1))
    survey = os.path.join(ROOT, "target", "tmp", "stream-bench", f"survey-{images}-{positions}")
    return epoch1, epoch2, survey


def peer(survey, images, positions):
    """torchfits-py's items/s in two epochs over the survey's images."""
    import torch
    from torch.utils.data import DataLoader
    from torchfits.data.datasets import FitsStagedCutoutIterableDataset

    files = sorted(glob.glob(os.path.join(survey, "img", "*.fits")))
    assert len(files) == images, f"{len(files)} images in {survey}"
    ds = FitsStagedCutoutIterableDataset(files, cutouts_per_file=positions // images, cutout_size=STAMP, hdu=1,
                                         shuffle_files=True, shuffle_buffer_size=BUFFER, seed=1)
    loader = DataLoader(ds, batch_size=BATCH, num_workers=WORKERS, persistent_workers=True)
    rates = []
    for epoch in range(2):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        t = time.perf_counter()
        items = 0
        for batch in loader:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            assert isinstance(x, torch.Tensor) and x.shape[-1] == STAMP, type(x)
            items += x.shape[0]
        rates.append(items / (time.perf_counter() - t))
        print(f"torchfits-py epoch {epoch + 1}: {items} items, {rates[-1]:.0f} items/s", file=sys.stderr)
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--positions", type=int, default=100_000)
    a = ap.parse_args()
    ensure_venv()
    epoch1, epoch2, survey = ours(a.images, a.positions)
    p1, p2 = peer(survey, a.images, a.positions)
    print(f"{'epoch':<8}{'torchfits':>12}{'torchfits-py':>14}{'ratio':>8}")
    for name, us, them in (("1", epoch1, p1), ("2", epoch2, p2)):
        print(f"{name:<8}{us:>12.0f}{them:>14.0f}{us / them:>7.2f}x")
    ok = epoch1 / p1 >= TARGET and epoch2 / p2 >= TARGET
    print(f"stream_peer: torchfits {epoch1:.0f} / {epoch2:.0f} items/s, torchfits-py {p1:.0f} / {p2:.0f} "
          f"(epoch 1 / 2): {epoch1 / p1:.2f}x / {epoch2 / p2:.2f}x (target {TARGET}x: {'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
