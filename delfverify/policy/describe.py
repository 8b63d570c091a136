"""A policy in one line of text, for the terminal (``describe_policy``)."""

from __future__ import annotations

from .model import Action, Policy


def _action_text(action: Action) -> str:
    (op, value), = action.to_json().items()
    if op == "range":
        return f"->[{value[0]:.3g},{value[1]:.3g}]"
    return f"x{value:.3g}" if op == "multiply" else f"={value:.3g}"


def describe_policy(policy: Policy) -> str:
    """The policy in one line, e.g. ``bands (max, spread): [0-1) k3 <5 x0.333 >=10 ->[0.667,1]``."""
    if policy.mode != "bands":
        f = policy.fusion
        return (f"{policy.mode} ({policy.combine}, {policy.selection}): k{f.k} weight {f.weight:g} "
                f"min_inliers {f.min_inliers:g} cap {f.cap:g}")
    parts = []
    for band in policy.bands:
        text = f"[{band.lower:g}-{band.upper:g})"
        if band.skip:
            parts.append(f"{text} skip")
            continue
        text += f" k{band.k}"
        if band.min_inliers is not None:
            text += f" <{band.min_inliers} {_action_text(band.suppress)}"
        if band.boost_inliers is not None:
            text += f" >={band.boost_inliers} {_action_text(band.boost)}"
        parts.append(text)
    return f"bands ({policy.combine}, {policy.selection}): " + "; ".join(parts)
