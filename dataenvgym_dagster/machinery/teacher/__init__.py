"""The LLM teacher's machinery: an OpenAI-compatible chat client with retries, a reply cache and a ledger."""

from dataenvgym_dagster.machinery.teacher.cache import CacheMissError, CacheMode, ReplyCache
from dataenvgym_dagster.machinery.teacher.client import EndpointSettings, OpenAIChat
from dataenvgym_dagster.machinery.teacher.ledger import CallRecord, MemoryLedger, WarehouseLedger

__all__ = [
    "CacheMissError", "CacheMode", "CallRecord", "EndpointSettings", "MemoryLedger", "OpenAIChat", "ReplyCache",
    "WarehouseLedger",
]
