"""The web UI end to end: a real server with data, headless Chromium, the views a user meets."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import Server, start_server, stop_server
from tests.ui.conftest import HOSTILE, Page, post, screenshot


def rows(page: Any) -> Any:
    return page.locator("#results .row")


def wait_js(page: Any, expression: str, timeout: float = 15) -> None:
    """Wait until a JavaScript expression is true. (Playwright's wait_for_function evaluates its
    predicate with eval(), which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)


def wait_rows(page: Any) -> None:
    page.wait_for_selector("#results .row")


def test_page_and_handshake_share_the_root(ui_server: Server) -> None:
    html = httpx.get(ui_server.url + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script type="module" src="/ui/app.js">' in html.text
    es = httpx.get(ui_server.url + "/", headers={"Accept": "application/json"})
    assert es.status_code == 200 and es.headers["content-type"].startswith("application/json")
    assert es.json()["version"]["number"] and es.headers["x-elastic-product"] == "Elasticsearch"
    plain = httpx.get(ui_server.url + "/", headers={"Accept": "*/*"})
    assert plain.json()["tagline"] == "You Know, for Search"
    asset = httpx.get(ui_server.url + "/ui/app.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert "script-src 'self'" in asset.headers["content-security-policy"]


def test_no_inline_script_or_handlers_in_the_shipped_files() -> None:
    from loglens.ui import STATIC

    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    for js in STATIC.glob("*.js"):
        assert "innerHTML" not in js.read_text() and "insertAdjacentHTML" not in js.read_text(), js.name


def test_explore_screenshot_and_dark_theme(tab: Page) -> None:
    page = tab.open("/?q=-service:hostile&from=now-1h&to=now")
    wait_rows(page)
    rows(page).nth(2).locator(".line").click()
    screenshot(page, "explore.png")
    page.click("#theme")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 600})
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"


def test_patterns_open_in_explore(tab: Page) -> None:
    page = tab.open("/?view=patterns&q=-service:hostile&from=now-1h&to=now")
    page.wait_for_selector("#patterns tr.pattern")
    first = page.locator("#patterns tr.pattern").first
    assert first.locator("svg.spark path").count() >= 1
    counts = [int(c.replace(",", "")) for c in page.locator("#patterns td.count").all_text_contents()]
    assert counts == sorted(counts, reverse=True)
    assert page.locator("#patterns .mix span").count() > 0
    screenshot(page, "patterns.png")
    template_id = first.get_attribute("data-id")
    first.click()
    wait_js(page, "new URLSearchParams(location.search).get('q')?.startsWith('template:')")
    assert page.locator("#q").input_value() == f"template:{template_id}"
    wait_rows(page)
    assert not page.locator("#view-explore").is_hidden()


def test_services_view(tab: Page) -> None:
    page = tab.open("/?view=services&q=-service:hostile&from=now-1h&to=now")
    page.wait_for_selector(".svc-card ol li")
    names = page.locator(".svc-card h2 a").all_text_contents()
    assert {"checkout", "payments", "search"} <= set(names)
    wait_js(page, "document.querySelectorAll('.svc-card svg.spark').length >= 6")
    assert "% errors" in page.locator(".svc-card .stat").first.text_content()
    screenshot(page, "services.png")
    page.locator(".svc-card h2 a", has_text="payments").click()
    wait_js(page, "document.getElementById('q').value === 'service:payments'")
    wait_rows(page)


def test_explore_query_histogram_results_expand_filter(tab: Page) -> None:
    page = tab.open("/?q=level:ERROR&from=now-1h&to=now")
    wait_rows(page)
    assert page.locator("#q").input_value() == "level:ERROR"
    assert page.evaluate("document.activeElement.id") == "q"
    assert page.locator("#histogram rect.lv-ERROR").count() > 0
    assert page.locator("#histogram rect.lv-INFO").count() == 0
    levels = page.locator("#results .row .level").all_text_contents()
    assert levels and set(levels) == {"ERROR"}
    times = page.locator("#results .row .time").all_text_contents()
    assert times == sorted(times, reverse=True), "newest first"
    assert "records" in page.locator("#summary").text_content()

    # a new query from the bar: Enter runs it, the address follows
    page.fill("#q", "connection refused service:payments")
    page.press("#q", "Enter")
    wait_js(page, "location.search.includes('payments')")
    wait_js(page, "[...document.querySelectorAll('#results .svc')].every(e => e.textContent === 'payments')")
    assert page.locator("#qhl .t-field").first.text_content() == "service"

    # expand a record: all fields and attributes; click a value to filter by it
    rows(page).first.locator(".line").click()
    details = page.locator("#results .row .details").first
    assert details.locator("td.k", has_text="http.status").count() == 1
    details.locator(".v[data-field='host']").click()
    wait_js(page, "document.getElementById('q').value.includes('host:web-')")
    host = page.locator("#q").input_value().split("host:")[1]
    wait_js(page, f"[...document.querySelectorAll('#results .host')].every(e => e.textContent === '{host}')")
    # the second button excludes
    rows(page).first.locator(".line").click()
    page.locator("#results .details .v[data-field='host']").first.click(button="right")
    wait_js(page, f"document.getElementById('q').value.endsWith('-host:{host}')")
    page.wait_for_selector("#empty:not([hidden])")
    assert "widen" in page.locator("#empty").text_content().lower()


def test_malformed_query_shows_the_position(tab: Page) -> None:
    page = tab.open("/")
    wait_rows(page)
    page.fill("#q", "level:ERROR AND (timeout")
    page.press("#q", "Enter")
    page.wait_for_selector("#qerror:not([hidden])")
    assert page.locator("#qhl .t-error").count() == 1
    assert page.locator("#qerror").text_content()


def test_field_completion(tab: Page) -> None:
    page = tab.open("/")
    wait_rows(page)
    page.click("#q")
    page.keyboard.type("http.st")
    page.wait_for_selector("#complete:not([hidden]) li")
    assert "http.status:" in page.locator("#complete li").first.text_content()
    page.keyboard.press("Tab")
    assert page.locator("#q").input_value() == "http.status:"


def test_infinite_scroll_loads_the_next_pages(tab: Page) -> None:
    page = tab.open("/?q=-service:hostile&from=now-1h&to=now")
    wait_rows(page)
    assert rows(page).count() == 100
    for _ in range(6):
        page.locator("#more").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    wait_js(page, "document.querySelectorAll('#results .row').length >= 400")
    ids = page.locator("#results .row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(ids) == len(set(ids)), "no record twice"
    assert "End of results" in page.locator("#more").text_content()


def test_a_slow_query_shows_progress_and_can_be_cancelled(tab: Page) -> None:
    held: list[Any] = []
    # the search is never answered: a very slow query
    tab.page.route(re.compile(r".*/api/v1/search\?.*"), lambda route: held.append(route))
    page = tab.open("/?q=level:ERROR&from=now-1h&to=now")
    page.wait_for_selector("#progress:not([hidden])")
    assert "Searching" in page.locator("#progress-text").text_content()
    page.click("#cancel")
    page.wait_for_selector("#progress", state="hidden")
    assert page.locator("#summary").text_content() == "Cancelled."
    assert held
    page.unroute(re.compile(r".*/api/v1/search\?.*"))


def test_zoom_by_dragging_on_the_histogram(tab: Page) -> None:
    page = tab.open("/?from=now-1h&to=now")
    wait_rows(page)
    box = page.locator("#histogram svg").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.55, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=5)
    page.mouse.up()
    wait_js(page, "new URLSearchParams(location.search).get('from').includes('T')")
    params = page.evaluate("Object.fromEntries(new URLSearchParams(location.search))")
    start = datetime.fromisoformat(params["from"])
    end = datetime.fromisoformat(params["to"])
    assert 0 < (end - start).total_seconds() < 3600 * 0.5
    assert page.locator("#range").input_value() == "custom"
    wait_rows(page)
    for text in page.locator("#results .row .time").all_text_contents()[:20]:
        assert text  # rows inside the new span
    assert (datetime.now(UTC) - end).total_seconds() > 60


def test_context_opens_the_lines_around(tab: Page) -> None:
    page = tab.open("/?q=service:checkout&from=now-1h&to=now")
    wait_rows(page)
    rows(page).nth(5).locator(".line").click()
    page.locator("#results .details .context-button").click()
    page.wait_for_selector("#context[open] .context-lines .focus")
    assert page.locator("#context .context-lines > div").count() > 10


def test_live_tail_streams_a_record_sent_after_the_page_opened(tab: Page, ui_server: Server) -> None:
    page = tab.open("/?q=service:tailtest&from=now-1h&to=now")
    page.wait_for_selector("#empty:not([hidden])")
    page.check("#tail")
    wait_js(page, "document.getElementById('tail-status').textContent.includes('live')")
    page.wait_for_timeout(300)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    post(ui_server, [{"@timestamp": now, "service": "tailtest", "level": "ERROR", "message": "tailed <b>line</b>"},
                     {"@timestamp": now, "service": "other", "level": "ERROR", "message": "not for this tail"}])
    page.wait_for_selector("#results .row .msg:text('tailed <b>line</b>')")
    assert rows(page).count() == 1
    assert page.locator("#results b").count() == 0
    # a burst: the page keeps at most 2,000 rows
    burst = [{"@timestamp": now, "service": "tailtest", "level": "INFO", "message": f"burst {i}"} for i in range(2500)]
    post(ui_server, burst)
    page.wait_for_selector("#results .row .msg:text-is('burst 2499')")
    assert rows(page).count() == 2000
    assert rows(page).first.locator(".msg").text_content() == "burst 2499"
    # scrolled down, the stream pauses (and says so); back at the top it resumes
    page.evaluate("window.scrollTo(0, 3000)")
    post(ui_server, [{"@timestamp": now, "service": "tailtest", "message": "while paused"}])
    wait_js(page, "document.getElementById('tail-status').textContent.includes('paused: 1 new')")
    assert page.locator("#results .msg:text-is('while paused')").count() == 0
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_selector("#results .row .msg:text-is('while paused')")


def test_hostile_lines_render_as_text(tab: Page) -> None:
    page = tab.open("/?q=service:hostile&from=now-1h&to=now")
    wait_rows(page)
    messages = page.locator("#results .row .msg").all_text_contents()
    assert sorted(messages) == sorted(HOSTILE)
    rows(page).first.locator(".line").click()
    page.locator("#results .details .context-button").click()
    page.wait_for_selector("#context[open] .context-lines .focus")
    assert page.locator("script:not([src]), #results img, #context img").count() == 0
    assert not tab.dialogs


def test_api_key_prompt_when_auth_is_on(browser: Any, tmp_path: Any) -> None:
    from tests.conftest import run_cli

    data = tmp_path / "data"
    created = run_cli("keys", "create", "--scope", "admin", "--data", str(data)).stdout.decode()
    key = re.findall(r"\S{20,}", created)[-1]
    srv = start_server(data, "--auth", "on")
    try:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}) as client:
            client.post("/api/v1/logs", content=b'{"message": "secret hello", "service": "auth"}',
                        headers={"Content-Type": "application/x-ndjson"}).raise_for_status()
        assert httpx.get(srv.url + "/", headers={"Accept": "text/html"}).status_code == 200
        assert httpx.get(srv.url + "/ui/app.js").status_code == 200
        assert httpx.get(srv.url + "/api/v1/search").status_code == 401
        context = browser.new_context()
        page = context.new_page()
        page.goto(srv.url + "/?from=now-1h")
        page.wait_for_selector("#keydialog[open]")
        page.fill("#keyinput", key)
        page.press("#keyinput", "Enter")
        page.wait_for_selector("#results .row .msg:text('secret hello')")
        assert page.evaluate("sessionStorage.getItem('loglens.apiKey')") == key
        context.close()
    finally:
        stop_server(srv)


def test_tail_keeps_up_with_a_thousand_records_a_second(tab: Page, ui_server: Server) -> None:
    """A sustained stream (1,000 records/s for 6 s) while the page tails: the DOM stays capped, the
    page keeps answering, and the last record arrives. The latencies are printed, not asserted
    (timings belong in benchmarks); the closing note of the UI issue reports them."""
    import threading

    page = tab.open("/?q=service:firehose&from=now-1h&to=now")
    page.wait_for_selector("#empty:not([hidden])")
    page.check("#tail")
    wait_js(page, "document.getElementById('tail-status').textContent.includes('live')")
    sent = 0

    def firehose() -> None:
        nonlocal sent
        started = time.monotonic()
        for tick in range(60):  # 100 records every 100 ms
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            post(ui_server, [{"@timestamp": now, "service": "firehose", "level": "INFO",
                              "message": f"fire {tick * 100 + i}"} for i in range(100)])
            sent += 100
            time.sleep(max(0.0, started + (tick + 1) * 0.1 - time.monotonic()))

    t = threading.Thread(target=firehose)
    t.start()
    latencies = []
    while t.is_alive():
        began = time.perf_counter()
        page.evaluate("document.querySelectorAll('#results .row').length")
        latencies.append(time.perf_counter() - began)
        time.sleep(0.1)
    t.join()
    page.wait_for_selector("#results .row .msg:text-is('fire 5999')", timeout=15_000)
    assert sent == 6000
    assert rows(page).count() == 2000
    latencies.sort()
    print(f"page round trip while tailing 1,000 records/s: median {latencies[len(latencies) // 2] * 1000:.0f} ms,"
          f" max {latencies[-1] * 1000:.0f} ms over {len(latencies)} probes")
