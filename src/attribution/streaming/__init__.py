"""Faust glue: the app factory, topics, the per-user state table, the config cache, the agents.

No attribution logic lives here: agents decode, call `attribution.domain.step`, encode and send.
"""

from attribution.streaming.app import create_app

__all__ = ["create_app"]
