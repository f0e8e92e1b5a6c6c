"""Trust decisions for a load, made in one place.

What each proof covers:

- the **hashes** (per-file SHA-256 and the closing SHA-256) prove a bundle has not been
  corrupted since it was written. Anyone can compute them, so they say nothing about who wrote
  it: a rewritten bundle with recomputed hashes passes them.
- the **HMAC** (``sign_key=``) proves the bundle was written by a holder of the key, under the
  store key recorded in its manifest (``manifest["key"]``, which the MAC covers). A signature
  vouches only for that key: a signed bundle copied to another key is a replay.

Rules, for every format:

1. A signature that does not verify with a key the caller passed is refused; so is one
   that does not verify with ``$ALPHAZOO_SIGNING_KEY`` on a format that runs code. (A key from
   the environment does not block a safe bundle another team signed with its own key.)
2. A signature that verifies but was made for another store key is refused unless the caller
   passes ``trusted=True``.
3. Formats that run code (pickle, skops or Keras content outside the safe lists) need
   ``trusted=True`` or a signature valid for this key: :func:`may_run_code`.
4. Signed-only loading (``zoo.load(..., require_signature=True)``, ``Zoo(...,
   require_signature=True)`` or ``$ALPHAZOO_REQUIRE_SIGNATURE=1``) refuses every bundle whose
   signature is not valid for this key, whatever its format, and ``trusted=True`` does not
   lift it: a deployment that demands signatures means it. Any of the three can demand it;
   none can waive another's demand.

Load limits (:mod:`alphazoo.limits`) hold whatever the trust: a signature vouches for the
author, not for how much memory the bundle asks for.
"""

from __future__ import annotations

import os

from .contracts import LoadRequest
from .errors import UntrustedModelError

__all__ = ["ENV_REQUIRE_SIGNATURE", "check_trust", "may_run_code", "require_signature_from_env",
           "signed_for_key"]

ENV_REQUIRE_SIGNATURE = "ALPHAZOO_REQUIRE_SIGNATURE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def require_signature_from_env() -> bool:
    """True when ``$ALPHAZOO_REQUIRE_SIGNATURE`` demands signed-only loading.

    ``1``/``true``/``yes``/``on`` demand it, unset or ``0``/``false``/``no``/``off`` do not;
    any other value raises ValueError, so a typo never turns the policy off silently.
    """
    text = os.environ.get(ENV_REQUIRE_SIGNATURE, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"${ENV_REQUIRE_SIGNATURE} must be 1 or 0 (true/false), not {text!r}")


def signed_for_key(request: LoadRequest) -> bool:
    """True when the bundle's HMAC verified and it was signed for the key it is loaded from."""
    return bool(request.signature_valid) and request.manifest.get("key") == request.key


def may_run_code(request: LoadRequest) -> bool:
    """Whether content that runs code on load may run: ``trusted=True``, or a signature valid
    for this key (rule 3). Adapters ask this instead of reading the request's flags."""
    return bool(request.trusted) or signed_for_key(request)


def check_trust(request: LoadRequest, safe: bool) -> None:
    """Apply rules 1, 2 and 4 to every load and rule 3 to formats that are not ``safe``.

    Safety comes from the loader's own format table, never from the bundle's word. Raises
    :class:`~alphazoo.UntrustedModelError` with what to do.
    """
    manifest, key = request.manifest, request.key
    signed = manifest.get("signature") is not None
    saved_key = manifest.get("key")
    source = {"argument": "the sign_key argument",
              "environment": "$ALPHAZOO_SIGNING_KEY"}.get(request.sign_key_source or "", "")
    if signed and source and not request.signature_valid:
        if not safe or request.sign_key_source == "argument" or request.require_signature:
            raise UntrustedModelError(
                f"{key!r} is signed, but its HMAC does not verify with the key from {source}: "
                "the bundle was changed after signing, or signed with another key"
            )
    if request.signature_valid and saved_key != key and (
            request.require_signature or not request.trusted):
        raise UntrustedModelError(
            f"{key!r} holds a bundle signed for key {saved_key!r}. A signature vouches only "
            "for the key it was saved under, so a copy cannot replay an old model under a new "
            f"name: save it again under {key!r}"
            + ("." if request.require_signature else ", or pass trusted=True.")
        )
    if request.require_signature and not signed_for_key(request):
        why = ("it is not signed" if not signed else
               "no signing key was given (sign_key= or $ALPHAZOO_SIGNING_KEY)" if not source
               else "its signature does not verify")
        raise UntrustedModelError(
            f"signed-only loading is on (require_signature=True, the zoo's setting or "
            f"${ENV_REQUIRE_SIGNATURE}) and {key!r} cannot be shown to be signed for this key: "
            f"{why}. Save it with zoo.save(..., sign_key=KEY) and load it with that key; "
            "trusted=True does not lift this policy."
        )
    if safe or may_run_code(request):
        return
    fmt = manifest.get("format")
    if not signed:
        raise UntrustedModelError(
            f"format {fmt!r} runs code when it is loaded, and {key!r} is not signed. Pass "
            "trusted=True if you know where it came from, or save it again with "
            "zoo.save(..., sign_key=KEY) and load it with that key ($ALPHAZOO_SIGNING_KEY "
            "serves both). Safe formats need neither."
        )
    raise UntrustedModelError(
        f"format {fmt!r} runs code when it is loaded, and {key!r} is signed but no signing key "
        "was given: load it with sign_key=KEY (or $ALPHAZOO_SIGNING_KEY), the key it was saved "
        "with, or pass trusted=True if you know where it came from. Safe formats need neither."
    )
