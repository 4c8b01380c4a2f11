"""The built site in a real headless browser (Debian's chromium): it renders, its JavaScript runs, its views are kept in
the address, and nothing sticks out past the window at 390, 1024 and 1440 px."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import build_fake_site

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
# docs/{leaderboard,encoders}-{1440,390}.png are drawn from the project's filed results by `python tests/browser.py`


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of chromium, installing Debian's package when it is missing and apt is usable (CI runs as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get is unavailable (needs root): apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                             capture_output=True, text=True, timeout=600, env=env, check=False)
    if install.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, env=env, check=False)
        install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                                 capture_output=True, text=True, timeout=600, env=env, check=False)
    found = shutil.which("chromium")
    if install.returncode != 0 or not found:
        pytest.fail(f"apt-get install chromium failed: {install.stderr.strip().splitlines()[-1:]}")
    return found


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    return build_fake_site(tmp_path_factory)[2]


def test_front_page_renders_and_its_script_runs(chromium, built_site, tmp_path):
    url = built_site.resolve().as_uri()
    shot = tmp_path / "index.png"
    done = _chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1600", url)
    assert shot.is_file(), f"no screenshot: {done.stderr[-500:]}"
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a blank 1280x1600 page compresses to a few KB

    dom = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url).stdout
    assert 'id="table-table1"' in dom and "0.958 ± 0.011" in dom
    assert 'data-js-error' not in dom
    assert 'data-js-ok="1"' in dom, "the page's JavaScript did not finish (see static/site.js)"
    assert 'data-sortable-tables="' in dom


def test_task_page_script_runs(chromium, built_site, tmp_path):
    page = built_site.parent / "tasks" / "effusion-demo.html"
    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", page.resolve().as_uri()).stdout
    assert 'data-js-ok="1"' in dom and "<h4>ci</h4>" in dom


# ---------------------------------------------------------------------------------------------- the Encoders page
# Driven through the DevTools protocol (tests/browser.py): real key presses, the page's own filter controls, the
# layout measured at the two widths the screenshots are taken at.

VISIBLE = "section.encoder-view:not([hidden])"


@pytest.fixture(scope="module")
def encoders_site(tmp_path_factory):
    """Table 1 (reported) plus three reproduced demo results, one with its predictions file; tasks in benchmarks."""
    from runs import make_run

    from leaderboard.filing.file_reported import file_reported
    from leaderboard.filing.submit import submit
    from tests.support import TABLE_PATH, fake_registry

    reg = fake_registry()
    for task in reg.tasks.values():
        task.data["benchmarks"] = ["demo"] if task.id == "effusion-demo" else ["paper-table1"]
    results = tmp_path_factory.mktemp("encoder-results")
    file_reported(reg, TABLE_PATH, results)
    runs = tmp_path_factory.mktemp("encoder-runs")
    # Verifiable runs (their numbers recompute from the filed predictions and manifest): unverified ones are not ranked.
    for encoder, separation in (("pixels", 0.3), ("medimageinsight", 1.2), ("cxr-foundation", 0.7)):
        submit(make_run(runs / encoder, reg, "effusion-demo", encoder, separation=separation), reg, results_dir=results)
    from leaderboard.site.render import build_site

    index = build_site(tmp_path_factory.mktemp("encoder-site"), results, reg)
    return index.parent


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    from browser import Browser

    with Browser(chromium, tmp_path_factory.mktemp("cdp-profile")) as b:
        yield b


def _open(browser, site, width, page="encoders.html"):
    browser.viewport(width, 900)
    browser.open((site / page).resolve().as_uri())
    assert browser.js("document.body.getAttribute('data-js-error')") is None
    assert browser.js("document.body.getAttribute('data-js-ok')") == "1"


def _set(browser, element_id: str, value: str, event: str) -> None:
    """Set a filter control as a reader would, and fire the event the page listens to."""
    browser.js(f"(() => {{ const e = document.getElementById({element_id!r}); e.value = {value!r};"
               f" e.dispatchEvent(new Event({event!r})); }})()")


def _column(browser, heading: str) -> list:
    """The data-sort values of the visible table's column under `heading`, top to bottom."""
    return browser.js(f"""(() => {{
        const table = document.querySelector("{VISIBLE} table");
        const heads = [...table.tHead.rows[table.tHead.rows.length - 1].cells];
        const i = heads.findIndex(th => th.textContent.trim().startsWith({heading!r}));
        return [...table.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[i].getAttribute("data-sort"));
    }})()""")


def test_encoders_page_sorts_by_keyboard(browser, encoders_site):
    _open(browser, encoders_site, 1400)
    assert browser.js("document.body.getAttribute('data-encoders-js')") == "1"
    _set(browser, "filter-benchmark", "demo", "change")
    browser.js(f"document.querySelector('{VISIBLE} thead th[title=\"mean of the per-task ranks\"]').focus()")
    browser.press("Tab")  # headings are in the tab order: Rank -> SD -> Borda -> AUROC
    browser.press("Tab")
    browser.press("Tab")
    assert browser.js("document.activeElement.textContent.trim()") == "AUROC"
    browser.press("Enter")  # a metric: best first on the first press
    descending = [float(v) for v in _column(browser, "AUROC")]
    assert descending == sorted(descending, reverse=True) and len(descending) == 3
    assert browser.js("document.activeElement.getAttribute('aria-sort')") == "descending"
    browser.press(" ")
    ascending = [float(v) for v in _column(browser, "AUROC")]
    assert ascending == sorted(descending) and descending != ascending


def test_encoders_page_filters_by_benchmark_and_searches(browser, encoders_site):
    _open(browser, encoders_site, 1400)
    assert browser.js(f"document.querySelector('{VISIBLE}').dataset.view") == "paper-table1|*"  # the default view
    _set(browser, "filter-benchmark", "demo", "change")
    assert browser.js(f"document.querySelector('{VISIBLE}').dataset.view") == "demo|*"
    assert len(_column(browser, "AUROC")) == 3
    _set(browser, "filter-search", "no such encoder", "input")
    assert browser.js(f"[...document.querySelectorAll('{VISIBLE} tbody tr')].filter(r => !r.hidden)"
                      ".map(r => r.dataset.encoder)") == []
    _set(browser, "filter-search", "Raw Pix", "input")  # by title, any case
    assert browser.js(f"[...document.querySelectorAll('{VISIBLE} tbody tr')].filter(r => !r.hidden)"
                      ".map(r => r.dataset.encoder)") == ["pixels"]
    _set(browser, "filter-dataset", "nih-cxr14", "change")  # demo x NIH: no such view
    assert browser.js("document.getElementById('no-view').hidden") is False


def test_a_cell_links_to_its_result_file(browser, encoders_site):
    import json

    _open(browser, encoders_site, 1400)
    _set(browser, "filter-benchmark", "demo", "change")
    links = browser.js(f"""[...document.querySelectorAll('{VISIBLE} tr[data-encoder="pixels"] a')]
                           .map(a => [a.className, a.href])""")
    by_class = {cls: href for cls, href in links if cls in ("result-link", "pred-link")}
    result = json.loads(Path(by_class["result-link"].removeprefix("file://")).read_text())
    assert (result["task"]["id"], result["encoder"]["id"]) == ("effusion-demo", "pixels")
    assert Path(by_class["pred-link"].removeprefix("file://")).is_file()
    browser.js(f"document.querySelector('{VISIBLE} tr[data-encoder=\"pixels\"] a.result-link').click()")
    import time

    deadline = time.monotonic() + 20
    while not browser.js("location.href").endswith("__pixels__reproduced.json") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.js("location.href") == by_class["result-link"]


# ---------------------------------------------------------------------------------------------- shareable views


def test_filters_and_sort_are_kept_in_the_address_and_restored(browser, encoders_site):
    _open(browser, encoders_site, 1400)
    _set(browser, "filter-benchmark", "demo", "change")
    _set(browser, "filter-search", "raw", "input")
    browser.js(f"[...document.querySelectorAll('{VISIBLE} thead th')].find(th => th.textContent.trim() === 'AUROC')"
               ".click()")
    url = browser.js("location.href")
    assert "benchmark=demo" in url and "q=raw" in url and "sort=" in url and ":auroc:desc" in url.replace("%3A", ":")
    _open_url(browser, url)  # the copied link, in a fresh page
    assert browser.js(f"document.querySelector('{VISIBLE}').dataset.view") == "demo|*"
    assert browser.js("document.getElementById('filter-search').value") == "raw"
    assert browser.js(f"[...document.querySelectorAll('{VISIBLE} tbody tr')].filter(r => !r.hidden)"
                      ".map(r => r.dataset.encoder)") == ["pixels"]
    assert browser.js(f"[...document.querySelectorAll('{VISIBLE} thead th')]"
                      ".find(th => th.textContent.trim() === 'AUROC').getAttribute('aria-sort')") == "descending"


def test_front_page_sort_is_kept_in_the_address(browser, encoders_site):
    _open(browser, encoders_site, 1400, "index.html")
    browser.js("document.querySelector('#table-table1 thead tr:last-child th[data-metric=auroc]').click()")
    url = browser.js("location.href")
    assert "sort=table-table1" in url
    first = browser.js("[...document.querySelectorAll('#table-table1 tbody tr')].map(r => r.dataset.task)")
    _open_url(browser, url)
    assert browser.js("[...document.querySelectorAll('#table-table1 tbody tr')].map(r => r.dataset.task)") == first
    values = [float(v) for v in browser.js(
        "(() => { const th = document.querySelector('#table-table1 thead tr:last-child th[data-metric=auroc]');"
        " const i = [...th.parentNode.children].indexOf(th);"
        " return [...document.querySelectorAll('#table-table1 tbody tr')].map(r => r.children[i].dataset.sort)"
        ".filter(v => v !== ''); })()")]
    assert values == sorted(values, reverse=True) and len(values) == 8  # best first on the first click


def test_a_hostile_address_is_ignored(browser, encoders_site):
    hostile = "#benchmark=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&dataset=%22%5D%3Cb&q=%3Cscript%3E&sort=x%22%5D:y:z"
    _open_url(browser, (encoders_site / "encoders.html").resolve().as_uri() + hostile)
    assert browser.js("document.body.getAttribute('data-js-ok')") == "1"
    assert browser.js(f"document.querySelector('{VISIBLE}').dataset.view") == "paper-table1|*"  # the default
    assert browser.js("document.querySelectorAll('img[src=x], b').length") == 0
    assert browser.js("document.getElementById('filter-search').value") == "<script>"  # text in a box, nothing run


# ---------------------------------------------------------------------------------------------- every width
# At 390 (a phone), 1024 and 1440 px nothing may stick out past the right edge of the window except inside a box that
# scrolls on its own (.table-wrap, pre); every <details> is opened first so that what it holds is measured too.

WIDTHS = (390, 1024, 1440)
OVERFLOW = """(() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    const width = document.documentElement.clientWidth, out = [];
    for (const el of document.querySelectorAll('body *')) {
        if (el.parentElement.closest('.table-wrap, pre')) continue;  // inside a box that scrolls by itself
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > width + 1)
            out.push(`${el.tagName.toLowerCase()}.${el.className} right=${Math.round(r.right)}: `
                     + (el.textContent || '').trim().slice(0, 40));
    }
    return [document.documentElement.scrollWidth, width, out.slice(0, 8)];
})()"""


def _fits(browser, site, page, width):
    _open(browser, site, width, page)
    scroll, window, sticking_out = browser.js(OVERFLOW)
    assert scroll <= window and sticking_out == [], (page, width, scroll, sticking_out)


@pytest.fixture(scope="module")
def stock_site(real_site):
    """The project's filed results (Table 1, floors, the demo's) as `runner leaderboard build` renders them: the
    session's one build (tests/conftest.py `real_site`), read-only; the browser's profile lives elsewhere."""
    return real_site.out


STOCK_PAGES = ("index.html", "encoders.html", "tasks/atelectasis-nih.html", "tasks/effusion-demo.html",
               "encoders/medimageinsight.html", "encoders/metadata.html")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_stock_site_fits_every_width(browser, stock_site, width):
    for page in STOCK_PAGES:
        _fits(browser, stock_site, page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_test_site_fits_every_width(browser, encoders_site, width):
    for page in ("index.html", "encoders.html", "tasks/effusion-demo.html", "encoders/pixels.html"):
        _fits(browser, encoders_site, page, width)


def test_table1_on_a_phone_keeps_the_task_column_and_shows_model_numbers_first(browser, stock_site):
    _open(browser, stock_site, 390, "index.html")
    heads = browser.js("[...document.querySelectorAll('#table-table1 thead tr:last-child th')]"
                       ".map(th => th.dataset.metric || 'task')")
    assert heads[0] == "task" and "floor" in heads
    assert heads.index("auroc") < heads.index("floor"), heads  # the encoders' numbers before the floor column
    first_number = browser.js("""(() => {
        const cell = document.querySelector('#table-table1 tbody tr td[data-encoder]');
        return [cell.getBoundingClientRect().left, cell.getBoundingClientRect().right,
                document.documentElement.clientWidth]; })()""")
    assert first_number[1] <= first_number[2], f"no model number on the first screen: {first_number}"
    stays = browser.js("""(() => {
        const wrap = document.querySelector('#table-table1').closest('.table-wrap');
        wrap.scrollLeft = wrap.scrollWidth;
        const cell = wrap.querySelector('tbody th'), left = cell.getBoundingClientRect().left;
        return [wrap.scrollLeft > 0, Math.abs(left - wrap.getBoundingClientRect().left) < 2,
                getComputedStyle(cell).position, cell.textContent.trim()]; })()""")
    assert stays[:3] == [True, True, "sticky"] and "Atelectasis" in stays[3] and "MIMIC" in stays[3], stays


@pytest.mark.parametrize("width", [1440, 390])
def test_encoders_page_screenshots_do_not_overflow(browser, stock_site, width, tmp_path):
    from browser import png_size

    _open(browser, stock_site, width)
    page = browser.js("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page[0] <= page[1], f"the page scrolls sideways at {width} px: {page}"
    wraps = browser.js(f"[...document.querySelectorAll('{VISIBLE} .table-wrap')].map(w => [w.scrollWidth, w.clientWidth])")
    if width == 1440:
        assert all(s <= c + 1 for s, c in wraps), f"a table scrolls sideways at 1440 px: {wraps}"
    else:  # on a phone the table scrolls inside its box, and its first column stays in view
        stays = browser.js(f"""(() => {{
            const wrap = document.querySelector('{VISIBLE} .table-wrap'); wrap.scrollLeft = wrap.scrollWidth;
            const first = wrap.querySelector('tbody th'), left = first.getBoundingClientRect().left;
            return [wrap.scrollLeft > 0, Math.abs(left - wrap.getBoundingClientRect().left) < 2];
        }})()""")
        assert stays == [True, True], stays
    shot = tmp_path / f"encoders-{width}.png"
    png = browser.screenshot(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert png_size(png)[0] == width  # a page wider than the window would make a wider full-page shot
    docs_copy = REPO / "docs" / f"encoders-{width}.png"
    if not docs_copy.exists():  # `python tests/browser.py` redraws them all
        shutil.copyfile(shot, docs_copy)


def _open_url(browser, url):
    """Load `url` (address-bar state included) as a new document, the way a shared link opens."""
    browser.open("about:blank")  # else a change of #fragment alone would not reload the page
    browser.send("Page.navigate", url=url)
    import time

    deadline = time.monotonic() + 30
    while browser.js("document.readyState") != "complete" or browser.js("location.href").split("#")[0] != \
            url.split("#")[0] or browser.js("document.body && document.body.getAttribute('data-js-ok')") is None:
        if browser.js("document.body && document.body.getAttribute('data-js-error')"):
            break
        assert time.monotonic() < deadline, f"{url} did not load"
        time.sleep(0.05)
    assert browser.js("document.body.getAttribute('data-js-error')") is None
