"""What the adapter tests share whatever the provider."""


class Meter:
    """The engine's pacer stand-in: counts the requests an adapter says it sends."""

    def __init__(self):
        self.calls = []

    def __call__(self, batch=False):
        self.calls.append(batch)
