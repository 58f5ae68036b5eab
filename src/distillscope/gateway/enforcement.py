"""The hook the traffic detector drives: guards observe logged requests and propose actions.

A :class:`RequestGuard` sees every :class:`~distillscope.gateway.requestlog.RequestRecord` after it
is logged and returns :class:`EnforcementAction` objects; :func:`apply_actions` applies those that
escalate (``active → throttled → suspended → revoked``) and never relaxes a state, so an automatic
guard can never reinstate a key an operator revoked. Every applied change is audited by the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Protocol, Sequence

from distillscope.errors import ConfigError, GatewayError
from distillscope.gateway.accounts import AccountStore, KeyState
from distillscope.gateway.requestlog import RequestRecord

log = logging.getLogger(__name__)

TARGET_KINDS = ("account", "key")


@dataclass(frozen=True)
class EnforcementAction:
    """A proposed state change for an account or a key, with why and who."""

    target_kind: Literal["account", "key"]
    target_id: str
    state: KeyState
    reason: str
    actor: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target_kind not in TARGET_KINDS:
            raise ConfigError(f"enforcement target kind {self.target_kind!r} is invalid",
                              hint="use 'account' or 'key'", code="invalid_target")
        object.__setattr__(self, "state", KeyState.parse(self.state))
        if self.state is KeyState.ACTIVE:
            raise ConfigError("an enforcement action cannot set a target back to 'active'",
                              hint="reinstate keys by hand with `distillscope accounts activate`",
                              code="invalid_state")
        if not self.reason or not self.actor:
            raise ConfigError("an enforcement action needs a reason and an actor", code="missing_reason")


class RequestGuard(Protocol):
    """Watches the request log in real time (implemented by ``distillscope.traffic``)."""

    def observe(self, record: RequestRecord) -> Sequence[EnforcementAction]: ...


def apply_actions(store: AccountStore, actions: Iterable[EnforcementAction]) -> list[EnforcementAction]:
    """Apply the actions that escalate the target's current state; return those applied.

    The comparison with the current state happens under a row lock in the same transaction as
    the change (``only_escalate``), so concurrent guards and operators cannot race a state down.
    Actions naming an unknown target are logged and skipped, so one bad proposal cannot stop
    the others.
    """
    applied: list[EnforcementAction] = []
    for action in actions:
        setter = store.set_key_state if action.target_kind == "key" else store.set_account_state
        try:
            changed = setter(action.target_id, action.state, reason=action.reason, actor=action.actor,
                             evidence=action.evidence, only_escalate=True)
        except GatewayError as exc:
            log.warning("enforcement action on %s %s not applied: %s", action.target_kind, action.target_id, exc)
            continue
        if not changed:
            log.debug("skipping %s %s -> %s: already as strict", action.target_kind, action.target_id,
                      action.state.value)
            continue
        log.info("enforcement: %s %s -> %s by %s (%s)", action.target_kind, action.target_id,
                 action.state.value, action.actor, action.reason)
        applied.append(action)
    return applied
