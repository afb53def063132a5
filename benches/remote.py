#!/usr/bin/env python3
"""torchfits against astropy + fsspec on reads over HTTP range requests, from one server.

    python3 benches/remote.py [--dir bench-data] [--runs 5]

1. makes the standard files in DIR with the peers' script if they are not there;
2. starts nginx (and moto, unused here) on 127.0.0.1 with scripts/remote_servers.py and serves the
   files from it;
3. runs the same reads with astropy (`fits.open(url, use_fsspec=True)`, `.section` for cutouts; fsspec's
   HTTP filesystem with its defaults) and with torchfits (benches/remote_cases.rs, a URL in place of a
   path), each run a fresh open (torchfits' block cache emptied first), the median of N runs after a
   warm-up;
4. counts each library's requests and body bytes per run from nginx's access log (the server's count,
   the same for both), and prints a Markdown table and, last:
   `remote: <K> of <N> cases fewer bytes and requests than astropy+fsspec; 100 cutouts <X>x faster`.

astropy, fsspec and aiohttp live in a virtual environment of their own
(~/.cache/torchfits-remote-bench-venv, made on first use).
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("TORCHFITS_REMOTE_BENCH_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "torchfits-remote-bench-venv"))
NEEDS = ["numpy<3", "astropy>=7", "fsspec>=2024.1", "aiohttp>=3.9", "requests"]
FILES = ["img_f32_4096.fits", "rice_i16_4096_t256.fits", "table_1M.fits"]
CASES = ["header", "cutout_f32_256", "cutout_rice_i16_t256_256", "cutouts_f32_64x100", "table_1M_2cols"]


def ensure_venv():
    if os.environ.get("_TORCHFITS_REMOTE_INNER") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = [py, "-c", "import numpy, astropy, fsspec, aiohttp"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + NEEDS)
    os.execve(py, [py] + sys.argv, dict(os.environ, _TORCHFITS_REMOTE_INNER="1"))


def load_servers():
    spec = importlib.util.spec_from_file_location("remote_servers", os.path.join(ROOT, "scripts", "remote_servers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cut():
    return (slice(1500, 1756), slice(2100, 2356))


def small_cutouts():
    return [(slice(y, y + 64), slice(x, x + 64))
            for y, x in (((k * 977) % 4032, (k * 1543) % 4032) for k in range(100))]


def astropy_case(base, case):
    """One run of `case` with astropy over fsspec."""
    from astropy.io import fits
    import numpy as np

    url = lambda name: f"{base}/{name}"  # noqa: E731
    if case == "header":
        with fits.open(url("img_f32_4096.fits"), use_fsspec=True) as h:
            h[0].header.tostring()
    elif case == "cutout_f32_256":
        with fits.open(url("img_f32_4096.fits"), use_fsspec=True) as h:
            np.asarray(h[0].section[cut()])
    elif case == "cutout_rice_i16_t256_256":
        with fits.open(url("rice_i16_4096_t256.fits"), use_fsspec=True) as h:
            np.asarray(h[1].section[cut()])
    elif case == "cutouts_f32_64x100":
        with fits.open(url("img_f32_4096.fits"), use_fsspec=True) as h:
            section = h[0].section
            for s in small_cutouts():
                np.asarray(section[s])
    elif case == "table_1M_2cols":
        with fits.open(url("table_1M.fits"), use_fsspec=True) as h:
            data = h[1].data
            np.array(data["ra"]), np.array(data["flux"])
    else:
        raise ValueError(case)


def counted(servers, runs, one_run):
    """Median ms of `runs` runs after a warm-up, and the requests and bytes per run nginx served."""
    one_run()
    before = len(servers.access_log())
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        one_run()
        ms.append((time.perf_counter() - t0) * 1e3)
    log = servers.access_log()[before:]
    return statistics.median(ms), len(log) / runs, sum(line[2] for line in log) / runs


def torchfits_runner(target):
    """The remote_cases bench binary (built by `cargo bench --no-run`)."""
    out = subprocess.run(["cargo", "bench", "-q", "--bench", "remote_cases", "--no-run", "--message-format", "json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "remote_cases" \
                and msg.get("executable"):
            return msg["executable"]
    raise RuntimeError("cargo did not report the remote_cases binary")


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench-data"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "peers", "peer_bench.py"))
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    if not all(os.path.exists(os.path.join(d, f)) for f in FILES):
        subprocess.run([sys.executable, a.peers, "make", "--dir", d], check=True,
                       env={k: v for k, v in os.environ.items() if k != "_TORCHFITS_PEERS_INNER"})
    print("+ cargo bench --bench remote_cases --no-run", file=sys.stderr, flush=True)
    runner = torchfits_runner(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    servers = load_servers().Servers()
    try:
        served = os.path.join(servers.root, "bench")
        os.makedirs(served)
        for f in FILES:
            shutil.copy(os.path.join(d, f), os.path.join(served, f))
        base = f"{servers.http_url}/bench"
        rows = {}
        for case in CASES:
            ast = counted(servers, a.runs, lambda: astropy_case(base, case))

            def torchfits_run(case=case):
                out = subprocess.run([runner, "--base", base, "--case", case, "--runs", str(a.runs)],
                                     check=True, capture_output=True, text=True).stdout
                return json.loads(out.strip().splitlines()[-1])

            before = len(servers.access_log())
            ours = torchfits_run()
            log = servers.access_log()[before:]
            # the runner's own runs: a warm-up and `runs` timed, each from an empty cache
            per = a.runs + 1
            tf = (ours["ms"], len(log) / per, sum(line[2] for line in log) / per)
            rows[case] = (ast, tf)
            print(f"{case}: astropy {ast[0]:.1f} ms {ast[1]:.1f} req {ast[2] / 1e6:.2f} MB; "
                  f"torchfits {tf[0]:.1f} ms {tf[1]:.1f} req {tf[2] / 1e6:.2f} MB "
                  f"(its own count: {ours['requests']:.1f} req {ours['bytes'] / 1e6:.2f} MB)", file=sys.stderr)
    finally:
        servers.stop()

    import astropy
    import fsspec
    print(f"Machine: {machine()}. astropy {astropy.__version__}, fsspec {fsspec.__version__}, nginx on 127.0.0.1; "
          f"median of {a.runs} runs after a warm-up, each a fresh open; requests and bytes per run from nginx's log.\n")
    print("| case | astropy+fsspec ms | requests | MB | torchfits ms | requests | MB | faster | fewer bytes and requests |")
    print("|---|---|---|---|---|---|---|---|---|")
    wins = 0
    for case, (ast, tf) in rows.items():
        fewer = tf[1] < ast[1] and tf[2] < ast[2]
        wins += fewer
        print(f"| {case} | {ast[0]:.1f} | {ast[1]:.1f} | {ast[2] / 1e6:.2f} | {tf[0]:.1f} | {tf[1]:.1f} | "
              f"{tf[2] / 1e6:.2f} | {ast[0] / tf[0]:.1f}x | {'yes' if fewer else 'no'} |")
    ast, tf = rows["cutouts_f32_64x100"]
    print(f"\nremote: {wins} of {len(rows)} cases fewer bytes and requests than astropy+fsspec; "
          f"100 cutouts {ast[0] / tf[0]:.1f}x faster")


if __name__ == "__main__":
    ensure_venv()
    main()
