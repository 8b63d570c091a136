"""Policy files: ``load_policy`` (a built-in by name, or a JSON file read and validated, every error naming the file
and the field) and ``save_policy`` (written through ``delfverify.outputs``)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..fileio import NotAFileError, read_input
from ..numbers import NumberError, RepeatedFieldError, load_json
from ..outputs import Output, write_output
from .builtins import BUILTINS, builtin_policy
from .model import Policy
from .schema import PolicyError, policy_from_dict

#: The largest policy file read: a policy is a few kilobytes.
MAX_FILE_BYTES = 2**20


def load_policy(name_or_file: str | os.PathLike, extractor: str | Any, geometry: str | None = None,
                null_table: Any = None) -> Policy:
    """A built-in policy by name, or a policy JSON file (its thresholds may be false-match rates, read with
    ``null_table``: ``policy_from_dict``).

    The file may also be a FIFO or ``/dev/stdin``; at most ``MAX_FILE_BYTES`` are read. Its numbers are read by
    ``delfverify.numbers.load_json``: ``NaN``, ``Infinity``, numbers out of the float range and integers of more
    than 20 digits are refused, naming the field.

    Raises
    ------
    PolicyError
        Unknown name, unreadable file, invalid JSON (with line and column; nested too deeply; a number refused) or
        invalid policy; the file and the field are named.
    """
    text = str(name_or_file)
    if text in BUILTINS:
        return builtin_policy(text, extractor, geometry)
    path = Path(text)
    try:
        data = read_input(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise PolicyError(f"{text}: no such policy file and no built-in policy of that name "
                          f"(built-ins: {', '.join(BUILTINS)})") from None
    except IsADirectoryError:
        raise PolicyError(f"{path}: is a directory, not a policy file") from None
    except NotAFileError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file ({exc.strerror or exc})") from None
    try:
        doc = load_json(data.decode("utf-8"), "policy")
    except (NumberError, RepeatedFieldError) as exc:
        raise PolicyError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PolicyError(f"{path}: invalid policy: JSON nested too deeply (a policy is a few levels deep)") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: cannot read policy file (not UTF-8: {exc.reason} at byte {exc.start})") from None
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
