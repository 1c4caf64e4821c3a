"""Search engines behind the ``web_search`` tool: one small protocol, one module each.

The operator picks one in the ``[web_search]`` settings (:func:`create_engine`); the
engine's address is the operator's, so its requests do not go through the URL policy that
guards addresses a request supplies.
"""

from oasis.search.base import Location, SearchEngine, SearchError, SearchQuery, SearchResult
from oasis.search.factory import create_engine

__all__ = [
    "Location",
    "SearchEngine",
    "SearchError",
    "SearchQuery",
    "SearchResult",
    "create_engine",
]
