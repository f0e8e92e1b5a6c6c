"""A plugin whose save hook is misspelt: pluggy would register it and never call it."""

from alphazoo import hookimpl


@hookimpl
def alphazoo_sav(request):  # noqa: ANN001, ANN201  (the typo is the point)
    return None
