"""`python -m leaderboard.site.screenshot [--out docs/floors-screenshot.png]`: build the site from the filed results and
take a headless-Chromium screenshot of its front page (Table 1 with the shortcut floors on top).

Needs Debian's `chromium` (`apt-get install -y chromium`); the same flags as tests/test_site_browser.py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from leaderboard.site.render import build_site

REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars"]


def screenshot(out: Path, width: int = 1400, height: int = 1100) -> Path:

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="cxr-shot-") as tmp:
        index = build_site(Path(tmp) / "site")
        shot = Path(tmp) / "shot.png"
        subprocess.run([binary, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}",
                        f"--window-size={width},{height}", index.resolve().as_uri()],
                       capture_output=True, text=True, timeout=180, check=False)
        if not shot.is_file():
            raise RuntimeError("chromium wrote no screenshot")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "floors-screenshot.png")
    args = parser.parse_args(argv)
    try:
        print(screenshot(args.out))
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
