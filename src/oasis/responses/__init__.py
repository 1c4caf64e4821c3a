"""The Responses API: orchestration, item conversion, stream events, background jobs."""
