"""Retrieval over a user's documents: parse, chunk, filter and rank (hybrid search).

Pure functions and small classes without I/O of their own; the vector-store service
(:mod:`oasis.services.vector_stores`) feeds them bytes, tokens and database rows.
"""
