"""Log patterns: masking variable parts and mining message templates.

``TemplateMiner`` (streaming, used by the ingest pipeline) and ``mask`` are the entry points.
"""

from loglens.patterns.masking import WILDCARD, mask, mask_tokens
from loglens.patterns.miner import TemplateMiner

__all__ = ["WILDCARD", "TemplateMiner", "mask", "mask_tokens"]
