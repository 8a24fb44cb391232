"""Helpers shared by the query tests."""

from __future__ import annotations

from dataclasses import replace

from loglens.query.ast import And, Node, Not, Or


def strip(node: Node) -> Node:
    """``node`` with every position set to 0, to compare trees parsed from different texts."""
    if isinstance(node, And):
        return And(tuple(strip(n) for n in node.items))
    if isinstance(node, Or):
        return Or(tuple(strip(n) for n in node.items))
    if isinstance(node, Not):
        return Not(strip(node.item))
    return replace(node, pos=0)
