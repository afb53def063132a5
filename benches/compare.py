#!/usr/bin/env python3
"""torchfits against its peers on the standard benchmark files, in one run.

    python3 benches/compare.py [--dir bench-data] [--runs 7] [--peers ../shared/peers/peer_bench.py]
                               [--baseline OLD/torchfits]

1. makes the standard files in DIR with the peers' script if they are not there (astropy and python
   fitsio write them; torchfits does not);
2. builds `torchfits` and the Rust baseline (the `fitsio` crate, benches/fitsio_rs.rs);
3. times, one after the other on the same files: python fitsio and astropy (peer_bench.py bench,
   and benches/peer_cases.py for the write and WCS cases), the `fitsio` crate, and `torchfits bench`;
4. prints a Markdown table: each peer's median, torchfits' median and the way that gave it,
   the speed-up over the faster python peer (python fitsio or astropy), over the `fitsio` crate,
   torchfits' time over the raw page-cache read, and the target each case must meet.

With --baseline, a `torchfits` binary of another build (an earlier commit) is timed in the same
run, right after this build, and a second table gives each case's time in both and their ratio:
whether a change made torchfits slower, on this machine, whatever the peers did.

The table, the machine and the versions go to stdout; the raw JSON files stay in DIR/results/.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["img_f32_4096.fits", "img_i16_2048.fits", "img_u16_2048.fits", "img_scaled_i16_2048.fits",
         "rice_i16_4096.fits", "rice_i16_4096_t256.fits", "rice_f32_4096.fits", "table_1M.fits"]

# case id -> (minimum speed-up over the faster python peer, maximum time over raw or None)
TARGETS = {
    "img_f32_4096_full": (None, 1.0),
    "img_i16_2048_full": (None, 1.0),
    "img_u16_2048_full": (3.0, None),
    "img_scaled_i16_2048_full": (2.0, None),
    "rice_i16_4096_full": (2.0, None),
    "rice_i16_4096_t256_full": (2.0, None),
    "rice_f32_4096_full": (2.0, None),
    "hcompress_i16_4096_full": (2.0, None),
    "plio_i32_4096_full": (2.0, None),
    "cutout_f32_256": (4.0, None),
    "cutouts_f32_64x100": (2.0, None),
    "cutout_rice_i16_256": (2.5, None),
    "cutout_rice_i16_t256_256": (2.0, None),
    "header_f32": (10.0, None),
    "open_close": (8.0, None),
    "table_1M_full": (8.0, 2.0),
    "table_1M_2cols": (2.0, None),
    "table_1M_rows_100k": (6.0, None),
    # writing: raw is std::fs::write of the same bytes (torchfits bench times it)
    "write_f32_4096": (None, 1.5),
    "write_rice_i16_4096": (None, None),
    # raw is single-threaded wcslib (torchfits bench times it): at least 1.8x faster
    "wcs_pix2world_16M": (3.0, 1 / 1.8),
}
# one open file shared by threads: the 2-thread case at least this much faster than the 1-thread one
SCALING = {"shared_cutouts_f32_64x100": 1.7, "shared_cutouts_rice_i16_t256_64x100": 1.7}
# these cases must also be at least this much faster than python fitsio
FITSIO_AT_LEAST = {"img_f32_4096_full": 2.0, "img_i16_2048_full": 2.0, "write_rice_i16_4096": 1.5}


def run(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def load(path):
    with open(path) as fh:
        return json.load(fh)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench-data"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "peers", "peer_bench.py"))
    ap.add_argument("--baseline", help="a torchfits binary of another build, timed in the same run")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    out = os.path.join(d, "results")
    if not all(os.path.exists(os.path.join(d, f)) for f in FILES):
        run([sys.executable, a.peers, "make", "--dir", d])
    os.makedirs(out, exist_ok=True)
    run(["cargo", "build", "--release", "-q", "-p", "torchfits-cli", "--features", "gpu"])
    run(["cargo", "bench", "-q", "--bench", "fitsio_rs", "--no-run"])
    peers_json, tf_json, rs_json, pw_json = (
        os.path.join(out, n) for n in ("peers.json", "torchfits.json", "fitsio_rs.json", "peer_cases.json"))
    runs = str(a.runs)
    run([sys.executable, a.peers, "bench", "--dir", d, "--runs", runs, "--json", peers_json], stdout=sys.stderr)
    run([sys.executable, os.path.join(ROOT, "benches", "peer_cases.py"), "--dir", d, "--runs", runs,
         "--json", pw_json], stdout=sys.stderr)
    run(["cargo", "bench", "-q", "--bench", "fitsio_rs", "--", "--dir", d, "--runs", runs, "--json", rs_json],
        stdout=sys.stderr)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    run([os.path.join(target, "release", "torchfits"), "bench", "--dir", d, "--runs", runs, "--json", tf_json],
        stdout=sys.stderr)
    base_json = os.path.join(out, "baseline.json")
    if a.baseline:
        run([a.baseline, "bench", "--dir", d, "--runs", runs, "--json", base_json], stdout=sys.stderr)

    peers_doc = load(peers_json)
    peers, ours, rs = peers_doc["cases"], load(tf_json)["cases"], load(rs_json)["cases"]
    peers.update(load(pw_json)["cases"])
    versions = ", ".join(f"{k} {v}" for k, v in peers_doc.get("versions", {}).items())
    print(f"Machine: {machine()}. Peers: {versions}. Median of {a.runs} runs after a warm-up, ms.\n")
    print("| case | raw | python fitsio | astropy | fitsio (Rust) | torchfits | way | vs faster python peer "
          "| vs fitsio (Rust) | torchfits / raw | target | met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    missed = []
    for cid, (min_speedup, max_raw) in TARGETS.items():
        p = peers.get(cid, {})
        t = (ours.get(cid) or {}).get("torchfits")
        way = (ours.get(cid) or {}).get("way", "")
        r = (rs.get(cid) or {}).get("fitsio-rs")
        fio, ast = p.get("fitsio"), p.get("astropy")
        raw = p.get("raw", (ours.get(cid) or {}).get("raw"))
        faster = min(x for x in (fio, ast) if x is not None) if (fio or ast) else None
        f = lambda x, fmt="{:.3f}": "-" if x is None else fmt.format(x)  # noqa: E731
        speedup = faster / t if (faster and t) else None
        vs_rs = r / t if (r and t) else None
        over_raw = t / raw if (raw and t) else None
        ok = t is not None
        goal = []
        if min_speedup is not None:
            goal.append(f">= {min_speedup:g}x faster peer")
            ok = ok and speedup is not None and speedup >= min_speedup
        if max_raw is not None:
            goal.append(f"<= {max_raw:g}x raw" if max_raw >= 1 else f">= {1 / max_raw:.2g}x faster than raw")
            ok = ok and over_raw is not None and over_raw <= max_raw
        if cid in FITSIO_AT_LEAST:
            need = FITSIO_AT_LEAST[cid]
            goal.append(f">= {need:g}x python fitsio")
            ok = ok and fio is not None and t is not None and fio / t >= need
        if not ok:
            missed.append(cid)
        print(f"| {cid} | {f(raw)} | {f(fio)} | {f(ast)} | {f(r)} | {f(t)} | {way} | {f(speedup, '{:.2f}x')} "
              f"| {f(vs_rs, '{:.2f}x')} | {f(over_raw, '{:.2f}')} | {', '.join(goal)} | {'yes' if ok else 'NO'} |")
    print("\nOne open file shared by threads (the `_1t` and `_2t` cases, same run):\n")
    print("| cases | 1 thread | 2 threads | speed-up | target | met |")
    print("|---|---|---|---|---|---|")
    for stem, need in SCALING.items():
        one = (ours.get(stem + "_1t") or {}).get("torchfits")
        two = (ours.get(stem + "_2t") or {}).get("torchfits")
        up = one / two if (one and two) else None
        ok = up is not None and up >= need
        if not ok:
            missed.append(stem + "_2t")
        shown = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"| {stem}_1t/_2t | {shown(one)} | {shown(two)} | {'-' if up is None else f'{up:.2f}x'} "
              f"| >= {need:g}x | {'yes' if ok else 'NO'} |")
    total = len(TARGETS) + len(SCALING)
    print(f"\ntargets met: {total - len(missed)} of {total}" + (f" (missed: {', '.join(missed)})" if missed else ""))
    others = [cid for cid in ours if cid not in TARGETS]
    if others:
        print("\nCases without a peer or a target (torchfits alone, same run):\n")
        print("| case | torchfits | way |")
        print("|---|---|---|")
        for cid in others:
            t = ours[cid].get("torchfits")
            print(f"| {cid} | {'-' if t is None else f'{t:.3f}'} | {ours[cid].get('way', '')} |")
    if a.baseline:
        base = load(base_json)["cases"]
        print(f"\nThis build against the baseline build ({a.baseline}), same run (baseline / this build: "
              "above 1 is faster now):\n")
        print("| case | baseline | this build | baseline / this build |")
        print("|---|---|---|---|")
        for cid in ours:
            t, b = (ours.get(cid) or {}).get("torchfits"), (base.get(cid) or {}).get("torchfits")
            ratio = "-" if not (t and b) else f"{b / t:.2f}"
            print(f"| {cid} | {'-' if b is None else f'{b:.3f}'} | {'-' if t is None else f'{t:.3f}'} | {ratio} |")


if __name__ == "__main__":
    main()
