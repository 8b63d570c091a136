"""Policy files: ``load_policy`` (a built-in by name, or a JSON file read and validated, every error naming the file
and the field) and ``save_policy`` (written through ``delfverify.outputs``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..outputs import Output, write_output
from .builtins import BUILTINS, builtin_policy
from .model import Policy
from .schema import PolicyError, policy_from_dict

#: An integer literal with more digits than this is out of every field's range; it is not even converted (Python
#: refuses to convert more than 4,300 digits, and converting takes quadratic time).
_MAX_DIGITS = 20


def load_policy(name_or_file: str | os.PathLike, extractor: str | Any, geometry: str | None = None,
                null_table: Any = None) -> Policy:
    """A built-in policy by name, or a policy JSON file (its thresholds may be false-match rates, read with
    ``null_table``: ``policy_from_dict``).

    Raises
    ------
    PolicyError
        Unknown name, unreadable file, invalid JSON (with line and column; nested too deeply; an integer of more
        than 20 digits) or invalid policy; the file and the field are named.
    """
    text = str(name_or_file)
    if text in BUILTINS:
        return builtin_policy(text, extractor, geometry)
    path = Path(text)
    if not path.is_file():
        raise PolicyError(f"{text}: no such policy file and no built-in policy of that name "
                          f"(built-ins: {', '.join(BUILTINS)})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PolicyError(f"{path}: invalid policy: JSON nested too deeply (a policy is a few levels deep)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy file ({exc})") from None
    huge = _find_huge_integer(doc)
    if huge is not None:
        raise PolicyError(f"{path}: {huge[0]}: integer of {huge[1].digits} digits is out of range")
    try:
        policy = policy_from_dict(doc, null_table)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    return policy if policy.extractor else replace(policy, extractor=extractor if isinstance(extractor, str)
                                                    else extractor.name)


@dataclass(frozen=True)
class _HugeInteger:
    """Stands, in a parsed document, for an integer literal of more than ``_MAX_DIGITS`` digits."""

    digits: int


def _parse_int(text: str) -> int | _HugeInteger:
    digits = len(text.lstrip("-"))
    return _HugeInteger(digits) if digits > _MAX_DIGITS else int(text)


def _find_huge_integer(doc: Any) -> tuple[str, _HugeInteger] | None:
    """The field (``policy.bands[0].k``) of the first huge integer literal in document order, if any."""
    stack: list[tuple[str, Any]] = [("policy", doc)]
    while stack:  # iterative: a document may be nested up to Python's recursion limit
        where, value = stack.pop()
        if isinstance(value, _HugeInteger):
            return where, value
        if isinstance(value, dict):
            stack.extend((f"{where}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def save_policy(policy: Policy, path: str | os.PathLike | Output) -> None:
    """Write a policy JSON document (readable by ``load_policy``) through the output layer (``delfverify.outputs``):
    a regular file atomically, a device, a FIFO or ``-`` written into."""
    write_output(path, encode_policy(policy), name="the policy")


def encode_policy(policy: Policy) -> bytes:
    """The bytes of a policy file, as ``save_policy`` writes them."""
    return (json.dumps(policy.to_dict(), indent=2) + "\n").encode("utf-8")
