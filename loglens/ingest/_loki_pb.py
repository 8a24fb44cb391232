"""Loki's push messages (``logproto.PushRequest``, from Loki's ``push.proto``), built at import time
with the protobuf runtime's descriptor API, so no generated code or ``protoc`` is needed.

Wire-compatible with Loki's definitions, except that the text fields are declared ``bytes``: Go
does not check UTF-8, so a shipper may send invalid UTF-8, which LogLens replaces rather than
refusing the whole push. The timestamp is a local message laid out like
``google.protobuf.Timestamp`` (``int64 seconds = 1; int32 nanos = 2``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="loglens/loki_push.proto", package="logproto", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Timestamp", ("seconds", 1, _F.TYPE_INT64, one, ""), ("nanos", 2, _F.TYPE_INT32, one, ""))
    message("LabelPairAdapter", ("name", 1, _F.TYPE_BYTES, one, ""), ("value", 2, _F.TYPE_BYTES, one, ""))
    message(
        "EntryAdapter",
        ("timestamp", 1, _F.TYPE_MESSAGE, one, ".logproto.Timestamp"),
        ("line", 2, _F.TYPE_BYTES, one, ""),
        ("structuredMetadata", 3, _F.TYPE_MESSAGE, many, ".logproto.LabelPairAdapter"),
    )
    message(
        "StreamAdapter",
        ("labels", 1, _F.TYPE_BYTES, one, ""),
        ("entries", 2, _F.TYPE_MESSAGE, many, ".logproto.EntryAdapter"),
        ("hash", 3, _F.TYPE_UINT64, one, ""),
    )
    message("PushRequest", ("streams", 1, _F.TYPE_MESSAGE, many, ".logproto.StreamAdapter"))
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())

PushRequest: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("logproto.PushRequest"))
