#!/usr/bin/env python3
"""The benchmark gate fails on a slow result and passes on a fast one: benches/compare.py --gate
fed saved results (no measuring), one case slower than its target, then every case fast enough."""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(folder, name, cases):
    with open(os.path.join(folder, name + ".json"), "w") as fh:
        json.dump({"cases": cases}, fh)


def gate(torchfits_ms, loader_ms=1.0):
    """Runs the gate on results where torchfits took `torchfits_ms` on cutout_f32_256 (peers: python
    fitsio 1.0 ms, astropy 2.0 ms; target: 4x the faster peer) and 0.05 ms on header_f32, and each
    loader case `loader_ms` against 1.0 ms of bare reads (target: at least 0.7x the bare rate)."""
    loader = {cid: {"torchfits": loader_ms, "raw": 1.0, "way": "DataLoader 1 worker"}
              for cid in ("loader_catalog_1w", "loader_survey_1w", "loader_imaging_1w", "loader_spectra_1w")}
    with tempfile.TemporaryDirectory() as folder:
        write(folder, "peers", {"cutout_f32_256": {"fitsio": 1.0, "astropy": 2.0},
                                "header_f32": {"fitsio": 1.0, "astropy": 1.5}})
        write(folder, "torchfits", {"cutout_f32_256": {"torchfits": torchfits_ms, "way": "pread"},
                                    "header_f32": {"torchfits": 0.05, "way": "open+header"}, **loader})
        write(folder, "peers_memory", {"cutout_f32_256": {"fitsio": 0.5, "astropy": 0.6}})
        write(folder, "torchfits_memory", {"cutout_f32_256": {"torchfits": 0.3}})
        return subprocess.run([sys.executable, os.path.join(ROOT, "benches", "compare.py"), "--gate",
                               "--results", folder], capture_output=True, text=True)


def main():
    slow = gate(0.5)  # 2x the faster peer: below the 4x target
    assert slow.returncode == 1, f"a slow result passed the gate:\n{slow.stdout}{slow.stderr}"
    assert "| cutout_f32_256 |" in slow.stdout and "| NO |" in slow.stdout, slow.stdout
    assert "bench gate: FAILED, missed: cutout_f32_256" in slow.stdout, slow.stdout
    fast = gate(0.1)  # 10x
    assert fast.returncode == 0, f"a fast result failed the gate:\n{fast.stdout}{fast.stderr}"
    assert "bench gate: passed" in fast.stdout and "| NO |" not in fast.stdout, fast.stdout
    slow_loader = gate(0.1, loader_ms=1.6)  # the loader at 0.63x the bare rate
    assert slow_loader.returncode == 1, f"a slow loader passed the gate:\n{slow_loader.stdout}"
    assert "bench gate: FAILED, missed: loader_catalog_1w" in slow_loader.stdout, slow_loader.stdout
    print("test_compare_gate: a slow result fails the gate (a read case, the loader), a fast one passes")


if __name__ == "__main__":
    main()
