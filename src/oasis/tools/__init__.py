"""Tools a Responses turn offers the model: client-side function tools and hosted tools
the agent loop runs itself, each kind behind :class:`~oasis.tools.base.ToolKind`."""
