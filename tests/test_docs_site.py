"""Browser test of the docs site: build it from the real nbs/, serve it on loopback, open it in headless Chromium.

Checks that the home page and every module page render (title, sidebar, styles), that every exported
function and class of a module has a visible API entry on its page, that no internal link is broken, and
saves screenshots of the home page and one module page.
"""
from __future__ import annotations

import ast, functools, http.server, json, re, shutil, sys, tempfile, threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000"]
MISSING_BROWSER = ("{what} is missing, so the docs site cannot be checked in a browser. `make test` installs it "
                   "(apt-get install -y chromium chromium-driver), or install it yourself and rerun.")

try: import loopkit.site  # noqa: F401  (the source tree, when loopkit is not pip-installed)
except ModuleNotFoundError: sys.path.insert(0, str(ROOT))
from loopkit.site import build_site


def _module_pages() -> dict[str, tuple[str, list[str]]]:
    "notebook name -> (page file, functions and classes in the generated module's `__all__`) for every `#| default_exp` notebook."
    from nbdev.config import get_config, nbpath2html
    lib = get_config(NBS).lib_path
    res = {}
    for nb in sorted(NBS.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts: continue
        rel = nb.relative_to(NBS)
        sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                   for c in json.loads(nb.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        m = next(filter(None, (re.search(r"^\s*#\|\s*default_exp\s+(\S+)", s, re.M) for s in sources)), None)
        if not m: continue
        py = lib.joinpath(*m.group(1).split("."))
        py = py.with_suffix(".py") if py.with_suffix(".py").exists() else py/"__init__.py"
        assert py.exists(), f"{nb.name} exports to {m.group(1)} but {py} does not exist; run nbdev-export"
        tree = ast.parse(py.read_text(encoding="utf-8"))
        exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, "id", None) == "__all__" for t in n.targets)), [])
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        res[rel.as_posix()] = (nbpath2html(rel).as_posix(), [n for n in exported if n in defined])
    return res


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    "The docs site built from the real nbs/ (once per test session)."
    assert NBS.is_dir(), f"no notebooks folder at {NBS}"
    return build_site(NBS, tmp_path_factory.mktemp("docs")/"_site")


@pytest.fixture(scope="session")
def base_url(site) -> str:
    "The site served by http.server on 127.0.0.1 (loopback only) in a background thread."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def browser():
    "Headless Chromium driven by selenium, with a fresh profile."
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError: pytest.fail(MISSING_BROWSER.format(what="the selenium package"))
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists(): pytest.fail(MISSING_BROWSER.format(what=str(path)))
    profile = tempfile.mkdtemp(prefix="loopkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]: options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, url):
    from selenium.webdriver.common.by import By
    browser.get(url)
    return browser.find_element(By.TAG_NAME, "body")


def test_every_notebook_has_a_page(site):
    for page, _ in _module_pages().values(): assert (site/page).is_file(), f"{page} missing from {sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))}"
    assert (site/"index.html").is_file() and (site/"site.css").is_file()
    text = "\n".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html")) + (site/"site.css").read_text()
    loads = re.findall(r"""<script\b[^>]*\bsrc=["']?(?:https?:)?//[^"' >]*|<link\b[^>]*\bhref=["']?(?:https?:)?//[^"' >]*|"""
                       r"""<img\b[^>]*\bsrc=["']?(?:https?:)?//[^"' >]*|@import[^;]*//|url\(["']?(?:https?:)?//""", text)
    assert not loads, f"the site must load nothing from the network (no CDN, fonts, MathJax): {loads[:5]}"


def test_home_page(browser, base_url, site, tmp_path):
    from selenium.webdriver.common.by import By
    _open(browser, base_url + "index.html")
    assert browser.title, "home page has no <title>"
    assert browser.find_element(By.CSS_SELECTOR, "h1.title").is_displayed()
    sidebar = browser.find_element(By.CSS_SELECTOR, "nav.sidebar")
    assert browser.execute_script("return getComputedStyle(arguments[0]).position", sidebar) == "fixed", "site.css not applied"
    linked = {urlparse(a.get_attribute("href")).path.lstrip("/") for a in sidebar.find_elements(By.CSS_SELECTOR, "a")}
    for nb, (page, _) in _module_pages().items(): assert page in linked, f"sidebar of the home page has no link to {page} ({nb})"
    shot = tmp_path/"home.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000, f"screenshot {shot} looks empty ({shot.stat().st_size} bytes)"


@pytest.mark.parametrize("notebook", sorted(_module_pages()))
def test_module_page_shows_its_api(browser, base_url, notebook, tmp_path):
    from selenium.webdriver.common.by import By
    page, names = _module_pages()[notebook]
    _open(browser, base_url + page)
    title = browser.find_element(By.CSS_SELECTOR, "h1.title")
    assert title.is_displayed() and title.text.strip(), f"{page}: no page title"
    active = browser.find_elements(By.CSS_SELECTOR, "nav.sidebar li.active > a")
    assert active and urlparse(active[0].get_attribute("href")).path.endswith(page), f"{page}: sidebar does not mark it current"
    entries = {e.get_attribute("id"): e for e in browser.find_elements(By.CSS_SELECTOR, "section.api-entry")}
    missing = [n for n in names if n not in entries]
    assert not missing, f"{page} ({notebook}) has no api-entry for {missing}; found {sorted(entries)}"
    for n in names:
        browser.execute_script("arguments[0].scrollIntoView()", entries[n])
        assert entries[n].is_displayed(), f"{page}: api-entry {n} is not visible"
        assert entries[n].find_element(By.CSS_SELECTOR, ".api-signature").text.strip(), f"{page}: {n} has no signature"
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path/f"{Path(page).stem}.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000, f"screenshot {shot} looks empty ({shot.stat().st_size} bytes)"


def test_no_broken_internal_links(browser, base_url, site):
    ids, links = {}, []
    for html_file in sorted(site.rglob("*.html")):
        page = html_file.relative_to(site).as_posix()
        _open(browser, base_url + page)
        ids[page] = set(browser.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)"))
        hrefs = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href], link[href]'), a => a.href)"
            ".concat(Array.from(document.querySelectorAll('img[src]'), i => i.src))")
        links += [(page, h) for h in hrefs if h.startswith(base_url)]
        broken_imgs = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken_imgs, f"{page}: images that do not load: {broken_imgs}"
    assert links, "no internal links found at all"
    broken = []
    for page, href in links:
        url, frag = urldefrag(href)
        target = urlparse(url).path.lstrip("/") or "index.html"
        if not (site/target).is_file(): broken.append(f"{page} -> {href} (no file {target})")
        elif frag and frag not in ids.get(target, set()): broken.append(f"{page} -> {href} (no id {frag!r} in {target})")
    assert not broken, "broken internal links:\n" + "\n".join(broken)
