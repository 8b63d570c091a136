"""Policy files: ``load_policy`` (a built-in by name, or a JSON file read and validated, every error naming the file
and the field) and ``save_policy`` (written through ``delfverify.outputs``)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import shorten
from ..fileio import read_document
from ..numbers import load_json_document
from ..outputs import Output, write_output
from .builtins import BUILTINS, builtin_policy
from .model import Policy
from .schema import PolicyError, policy_from_dict

#: The largest policy file read: a policy is a few kilobytes.
MAX_FILE_BYTES = 2**20


def load_policy(name_or_file: str | os.PathLike | Mapping[str, Any], extractor: str | Any,
                geometry: str | None = None, null_table: Any = None) -> Policy:
    """A built-in policy by name, a policy JSON file, or the document such a file holds as a dict (checked as the
    file would be: written as JSON and read back); its thresholds may be false-match rates, read with
    ``null_table`` (``policy_from_dict``).

    The file may also be a FIFO or ``/dev/stdin``; at most ``MAX_FILE_BYTES`` are read. Its numbers are read by
    ``delfverify.numbers.load_json``: ``NaN``, ``Infinity``, numbers out of the float range and integers of more
    than 20 digits are refused, naming the field.

    Raises
    ------
    PolicyError
        Unknown name, unreadable file, invalid JSON (with line and column; nested too deeply; a number refused) or
        invalid policy; the file and the field are named.
    """
    if isinstance(name_or_file, Mapping):  # checked as the file holding it would be, its numbers included
        path = "the policy document (a dict)"
        try:
            data = json.dumps(name_or_file, allow_nan=True).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise PolicyError(f"{path}: not a JSON document ({shorten(str(exc), 200)})") from None
        return _parse(data, path, extractor, null_table)
    text = str(name_or_file)
    if text in BUILTINS:
        return builtin_policy(text, extractor, geometry)
    path = Path(text)
    data = read_document(path, "policy", PolicyError, MAX_FILE_BYTES,
                         missing=f"{text}: no such policy file and no built-in policy of that name "
                                 f"(built-ins: {', '.join(BUILTINS)})")
    return _parse(data, path, extractor, null_table)


def _parse(data: bytes, path: str | Path, extractor: str | Any, null_table: Any) -> Policy:
    """The policy of a policy file's bytes (``load_policy``), every error naming ``path``."""
    doc = load_json_document(data, str(path), "policy", PolicyError, "policy")
    try:
        policy = policy_from_dict(doc, null_table)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    return policy if policy.extractor else replace(policy, extractor=extractor if isinstance(extractor, str)
                                                    else extractor.name)


def save_policy(policy: Policy, path: str | os.PathLike | Output) -> None:
    """Write a policy JSON document (readable by ``load_policy``) through the output layer (``delfverify.outputs``):
    a regular file atomically, a device, a FIFO or ``-`` written into."""
    write_output(path, encode_policy(policy), name="the policy")


def encode_policy(policy: Policy) -> bytes:
    """The bytes of a policy file, as ``save_policy`` writes them."""
    return (json.dumps(policy.to_dict(), indent=2) + "\n").encode("utf-8")
