"""The one exception type for expected sandbox failures (shown as one line, never a traceback)."""


class SandboxError(Exception):
    """An expected failure with a message fit for the operator (missing tool, not root, boot timeout)."""
