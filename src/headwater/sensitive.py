"""What counts as a secret: the one rule for names that hold secrets and passwords in URLs.

Why one module: the Beam launch record (``headwater_beam.launch``) drops options that hold
secrets before it stores how to relaunch a pipeline, and the server (``headwater.server.redact``)
masks secrets in URLs and text before it answers, logs or stores them. Two rules drift apart —
one dropped ``--db_password`` while the other let ``db_password=...`` through — so both ask
this module. It lives in the core and imports nothing from Headwater, so the adapters, which may
not import ``headwater.server``, use it too.

The name rule: a name (an option, a query parameter, a JSON key) is a secret's when one of its
words — split at ``_ - .``, other punctuation and camelCase — ends with a secret word
(``password``, ``passwd``, ``pass``, ``pwd``, ``passphrase``, ``secret``, ``token``,
``credential``, ``auth``, ``authorization``, ``apikey``, ``accesskey``, ``privatekey``; a plural
too), starts with an unambiguous one (``password``, ``passwd``, ``secret``, ``credential``), or
two adjacent words make ``api key``, ``access key`` or ``private key``. So ``db_password``,
``sslpassword``, ``api_token``, ``apiKey``, ``AWS_SECRET_ACCESS_KEY``, ``gcp_credentials_json``,
``oauth`` are secret names; ``passenger_id``, ``tokenizer``, ``author``, ``max_count`` are not.
Storage options (:func:`has_secret_keys`) are stricter: any key with the word ``key`` counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "URL_PASSWORD", "has_secret_keys", "has_url_password", "is_secret_name",
           "mask_secrets", "mask_url_passwords"]

MASK = "***"

#: A word of a name that ends with one of these names a secret (plurals too).
_ENDINGS = ("password", "passwd", "pass", "pwd", "passphrase", "secret", "token", "credential",
            "auth", "authorization", "apikey", "accesskey", "privatekey")
#: A word that starts with one of these names a secret (``passwordfile``, ``secretkey``).
_STARTS = ("password", "passwd", "secret", "credential")
#: The words of a name: camelCase humps, acronyms, digit runs.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

#: ``scheme://user:password@`` in a URL or in free text. The password runs to the last ``@``
#: before the end of the authority (``/ ? #`` or white space), as :func:`urllib.parse.urlsplit`
#: reads it, so a password holding ``@`` is matched whole.
URL_PASSWORD = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<password>[^/?#\s]*)@")
#: ``name=value`` in free text (query strings, ``key=value`` lists, messages).
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>[^&\s\"']+)")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def _secret_word(word: str) -> bool:
    singular = word[:-1] if word.endswith("s") and not word.endswith("ss") else word
    return (any(w.endswith(end) for w in (word, singular) for end in _ENDINGS)
            or word.startswith(_STARTS))


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (an option without its dashes, a parameter, a key) holds a secret."""
    words = _words(name)
    return any(_secret_word(w) or (i > 0 and _secret_word(words[i - 1] + w))
               for i, w in enumerate(words))


def has_secret_keys(options: Mapping[str, Any]) -> bool:
    """Whether storage options (fsspec keyword arguments, nested mappings included) hold a
    secret: a key that :func:`is_secret_name`, or one with the word ``key`` (s3fs's ``key``,
    the access key id, travels with its ``secret``), or a URL with a password."""
    for k, v in options.items():
        if is_secret_name(str(k)) or "key" in _words(str(k)):
            return True
        if isinstance(v, Mapping) and has_secret_keys(v):
            return True
        if isinstance(v, str) and has_url_password(v):
            return True
    return False


def has_url_password(text: str) -> bool:
    """Whether ``text`` holds a URL with a password (``scheme://user:password@host``)."""
    return URL_PASSWORD.search(text) is not None


def mask_url_passwords(text: str, mask: str = MASK) -> str:
    """``text`` with every URL password replaced by ``mask`` (the user name stays)."""
    return URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{mask}@", text)


def mask_secrets(text: str, mask: str = MASK) -> str:
    """``text`` with URL passwords and the values of ``name=value`` pairs whose name is a
    secret's (:func:`is_secret_name`) replaced by ``mask``."""
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    text = mask_url_passwords(text, mask)
    return _ASSIGNMENT.sub(
        lambda m: f"{m.group('name')}={mask}" if is_secret_name(m.group("name")) else m.group(0),
        text)
