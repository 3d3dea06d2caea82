#!/usr/bin/env python3
"""Portico beside x11vnc, TigerVNC and an ffmpeg x11grab + libx264 reference, on the same
Xvfb workloads, in one run (`make compare`).

Every system shares a private source Xvfb running one workload; its viewer runs on a second
Xvfb of the same size (Portico's own window, TigerVNC's vncviewer for both VNC servers) and
connects through a byte-counting TCP proxy on loopback. Per system and workload, over a
window of SECS seconds that starts 4 s after connecting:

- bytes server -> viewer (the proxy; for ffmpeg the bytes of its MPEG-TS output), in the
  window and from connecting to the window's end (the first picture included),
- server CPU seconds (/proc of the server process),
- frames delivered: picture updates drawn on the viewer's display, counted the same way for
  every viewer (bursts of X DAMAGE, `frame_count`); ffmpeg: frames encoded,
- PSNR during motion: three times after the window (grabbing costs CPU), the viewer's screen
  against the source frames grabbed at 30 fps from ~0.4 s before to ~0.5 s after it, best
  match (quality in motion, latency allowed for); the best of the three (a miss is a
  timing miss of the sampling, not picture quality),
- settled PSNR: the workload is frozen (SIGSTOP), and 2 s later both screens are compared,
- Portico only: capture -> applied latency (median of its per-update stats) and its own
  count of picture updates applied per second (`viewer_fps`, over the whole session).

Writes DIR/compare-WxH.json and prints a markdown table with Portico/peer ratios.
Usage: compare.py --bin target/release --size 1280x720 --secs 10 [--out DIR]
       compare.py --render target/compare/compare-1280x720.json   (the tables of a saved run)
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEMS = ["x11vnc", "tigervnc", "portico", "ffmpeg"]
WORKLOADS = ["idle", "scroll", "typing", "drag", "video"]
TYPED = "the quick brown fox jumps over the lazy dog; portico types like a person does. " * 4


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    """One system on one workload: processes started, torn down on close()."""

    def __init__(self, args, tmp):
        self.args, self.tmp, self.procs = args, tmp, []
        self.w, self.h = map(int, args.size.split("x"))

    def spawn(self, cmd, env=None, **kw):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(cmd, env=e, stdout=kw.pop("stdout", subprocess.DEVNULL),
                             stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        self.procs.append(p)
        return p

    def xvfb(self):
        for _ in range(50):
            n = random.randint(300, 2000)
            if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
                self.spawn(["Xvfb", f":{n}", "-screen", "0", f"{self.args.size}x24", "-nolisten", "tcp", "-noreset"])
                for _ in range(100):
                    if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                        return f":{n}"
                    time.sleep(0.05)
        sys.exit("compare: cannot start Xvfb")

    def workload(self, kind, disp, clip):
        env = {"DISPLAY": disp}
        term = ["xterm", "-geometry", "100x40+0+0"]
        if kind == "idle":
            return [self.spawn(term + ["-e", "sh", "-c", "ls -l /usr/bin | head -40; sleep 600"], env)]
        if kind == "scroll":
            loop = 'while :; do ls -l /usr/bin; done | while read -r l; do echo "$l"; sleep 0.025; done'
            return [self.spawn(term + ["-e", "sh", "-c", loop], env)]
        if kind == "typing":
            # The terminal echoes what is typed (about 8 characters a second); no window
            # manager, so focus follows the pointer into the xterm.
            t = self.spawn(term + ["-e", "sh", "-c", "ls -l /usr/bin | head -30; cat >/dev/null"], env)
            time.sleep(0.8)
            subprocess.run(["xdotool", "mousemove", "200", "200"], env={**os.environ, **env}, check=False)
            x = self.spawn(["xdotool", "type", "--delay", "120", TYPED], env)
            return [t, x]
        if kind == "drag":
            t = self.spawn(term[:1] + ["-T", "dragme", "-geometry", "80x24+0+0", "-e", "sh", "-c",
                                       "ls -l /usr/bin | head -24; sleep 600"], env)
            time.sleep(0.8)
            script = ("w=$(xdotool search --sync --name dragme | head -1); i=0; "
                      f"while :; do i=$(( (i + 8) % {max(self.w - 500, 8)} )); "
                      "xdotool windowmove \"$w\" $i $(( i / 3 )); sleep 0.033; done")
            d = self.spawn(["bash", "-c", script], env)
            return [t, d]
        if kind == "video":
            return [self.spawn(["ffplay", "-loglevel", "error", "-threads", "1", "-fs", "-loop", "0",
                                "-an", clip], env)]
        raise ValueError(kind)

    def close(self):
        for p in reversed(self.procs):
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def grab(disp, size, out):
    # Without the pointer: each viewer shows the remote pointer its own way (a local X
    # cursor for VNC, an overlay Portico leaves out with --no-cursor).
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-y", "-f", "x11grab", "-draw_mouse", "0",
                             "-video_size", size, "-i", disp, "-frames:v", "1", out])


def psnr(a, b):
    r = subprocess.run(["ffmpeg", "-i", a, "-i", b, "-lavfi", "psnr", "-f", "null", "-"],
                       capture_output=True, text=True)
    m = re.search(r"average:(\S+)", r.stderr)
    if not m:
        return None
    v = m.group(1)
    return 99.0 if v == "inf" else round(float(v), 1)


def both(run, src, view, name):
    a, b = f"{run.tmp}/{name}-src.png", f"{run.tmp}/{name}-view.png"
    ps = [grab(src, run.args.size, a), grab(view, run.args.size, b)]
    for p in ps:
        p.wait()
    return psnr(a, b)


def in_motion(run, src, view, name):
    """Grabs the viewer's screen once while the source is grabbed at 30 fps around it (from
    about 0.4 s before to 0.5 s after); returns (source frames, viewer picture) for
    `best_psnr`, computed after the run so it costs nothing while measuring."""
    pat = f"{run.tmp}/{name}-src-%02d.bmp"
    p = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-y", "-f", "x11grab", "-draw_mouse", "0",
                          "-framerate", "30", "-video_size", run.args.size, "-i", src, "-t", "1.0", pat])
    deadline = time.time() + 3
    while not os.path.exists(pat % 12) and time.time() < deadline:
        time.sleep(0.01)
    b = f"{run.tmp}/{name}-view.bmp"
    grab(view, run.args.size, b).wait()
    p.wait()
    return [pat % i for i in range(1, 30) if os.path.exists(pat % i)], b


def best_psnr(sample):
    """The best match of a viewer picture among source frames: picture quality during
    motion with the delivery latency allowed for (the same allowance for every system)."""
    frames, view = sample
    scores = [x for x in (psnr(f, view) for f in frames) if x is not None]
    return max(scores) if scores else None


def one(args, system, work, clip):
    tmp = tempfile.mkdtemp(prefix="cmp-")
    run = Run(args, tmp)
    res = {"system": system, "workload": work, "size": args.size}
    if args.keep:
        res["dir"] = tmp
    try:
        src, view = run.xvfb(), run.xvfb()
        time.sleep(0.5)
        wl = run.workload(work, src, clip)
        time.sleep(1)
        port, proxy = free_port(), free_port()
        secs = args.secs
        bytes_file = f"{tmp}/bytes.json"
        if system == "ffmpeg":
            prog = f"{tmp}/progress"
            server = run.spawn(["ffmpeg", "-loglevel", "error", "-f", "x11grab", "-framerate", "30", "-video_size",
                                args.size, "-i", src, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                                "-progress", prog, "-f", "mpegts", f"{tmp}/out.ts"])
            time.sleep(2)
            frames0, bytes0, c0 = last_frame(prog), os.path.getsize(f"{tmp}/out.ts"), cpu_of(server.pid)
            time.sleep(secs)
            frames1, bytes1, c1 = last_frame(prog), os.path.getsize(f"{tmp}/out.ts"), cpu_of(server.pid)
            res.update(bytes=bytes1 - bytes0, cpu_s=round(c1 - c0, 2), frames=frames1 - frames0)
            return res
        if system == "x11vnc":
            server = run.spawn(["x11vnc", "-display", src, "-rfbport", str(port), "-nopw", "-forever", "-shared", "-quiet"])
        elif system == "tigervnc":
            server = run.spawn(["X0tigervnc", "-display", src, "-rfbport", str(port), "-SecurityTypes", "None"])
        else:
            hd, vd = f"{tmp}/host", f"{tmp}/viewer"
            os.makedirs(hd)
            out = subprocess.run([f"{args.bin}/portico", "--data", vd, "id"], capture_output=True, text=True).stdout
            vp = re.search(r"PeerId:\s*(\S+)", out).group(1)
            with open(f"{hd}/host.toml", "w") as f:
                f.write(f'[[acl]]\nprincipal = "peer:{vp}"\npermissions = ["view"]\n')
            hlog = open(f"{hd}/out", "w")
            server = run.spawn([f"{args.bin}/portico", "--data", hd, "host", "--config", f"{hd}/host.toml",
                                "--listen", f"127.0.0.1:{port}", "--no-mdns", "--console", "off"],
                               {"DISPLAY": src}, stdout=hlog)
        time.sleep(1.5)
        run.spawn([sys.executable, f"{HERE}/count_proxy.py", str(proxy), str(port), bytes_file],
                  {"COUNT_PROXY_LOG": f"{tmp}/proxy.log"} if args.keep else None)
        time.sleep(0.5)
        if system == "portico":
            peer = None
            for _ in range(50):
                m = re.search(r"PeerId:\s*(\S+)", open(f"{hd}/out").read())
                if m:
                    peer = m.group(1)
                    break
                time.sleep(0.1)
            viewer = run.spawn([f"{args.bin}/portico", "--data", vd, "connect",
                                f"/ip4/127.0.0.1/tcp/{proxy}/p2p/{peer}", "--duration", str(secs + 45), "--no-cursor",
                                "--stats", f"{tmp}/stats.json"] + (["--bitrate", str(args.bitrate)] if args.bitrate else []),
                               {"DISPLAY": view})
        else:
            viewer = run.spawn(["xtigervncviewer", "-Shared", "-RemoteResize=0", "-FullScreen", "-ViewOnly",
                                f"127.0.0.1::{proxy}"], {"DISPLAY": view})
        # 4 s: TigerVNC's viewer shows a fading "Press F8" hint for its first seconds.
        time.sleep(4)
        counter = run.spawn([f"{args.bin}/frame_count", "--seconds", str(secs)], {"DISPLAY": view},
                            stdout=subprocess.PIPE)
        c0, b0 = cpu_of(server.pid), json.load(open(bytes_file))["to_client"]
        time.sleep(secs)
        c1, b1 = cpu_of(server.pid), json.load(open(bytes_file))["to_client"]
        frames = json.loads(counter.communicate(timeout=10)[0])["frames"]
        # After the measured window (grabbing costs CPU): three samples in motion.
        samples = []
        for k in range(3):
            samples.append(in_motion(run, src, view, f"m{k}"))
            time.sleep(0.3)
        for p in wl:
            try:
                p.send_signal(signal.SIGSTOP)
            except ProcessLookupError:
                pass
        time.sleep(2.5)
        settled = both(run, src, view, "settled")
        motion = [best_psnr(x) for x in samples]
        res.update(bytes=b1 - b0, bytes_with_connect=b1, cpu_s=round(c1 - c0, 2), frames=frames,
                   psnr_motion=max((m for m in motion if m is not None), default=None),
                   psnr_settled=settled)
        if system == "portico":
            try:
                viewer.wait(timeout=60)
                st = json.load(open(f"{tmp}/stats.json"))
                lat = sorted(f["latency_ms"] for f in st["frame_stats"] if f["at_ms"] > 3000)
                res["latency_ms_p50"] = round(lat[len(lat) // 2], 1) if lat else None
                res["viewer_fps"] = round(st["fps"], 1)
            except (subprocess.TimeoutExpired, OSError, ValueError, KeyError):
                res["latency_ms_p50"] = None
        return res
    finally:
        run.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def last_frame(progress):
    try:
        found = re.findall(r"^frame=(\d+)", open(progress).read(), re.M)
        return int(found[-1]) if found else 0
    except OSError:
        return 0


def human(n):
    for unit in ["B", "KB", "MB", "GB"]:
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return str(n)


def table(results, secs):
    lines = ["| workload | system | bytes | bytes with connect | CPU-s | frames | PSNR motion | PSNR settled | latency p50 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        f = lambda k, fmt="{}": fmt.format(r[k]) if r.get(k) is not None else "—"
        total = human(r["bytes_with_connect"]) if "bytes_with_connect" in r else "—"
        lines.append(f"| {r['workload']} | {r['system']} | {human(r['bytes'])} | {total} | {r['cpu_s']:.2f} | {r['frames']} "
                     f"| {f('psnr_motion')} | {f('psnr_settled')} | {f('latency_ms_p50', '{} ms')} |")
    lines += ["", "Portico / peer ratios (below 1: Portico uses less):", "",
              "| workload | bytes / x11vnc | bytes / TigerVNC | with connect / better VNC | CPU / x11vnc | CPU / TigerVNC | bytes / ffmpeg |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    by = {(r["workload"], r["system"]): r for r in results}
    for w in dict.fromkeys(r["workload"] for r in results):
        p = by.get((w, "portico"))
        if not p:
            continue

        def ratio(sys_, key):
            o = by.get((w, sys_))
            if not o or not o.get(key):
                return "—"
            return f"{p[key] / o[key]:.2f}"

        # Against the VNC server that needed fewer bytes from connecting on (the first
        # picture included): the fair figure for a still screen, where the window is ~0.
        vnc = [by[(w, v)]["bytes_with_connect"] for v in ("x11vnc", "tigervnc")
               if (w, v) in by and by[(w, v)].get("bytes_with_connect")]
        connect = f"{p['bytes_with_connect'] / min(vnc):.2f}" if vnc and p.get("bytes_with_connect") else "—"
        lines.append(f"| {w} | {ratio('x11vnc', 'bytes')} | {ratio('tigervnc', 'bytes')} | {connect} "
                     f"| {ratio('x11vnc', 'cpu_s')} | {ratio('tigervnc', 'cpu_s')} | {ratio('ffmpeg', 'bytes')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--out", default="target/compare")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--keep", action="store_true", help="keep each run's grabs and logs (printed)")
    ap.add_argument("--bitrate", type=int, help="Portico's target video bitrate, kbit/s (default: the host's)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--render", metavar="JSON", help="print the tables of a saved run and exit")
    args = ap.parse_args()
    if args.render:
        saved = json.load(open(args.render))
        print(f"compare at {saved['size']}, {saved['secs']:g} s per run, {saved['date']} ({args.render})\n")
        print(table(saved["results"], saved["secs"]))
        return
    for tool in ["Xvfb", "x11vnc", "X0tigervnc", "xtigervncviewer", "xterm", "xdotool", "ffmpeg", "ffplay"]:
        if shutil.which(tool) is None:
            sys.exit(f"compare: {tool} is missing; run `make compare` (it installs the packages)")
    for b in ["portico", "frame_count"]:
        if not os.path.exists(f"{args.bin}/{b}"):
            sys.exit(f"compare: {args.bin}/{b} is missing; build with `cargo build --release -p portico -p portico-simulations`")
    os.makedirs(args.out, exist_ok=True)
    clipdir = tempfile.mkdtemp(prefix="cmp-clip-")
    clip = f"{clipdir}/clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate=30",
                    "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", clip], check=True)
    results = []
    try:
        for w in args.workloads.split(","):
            for s in args.systems.split(","):
                r = one(args, s, w, clip)
                print(json.dumps(r), file=sys.stderr, flush=True)
                results.append(r)
    finally:
        shutil.rmtree(clipdir, ignore_errors=True)
    path = f"{args.out}/compare-{args.size}.json"
    with open(path, "w") as f:
        json.dump({"size": args.size, "secs": args.secs, "date": time.strftime("%Y-%m-%d"),
                   "cores": os.cpu_count(), "results": results}, f, indent=1)
    print(f"compare at {args.size}, {args.secs:g} s per run, {time.strftime('%Y-%m-%d')} ({path})\n")
    print(table(results, args.secs))


if __name__ == "__main__":
    main()
