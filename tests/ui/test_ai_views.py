"""The Anomalies and Ask views, and Explain in Explore, against a real server holding an incident: a
steady baseline, then a burst of a new ERROR pattern in the last ten minutes."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import httpx

from tests.conftest import Server
from tests.ui.conftest import Page, screenshot
from tests.ui.test_ui import wait_js


def test_anomalies_timeline_evidence_and_explanation(ai_tab: Page) -> None:
    page = ai_tab.open("/?view=anomalies&from=now-1h&to=now")
    page.wait_for_selector("#anomaly-timeline svg .marker")
    assert page.locator("#anomaly-timeline .lane-label").all_text_contents() == ["billing"]
    kinds = page.locator("#anomalies tr.anomaly").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert "new_pattern" in kinds
    # the query bar is hidden here, the time picker is not
    assert page.locator("#bar .query").is_hidden() and page.locator("#range").is_visible()
    page.locator("#anomalies tr.anomaly[data-kind='new_pattern']").click()
    detail = page.locator("#anomaly-detail")
    detail.wait_for()
    assert "deadlock detected" in detail.locator(".evidence-pattern").text_content()
    assert "count 0" in detail.locator(".evidence .before").text_content()
    after = re.match(r"count (\d+)", detail.locator(".evidence .after").text_content())
    assert after and 50 <= int(after.group(1)) <= 120  # the burst (the buckets' edges may cut its start)
    assert detail.locator(".examples a.cite-record").count() >= 1
    # the explanation of the first example record: what changed, ranked, and the summary slot
    detail.locator(".explanation .changes table tbody tr").first.wait_for()
    first = detail.locator(".explanation .changes tbody tr").first.text_content()
    assert "deadlock detected" in first
    assert "No LLM is configured" in detail.locator(".explanation .llm").text_content()
    screenshot(page, "anomalies.png")
    # a marker on the timeline opens its anomaly too
    page.locator("#anomaly-timeline .marker").last.click()
    page.wait_for_selector("#anomalies tr.anomaly.selected")
    # an example record opens in Explore, with its context
    detail.locator(".examples a.cite-record").first.click()
    page.wait_for_selector("#context[open] .context-lines .focus")
    assert "deadlock detected" in page.locator("#context .focus").text_content()
    assert "view=" not in page.url
    page.wait_for_selector("#results .row")


def test_ask_a_count_matches_the_api(ai_tab: Page, ai_server: Server) -> None:
    page = ai_tab.open("/?view=ask")
    page.fill("#ask-q", "how many errors in the last hour")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-answer .ask-number")
    shown = int(page.locator("#ask-answer .ask-number").text_content().replace(",", "").replace("\u202f", ""))
    count = httpx.get(ai_server.url + "/api/v1/count", params={"q": "level>=ERROR", "from": "now-1h"})
    expected = count.json()["count"]
    assert shown == expected == 120
    assert page.locator("#ask-answer code.q").text_content() == "level>=ERROR"
    assert "120 records match" in page.locator("#ask-answer .ask-text").text_content()
    # a table for top, a chart for a histogram
    page.fill("#ask-q", "which hosts logged the most errors in the last hour")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-answer .op-top table td:text-is('node-1')")
    page.fill("#ask-q", "errors per hour in the last 3 hours")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-answer .op-histogram svg rect")
    # the chat: streamed, with citations as links
    page.fill("#chat-input", "why are ledger writes failing?")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-log .msg-assistant[data-done='1']")
    bubble = page.locator("#chat-log .msg-assistant").last
    assert bubble.locator("a.cite").count() >= 1
    assert "[record:" not in bubble.locator(".msg-text").text_content()
    assert page.locator("img").count() == 0  # the hostile line in the data stays text
    page.fill("#ask-q", "how many errors in the last hour")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-answer .ask-number")
    screenshot(page, "ask.png")
    # a pattern citation opens Explore on its template
    bubble.locator("a.cite-pattern").first.click()
    page.wait_for_selector("#results .row")
    assert re.fullmatch(r"template:\d+", parse_qs(urlparse(page.url).query)["q"][0])
    assert "deadlock detected" in page.locator("#results .row .msg").first.text_content()


def test_ask_open_in_explore_and_record_citation(ai_tab: Page) -> None:
    page = ai_tab.open("/?view=ask")
    page.fill("#ask-q", "how many errors in the last hour")
    page.press("#ask-q", "Enter")
    page.locator("#ask-answer .open-explore").click()
    page.wait_for_selector("#results .row")
    params = parse_qs(urlparse(page.url).query)
    assert params["q"] == ["level>=ERROR"] and "view" not in params
    assert page.locator("#q").input_value() == "level>=ERROR"
    page.go_back()
    page.wait_for_selector("#view-ask:not([hidden])")
    page.fill("#chat-input", "show deadlock errors in billing")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-log .msg-assistant[data-done='1'] a.cite-record")
    page.locator("#chat-log a.cite-record").first.click()
    page.wait_for_selector("#context[open] .context-lines .focus")
    wait_js(page, "!document.getElementById('view-explore').hidden")


def test_explain_from_a_record_in_explore(ai_tab: Page) -> None:
    page = ai_tab.open("/?q=service:billing%20level:ERROR&from=now-1h&to=now")
    page.wait_for_selector("#results .row")
    page.locator("#results .row").first.locator(".line").click()
    page.locator("#results .details .explain-button").click()
    page.wait_for_selector("#explain[open] .explanation .explain-pattern")
    panel = page.locator("#explain")
    assert "deadlock detected" in panel.locator(".explain-pattern").text_content()
    assert panel.locator(".explain-pattern .badge").text_content() == "new"
    assert panel.locator(".changes tbody tr").count() >= 1
    assert panel.locator("h3:text('Same trace')").count() == 1
    page.click("#explain-close")
    assert not panel.is_visible()
