"""Elasticsearch ``_bulk`` receiver, so Filebeat, Logstash, Fluent Bit, Vector and the Elasticsearch
clients can ship to LogLens unchanged.

Documents become records the way JSON lines do (:func:`loglens.parse.record_from_json`), plus:

- the index name is kept as attribute ``index`` (``_index`` when the document has an ``index``
  field of its own), and gives the service when the document names none (:func:`service_of_index`);
- the document ``_id`` (given in the action, or generated like Elasticsearch's) is attribute ``_id``.

``index`` and ``create`` actions store their document; ``delete`` and ``update`` are answered with a
per-item error (LogLens is append-only), as is a document that is not a JSON object. The answer
lists one item per action, in order, and is sent only once the stored ones are committed. A full
write queue answers the whole request 429 with Elasticsearch's ``es_rejected_execution_exception``,
which every shipper retries.

The handshake calls shippers make before their first bulk (``GET /``, ``GET /_license``,
``HEAD /{index}``, template, ILM and data stream set-up...) get minimal answers in Elasticsearch
8.x's shape; every answer carries ``X-Elastic-Product: Elasticsearch``, which the official clients
check.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from loglens import __version__
from loglens.ingest._http import commit, count_rejected, decompress, read_body, runtime_of
from loglens.ingest.bodies import BodyError
from loglens.model import LogRecord
from loglens.pipeline import QueueFullError
from loglens.worker import MappedObject, record_from_mapped

log = logging.getLogger(__name__)

#: The Elasticsearch version LogLens answers as: shippers pick their request format from it.
ES_VERSION = "8.11.0"
CLUSTER_NAME = "loglens"
NODE_NAME = "loglens"
_CLUSTER_UUID = "bG9nbGVucy1jbHVzdGVy"
_NODE_ID = "bG9nbGVucy1ub2RlMDAx"
_seq_no = itertools.count()


class _ElasticRoute(APIRoute):
    """Adds ``X-Elastic-Product: Elasticsearch`` to every answer of this router."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await handler(request)
            response.headers["X-Elastic-Product"] = "Elasticsearch"
            return response

        return route


router = APIRouter(route_class=_ElasticRoute, tags=["elasticsearch"])


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def es_error(status: int, kind: str, reason: str, headers: dict[str, str] | None = None) -> Response:
    """A whole-request error in Elasticsearch's shape."""
    cause = {"type": kind, "reason": reason}
    return _json({"error": {"root_cause": [cause], **cause}, "status": status}, status, headers)


# ---------------------------------------------------------------------------------------- bulk body
_DATE_SUFFIX = re.compile(r"[-_.]\d{4}[-_.]\d{2}(?:[-_.]\d{2})?$")
_ROLLOVER_SUFFIX = re.compile(r"-\d{6}$")
_VERSION_SUFFIX = re.compile(r"-v?\d+(?:\.\d+)+$")
_DATA_STREAM = re.compile(r"logs-(.+)-[^-]+")


@functools.lru_cache(maxsize=1024)
def service_of_index(index: str) -> str:
    """The service an index name stands for, when the document names none.

    A data stream ``logs-<dataset>-<namespace>`` gives its dataset (``logs-nginx.access-default`` →
    ``nginx.access``); otherwise a trailing date, rollover number and version are dropped
    (``filebeat-8.11.0-2026.11.23`` → ``filebeat``, ``logstash-2026.11.23-000001`` → ``logstash``).
    """
    m = _DATA_STREAM.fullmatch(index)
    if m:
        return m.group(1)
    name = _ROLLOVER_SUFFIX.sub("", index)
    name = _DATE_SUFFIX.sub("", name)
    name = _VERSION_SUFFIX.sub("", name)
    return name or index


def new_id() -> str:
    """A random 20-character URL-safe id, like the ones Elasticsearch generates."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


@dataclass(slots=True)
class BulkItem:
    """One action of a bulk request: a document to store, or the error to answer for it."""

    action: str
    index: str
    id: str
    #: The document as the ingest worker maps it (see :func:`_document`).
    document: MappedObject | None = None
    error: dict[str, str] | None = None
    status: int = 201

    def refuse(self, reason: str) -> None:
        """The worker could not map the document: answer 400 for it."""
        self.document = None
        self.status = 400
        self.error = {"type": "mapper_parsing_exception", "reason": reason}


@dataclass(slots=True)
class BulkRequest:
    items: list[BulkItem] = field(default_factory=list)
    received_ns: int = 0

    @property
    def records(self) -> list[LogRecord]:
        """The records the documents become (the worker maps them the same way)."""
        return [record_from_mapped(it.document, self.received_ns, source="elastic")
                for it in self.items if it.document is not None]


_ACTIONS = ("index", "create", "delete", "update")


def _action_of(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """A well-formed action line as (action, metadata), else None."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict or len(obj) != 1:
        return None
    ((action, meta),) = obj.items()
    if action not in _ACTIONS or type(meta) is not dict:
        return None
    return action, meta


def _text(value: Any) -> str:
    return value if type(value) is str else "" if value is None else orjson.dumps(value).decode()


_ABSENT = object()


def _document(doc: dict[str, Any], index: str, doc_id: str) -> MappedObject:
    """A document for the ingest worker to map (it parses and mines there, off the server's
    thread): its service is named after the index, and the index and id become attributes
    (``_index`` when the document has an ``index`` field of its own, which mapping keeps as an
    attribute unless it is a non-empty object, flattened into ``index.*``)."""
    own = doc.get("index", _ABSENT)
    has_index = own is not _ABSENT and not (type(own) is dict and own)
    return doc, service_of_index(index), {"_index" if has_index else "index": index, "_id": doc_id}


def parse_bulk(body: bytes, default_index: str = "", *, received_ns: int | None = None) -> BulkRequest:
    """Decode an NDJSON bulk body into one :class:`BulkItem` per action, in order. Never raises on
    bad input: a malformed action or document becomes an item with an error."""
    received_ns = received_ns or time.time_ns()
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    out = BulkRequest(received_ns=received_ns)
    seen: dict[bytes, tuple[str, dict[str, Any]] | None] = {}  # shippers repeat the same action line
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line in seen:
            parsed = seen[line]
        else:
            parsed = _action_of(line)
            if len(seen) < 4096:
                seen[line] = parsed
        if parsed is None:
            # Not an action we can read: report it, and take the next line as its document unless
            # that line is itself a well-formed action.
            if i < len(lines) and _action_of(lines[i]) is None:
                i += 1
            out.items.append(BulkItem("index", default_index, "", status=400, error={
                "type": "illegal_argument_exception",
                "reason": "Malformed action/metadata line: expected {\"index\"|\"create\"|\"delete\"|\"update\": "
                          "{...}}, got " + line[:200].decode("utf-8", "replace"),
            }))
            continue
        action, meta = parsed
        index = _text(meta.get("_index")) or default_index
        doc_id = _text(meta.get("_id"))
        if action == "delete":
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "illegal_argument_exception",
                "reason": "LogLens stores logs append-only: delete is not supported",
            }))
            continue
        source = lines[i] if i < len(lines) else None
        if source is not None:
            i += 1
        if action == "update":
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "illegal_argument_exception",
                "reason": "LogLens stores logs append-only: update is not supported",
            }))
            continue
        if not index:
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "action_request_validation_exception",
                "reason": "Validation Failed: 1: index is missing;",
            }))
            continue
        if source is None:
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "action_request_validation_exception",
                "reason": "Validation Failed: 1: the document source is missing;",
            }))
            continue
        try:
            doc = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "mapper_parsing_exception", "reason": f"failed to parse: {exc}",
            }))
            continue
        if type(doc) is not dict:
            out.items.append(BulkItem(action, index, doc_id, status=400, error={
                "type": "mapper_parsing_exception",
                "reason": f"failed to parse: the document must be a JSON object, not {type(doc).__name__}",
            }))
            continue
        doc_id = doc_id or new_id()
        out.items.append(BulkItem(action, index, doc_id, document=_document(doc, index, doc_id)))
    return out


def _item_answer(item: BulkItem) -> dict[str, Any]:
    if item.error is not None:
        body: dict[str, Any] = {"_index": item.index, "_id": item.id or None, "status": item.status,
                                "error": {**item.error, "index": item.index}}
    else:
        body = {"_index": item.index, "_id": item.id, "_version": 1, "result": "created",
                "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": next(_seq_no),
                "_primary_term": 1, "status": 201}
    return {item.action: body}


async def _body(request: Request) -> bytes:
    limit = runtime_of(request).settings.max_body_bytes
    body = await read_body(request, limit)
    return await asyncio.to_thread(decompress, body, request.headers.get("content-encoding", ""), limit)


async def _store(request: Request, items: list[BulkItem]) -> Response | None:
    """Commit the documents of the items that have one; an error answer when that failed, else
    None. A document the worker could not map gets its own 400."""
    stored = [(it, it.document) for it in items if it.document is not None]
    refused: list[tuple[int, str]] = []
    try:
        await commit(request, [document for _, document in stored], source="elastic", rejected=refused)
    except QueueFullError as exc:
        return es_error(429, "es_rejected_execution_exception", f"rejected execution: {exc}",
                        headers={"Retry-After": "1"})
    except Exception as exc:
        log.exception("elastic bulk: commit failed")
        return es_error(503, "unavailable_shards_exception", f"could not store the documents: {exc}")
    for index, reason in refused:
        stored[index][0].refuse(reason)
    return None


async def _bulk(request: Request, default_index: str) -> Response:
    started = time.perf_counter()
    try:
        body = await _body(request)
    except BodyError as exc:
        return es_error(exc.status, "parse_exception" if exc.status == 400 else "content_too_long_exception",
                        str(exc))
    if not body.strip():
        return es_error(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    bulk = await asyncio.to_thread(parse_bulk, body, default_index)
    failed = await _store(request, bulk.items)
    if failed is not None:
        return failed
    count_rejected(request, "elastic", "malformed", sum(it.error is not None for it in bulk.items))
    return _json({
        "took": int((time.perf_counter() - started) * 1000),
        "errors": any(it.error is not None for it in bulk.items),
        "items": [_item_answer(it) for it in bulk.items],
    })


@router.post("/_bulk", summary="Elasticsearch bulk API (index/create actions)")
@router.put("/_bulk", include_in_schema=False)
async def bulk(request: Request) -> Response:
    return await _bulk(request, "")


@router.post("/{index}/_bulk", summary="Elasticsearch bulk API with a default index")
@router.put("/{index}/_bulk", include_in_schema=False)
async def bulk_index(request: Request, index: str) -> Response:
    return await _bulk(request, index)


async def _one(request: Request, index: str, doc_id: str) -> Response:
    """The single-document index API (``POST /{index}/_doc``...)."""
    try:
        body = await _body(request)
    except BodyError as exc:
        return es_error(exc.status, "parse_exception", str(exc))
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return es_error(400, "mapper_parsing_exception", f"failed to parse: {exc}")
    if type(doc) is not dict:
        return es_error(400, "mapper_parsing_exception", "failed to parse: the document must be a JSON object")
    item = BulkItem("index", index, doc_id or new_id())
    item.document = _document(doc, index, item.id)
    failed = await _store(request, [item])
    if failed is not None:
        return failed
    if item.error is not None:
        return es_error(item.status, item.error["type"], item.error["reason"])
    return _json(_item_answer(item)["index"], 201)


@router.post("/{index}/_doc", include_in_schema=False)
async def index_doc(request: Request, index: str) -> Response:
    return await _one(request, index, "")


@router.api_route("/{index}/_doc/{doc_id}", methods=["PUT", "POST"], include_in_schema=False)
@router.api_route("/{index}/_create/{doc_id}", methods=["PUT", "POST"], include_in_schema=False)
async def index_doc_id(request: Request, index: str, doc_id: str) -> Response:
    return await _one(request, index, doc_id)


# -------------------------------------------------------------------------------------- handshake
def _info() -> dict[str, Any]:
    return {
        "name": NODE_NAME,
        "cluster_name": CLUSTER_NAME,
        "cluster_uuid": _CLUSTER_UUID,
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "loglens",
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": False,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
        "loglens_version": __version__,
    }


@router.get("/", summary="Elasticsearch version (the handshake shippers make first)")
async def info() -> Response:
    return _json(_info())


@router.head("/", include_in_schema=False)
async def info_head() -> Response:
    return Response(status_code=200)


_LICENSE = {
    "status": "active", "uid": "6c6f676c-656e-7300-0000-000000000000", "type": "basic",
    "issue_date": "2023-01-01T00:00:00.000Z", "issue_date_in_millis": 1672531200000,
    "max_nodes": 1000, "max_resource_units": None, "issued_to": CLUSTER_NAME, "issuer": "elasticsearch",
    "start_date_in_millis": -1,
}


@router.get("/_license", include_in_schema=False)
async def license_() -> Response:
    return _json({"license": _LICENSE})


@router.get("/_xpack", include_in_schema=False)
async def xpack() -> Response:
    on = {"available": True, "enabled": True}
    off = {"available": False, "enabled": False}
    return _json({
        "build": {"hash": "loglens", "date": "2023-11-04T10:04:57.184859352Z"},
        "license": {"uid": _LICENSE["uid"], "type": "basic", "mode": "basic", "status": "active"},
        "features": {"ilm": on, "data_streams": on, "slm": on, "monitoring": off, "security": off,
                     "watcher": off, "ml": off, "graph": off},
        "tagline": "You know, for X",
    })


@router.get("/_cluster/health", include_in_schema=False)
@router.get("/_cluster/health/{index}", include_in_schema=False)
async def cluster_health() -> Response:
    return _json({
        "cluster_name": CLUSTER_NAME, "status": "green", "timed_out": False, "number_of_nodes": 1,
        "number_of_data_nodes": 1, "active_primary_shards": 1, "active_shards": 1, "relocating_shards": 0,
        "initializing_shards": 0, "unassigned_shards": 0, "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0,
    })


@router.get("/_nodes", include_in_schema=False)
@router.get("/_nodes/{rest:path}", include_in_schema=False)
async def nodes(request: Request) -> Response:
    address = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return _json({
        "_nodes": {"total": 1, "successful": 1, "failed": 0},
        "cluster_name": CLUSTER_NAME,
        "nodes": {_NODE_ID: {
            "name": NODE_NAME, "version": ES_VERSION, "build_flavor": "default", "build_type": "docker",
            "roles": ["data", "ingest", "master"], "host": request.url.hostname, "ip": request.url.hostname,
            "transport_address": address, "attributes": {},
            "http": {"bound_address": [address], "publish_address": address, "max_content_length_in_bytes":
                     runtime_of(request).settings.max_body_bytes},
        }},
    })


def _templates(name: str, kind: str) -> dict[str, Any]:
    if kind == "_index_template":
        return {"index_templates": [{"name": name, "index_template": {
            "index_patterns": [f"{name}-*"], "template": {}, "composed_of": [], "data_stream": {},
        }}]}
    if kind == "_component_template":
        return {"component_templates": [{"name": name, "component_template": {"template": {}}}]}
    return {name: {"order": 0, "index_patterns": [f"{name}-*"], "settings": {}, "mappings": {}, "aliases": {}}}


@router.get("/_index_template/{name}", include_in_schema=False)
async def get_index_template(name: str) -> Response:
    return _json(_templates(name, "_index_template"))


@router.get("/_component_template/{name}", include_in_schema=False)
async def get_component_template(name: str) -> Response:
    return _json(_templates(name, "_component_template"))


@router.get("/_template/{name}", include_in_schema=False)
async def get_template(name: str) -> Response:
    return _json(_templates(name, "_template"))


@router.get("/_ilm/policy/{name}", include_in_schema=False)
async def get_ilm_policy(name: str) -> Response:
    return _json({name: {"version": 1, "modified_date": "2023-01-01T00:00:00.000Z",
                         "policy": {"phases": {"hot": {"min_age": "0ms", "actions": {}}}}}})


@router.get("/_data_stream/{name}", include_in_schema=False)
async def get_data_stream(name: str) -> Response:
    return _json({"data_streams": [{
        "name": name, "timestamp_field": {"name": "@timestamp"}, "indices": [], "generation": 1,
        "status": "GREEN", "template": name, "hidden": False, "system": False,
    }]})


@router.get("/_ingest/pipeline/{name}", include_in_schema=False)
async def get_ingest_pipeline(name: str) -> Response:
    return _json({name: {"description": "", "processors": []}})


@router.get("/_alias/{name}", include_in_schema=False)
async def get_alias(name: str) -> Response:
    return _json({name: {"aliases": {name: {"is_write_index": True}}}})


@router.get("/_security/_authenticate", include_in_schema=False)
async def authenticate() -> Response:
    return _json({"username": "loglens", "roles": ["superuser"], "full_name": None, "email": None,
                  "metadata": {}, "enabled": True, "authentication_realm": {"name": "loglens", "type": "native"},
                  "lookup_realm": {"name": "loglens", "type": "native"}, "authentication_type": "realm"})


_SEARCH_APIS = frozenset(("_search", "_msearch", "_count", "_async_search", "_sql", "_eql", "_esql", "_mget"))


def _unsupported(path: str) -> Response:
    return es_error(400, "illegal_argument_exception",
                    f"LogLens accepts logs through the Elasticsearch bulk API but does not serve {path}: "
                    "search with LogLens's own API (/api/v1/search)")


@router.api_route("/_{rest:path}", methods=["GET", "PUT", "POST", "DELETE"], include_in_schema=False)
async def admin(request: Request, rest: str) -> Response:
    """Any other cluster-level API: set-up calls (templates, ILM, pipelines...) are acknowledged."""
    if "_" + rest.split("/", 1)[0] in _SEARCH_APIS:
        return _unsupported(request.url.path)
    if request.method == "GET":
        return _json([] if rest.startswith("cat/") else {})
    return _json({"acknowledged": True})


@router.api_route("/_{rest:path}", methods=["HEAD"], include_in_schema=False)
async def admin_head(rest: str) -> Response:
    return Response(status_code=200)


@router.head("/{index}", include_in_schema=False)
async def index_exists(index: str) -> Response:
    return Response(status_code=200)


@router.put("/{index}", include_in_schema=False)
async def create_index(index: str) -> Response:
    return _json({"acknowledged": True, "shards_acknowledged": True, "index": index})


@router.api_route("/{index}/_{rest:path}", methods=["GET", "PUT", "POST", "DELETE"], include_in_schema=False)
async def index_api(request: Request, index: str, rest: str) -> Response:
    """Per-index set-up calls (``_mapping``, ``_settings``, ``_refresh``...) are acknowledged."""
    if "_" + rest.split("/", 1)[0] in _SEARCH_APIS or rest.startswith("doc/"):
        return _unsupported(request.url.path)
    if request.method == "GET":
        return _json({index: {"aliases": {}, "mappings": {}, "settings": {}}})
    return _json({"acknowledged": True, "_shards": {"total": 1, "successful": 1, "failed": 0}})
