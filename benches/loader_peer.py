#!/usr/bin/env python3
"""The catalog-stamp loader against torchfits-py (the PyTorch library) with torch's DataLoader, in
one run, on the same stamps of the same file with the same workers.

    python3 benches/loader_peer.py [--dir bench-data] [--runs 5] [--cli target/release/torchfits]

1. runs `torchfits bench --only loader_catalog` (a build with the `gpu` feature): 20000 stamps of
   64x64 from `img_f32_4096.fits` around catalog positions, `CatalogCutoutDataset` + `StampBatcher`
   through burn's DataLoader, batches of 64, 1 and 2 workers; it writes the stamps' first pixels
   to DIR/loader_stamps.fits;
2. in its own virtual environment (torch and torchfits 1.3.1, installed on the first run; set
   TORCHFITS_LOADER_PEER_VENV to choose where) reads the same stamps with torchfits-py: a torch
   `Dataset` holding one `open_subset_reader` per worker process (opened in the worker), items
   `[1, 64, 64]` float32 tensors, through torch's `DataLoader`, batches of 64, 1 and 2 workers;
   one pass over every stamp a run, the median of `--runs` runs after a warm-up pass;
3. prints items/s of both and torchfits over torchfits-py (the target: at least 2x).

The torchfits items carry more than the peer's: an edge-mask plane beside the pixels, the labels
and indices a training loop needs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("TORCHFITS_LOADER_PEER_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "torchfits-loader-peer-venv"))
NEEDS = ["torch", "torchfits==1.3.1", "numpy<3"]
TARGET = 2.0
SIDE, BATCH = 64, 64


def ensure_venv():
    """Re-runs this script in the peer's virtual environment (made and filled on the first run)."""
    if os.environ.get("_TORCHFITS_LOADER_PEER_INNER") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    try:
        subprocess.check_call([py, "-c", "import torch, torchfits"], stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + NEEDS)
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:],
              dict(os.environ, _TORCHFITS_LOADER_PEER_INNER="1"))


def ours(cli, d, runs):
    """torchfits' items/s through burn's loader with 1 and 2 workers, from `torchfits bench`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "loader.json")
        subprocess.run([cli, "bench", "--dir", d, "--runs", str(runs), "--only", "loader_catalog", "--json", out],
                       check=True, stdout=sys.stderr)
        with open(out) as fh:
            cases = json.load(fh)["cases"]
    return {w: cases[f"loader_catalog_{w}w"] for w in (1, 2)}


def peer(d, runs, workers, items):
    """torchfits-py through torch's DataLoader: items/s (median of `runs` passes after a warm-up)."""
    import torch
    import torchfits as tf
    from torch.utils.data import DataLoader, Dataset

    stamps = tf.read(os.path.join(d, "loader_stamps.fits"), 1)
    xs, ys = stamps["X"].tolist(), stamps["Y"].tolist()
    image = os.path.join(d, "img_f32_4096.fits")

    class Stamps(Dataset):
        """The stamps, one subset reader per worker process (opened in the worker, on first use)."""

        def __init__(self):
            self.reader = None

        def __len__(self):
            return len(xs)

        def __getitem__(self, i):
            if self.reader is None:
                self.reader = tf.open_subset_reader(image, 0)
            x, y = xs[i], ys[i]
            return self.reader.read_subset(x, y, x + SIDE, y + SIDE).unsqueeze(0)

    loader = DataLoader(Stamps(), batch_size=BATCH, num_workers=workers, persistent_workers=True)
    rates = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        n = 0
        for batch in loader:
            assert batch.shape[1:] == (1, SIDE, SIDE) and batch.dtype == torch.float32
            n += batch.shape[0]
        assert n == items, f"the peer gave {n} of {items} stamps"
        rates.append(items / (time.perf_counter() - t0))
    return statistics.median(rates[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench-data"))
    ap.add_argument("--runs", type=int, default=5)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--cli", default=os.path.join(target, "release", "torchfits"),
                    help="a torchfits binary built with the gpu feature")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    import torch
    import torchfits as tf
    torch.set_num_threads(1)
    us = ours(a.cli, d, a.runs)
    items = len(tf.read(os.path.join(d, "loader_stamps.fits"), 1)["X"])
    print(f"{items} stamps of {SIDE}x{SIDE} float32 from img_f32_4096.fits, batches of {BATCH}, "
          f"{os.cpu_count()} cores; median of {a.runs} passes after a warm-up; torch {torch.__version__}, "
          f"torchfits-py {tf.__version__}\n")
    print("| workers | torchfits (CatalogCutoutDataset + burn DataLoader), items/s "
          "| torchfits-py + torch DataLoader, items/s | torchfits / torchfits-py | target | met |")
    print("|---|---|---|---|---|---|")
    missed = False
    for w in (1, 2):
        mine = items / (us[w]["torchfits"] / 1e3)
        theirs = peer(d, a.runs, w, items)
        ratio = mine / theirs
        ok = ratio >= TARGET
        missed |= not ok
        print(f"| {w} | {mine:.0f} | {theirs:.0f} | {ratio:.2f}x | >= {TARGET:g}x | {'yes' if ok else 'NO'} |")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    ensure_venv()
    main()
