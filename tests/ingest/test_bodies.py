"""NDJSON bodies: checked line by line, or left for the ingest worker with their line numbers."""

from __future__ import annotations

from loglens.ingest.bodies import decode_body, decode_ndjson

BODY = '{"msg": "a"}\n\n  {"msg": "b"}  \n{broken\n[1]\n'


def test_checked_lines_report_numbers_and_reasons() -> None:
    decoded = decode_ndjson(BODY, json_as_text=True)
    assert decoded.items == ['{"msg": "a"}', '{"msg": "b"}']
    assert [(r.line, r.reason.split(":")[0]) for r in decoded.rejected] == [(4, "invalid JSON"),
                                                                           (5, "expected a JSON object, got list")]
    assert decoded.line_numbers is None


def test_unchecked_lines_keep_their_numbers_for_the_worker() -> None:
    decoded = decode_body(BODY.encode(), content_type="application/x-ndjson", json_as_text=True,
                          unchecked_lines=True)
    assert decoded.items == ['{"msg": "a"}', '{"msg": "b"}', "{broken", "[1]"]
    assert decoded.line_numbers == [1, 3, 4, 5]
    assert decoded.rejected == []
    # only NDJSON is left unchecked: a JSON array is read whole, as before
    array = decode_body(b'[{"msg": "a"}, 3]', content_type="application/json", json_as_text=True,
                        unchecked_lines=True)
    assert array.line_numbers is None and [r.line for r in array.rejected] == [2]
