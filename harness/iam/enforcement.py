"""The decision on each call, and the denials it made: owned by one HarnessContext (`context.iam`).

`IamEnforcement.authorize(principal, requests)` evaluates the principal's identity-based policies for
every authorization request of a call, as AWS's policy evaluation logic does for one account (IAM user
guide, "Policy evaluation logic": an explicit Deny wins, else an Allow allows, else the request is
implicitly denied; deployer.iam_policy does the evaluation). The admin is never denied. A denial carries
AWS's message (IAM user guide, "Troubleshoot access denied error messages"):

    User: arn:aws:sts::123456789012:assumed-role/ROLE/SESSION is not authorized to perform: ACTION on
    resource: ARN because no identity-based policy allows the ACTION action
    ... with an explicit deny in an identity-based policy

Every denial is kept (`denials()`), so that the run report and a failure reason can name the principal,
the action and the resource. `enabled` is the switch (on by default): off, every call runs with full
rights, as before this enforcement existed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from deployer.iam_policy import Request, evaluate
from harness.iam.credentials import ADMIN_CREDENTIALS, Credentials, credentials_for, find_role
from harness.iam.principals import Principal

# How many denials a context keeps (the newest).
KEEP_DENIALS: Final = 200


@dataclass(frozen=True)
class Denial:
    """One refused authorization request."""

    principal_arn: str
    action: str
    resource: str
    reason: Literal["implicit-deny", "explicit-deny"]
    policy_name: str = ""

    @property
    def message(self) -> str:
        head = (
            f"User: {self.principal_arn} is not authorized to perform: {self.action} "
            f"on resource: {self.resource}"
        )
        if self.reason == "explicit-deny":
            return f"{head} with an explicit deny in an identity-based policy"
        return f"{head} because no identity-based policy allows the {self.action} action"

    def as_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal_arn,
            "action": self.action,
            "resource": self.resource,
            "reason": self.reason,
            "message": self.message,
        }


class IamEnforcement:
    """The switch and the decisions of one context; thread-safe (moto's server threads call it)."""

    def __init__(self, enabled: bool = True) -> None:
        self._lock = threading.Lock()
        self._enabled = enabled
        self._denials: list[Denial] = []
        self._sessions: dict[tuple[str, str, str], Credentials] = {}

    @property
    def enabled(self) -> bool:
        with self._lock:
            return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._enabled = enabled

    def authorize(self, principal: Principal, requests: Iterable[Request]) -> Denial | None:
        """The first denied request of a call, or None when all are allowed (or enforcement is off)."""
        if principal.is_admin or not self.enabled:
            return None
        for request in requests:
            decision = evaluate(principal.policies, request)
            if decision.allowed:
                continue
            denial = Denial(
                principal.arn,
                request.action,
                request.resource,
                "explicit-deny" if decision.reason == "explicit-deny" else "implicit-deny",
                decision.statement.policy_name if decision.statement is not None else "",
            )
            self.record(denial)
            return denial
        return None

    def session(self, role_arn: str, session_name: str, service: str) -> Credentials:
        """Credentials `service` acts with for `role_arn`: one AssumeRole per role, session and service,
        kept for this context; the admin's while enforcement is off (the calls then run as before).

        A role that does not exist in moto's IAM backend also gets the admin's: AWS refuses such a role
        when the resource is created (CreateStateMachine, CreateFunction: the service cannot assume it),
        which moto does not check, and the harness's own stacks always create their roles; many unit
        tests of the seams name made-up roles. `mlops check-iam` and the templates' tests cover that a
        deployed resource's role exists."""
        if not self.enabled or find_role(role_arn) is None:
            return ADMIN_CREDENTIALS
        key = (role_arn, session_name, service)
        with self._lock:
            known = self._sessions.get(key)
        if known is not None:
            return known
        fresh = credentials_for(self, role_arn, session_name, service)
        with self._lock:
            return self._sessions.setdefault(key, fresh)

    def record(self, denial: Denial) -> None:
        with self._lock:
            self._denials.append(denial)
            del self._denials[:-KEEP_DENIALS]

    def denials(self) -> list[Denial]:
        """The denials so far, oldest first."""
        with self._lock:
            return list(self._denials)

    def clear(self) -> None:
        with self._lock:
            self._denials.clear()
            self._sessions.clear()
