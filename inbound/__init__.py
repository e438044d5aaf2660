"""Inbound SMTP: bounces to VERP return paths and mail to the service addresses."""

from __future__ import annotations

from inbound.server import InboundServer

__all__ = ["InboundServer"]
