"""What IAM refused, in the words of a run's failure reason (`mlops run`'s summary and report)."""

from __future__ import annotations


def with_denials(reason: str | None, denials: list[dict[str, str]]) -> str | None:
    """A failure reason that names what IAM refused (principal, action, resource), unless it does so
    already (a denied Lambda's error carries AWS's message itself)."""
    if not denials or (reason and "is not authorized to perform" in reason):
        return reason
    named = "; ".join(f"{d['principal']} may not {d['action']} on {d['resource']}" for d in denials[-3:])
    return f"{reason or 'failed'} (IAM denied: {named})"
