"""Where each line goes: routing body.model to an upstream, and calling it."""
