"""``distillscope accounts …`` and ``distillscope logs …``: the gateway's accounts and request log."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from distillscope.cli.common import RichProgress, console, err_console, print_table, state
from distillscope.errors import ConfigError, GatewayError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNLIMITED = ("none", "unlimited", "off")


def parse_duration(text: str, *, option: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` → timedelta."""
    m = _DURATION_RE.match(text or "")
    if not m:
        raise ConfigError(f"{option} {text!r} is not a duration", hint="use a number and a unit, e.g. 30d, 12h, 90m")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(text: str | None, *, option: str) -> datetime | None:
    """An ISO date/time (UTC unless it says otherwise) or a duration ago (``7d``)."""
    if text is None:
        return None
    if _DURATION_RE.match(text):
        return datetime.now(timezone.utc) - parse_duration(text, option=option)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is neither a date/time nor a duration",
                          hint="use e.g. 2026-01-31, 2026-01-31T12:00:00Z or 7d") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _limit_value(text: str | None, option: str) -> object:
    """An int, None for 'none' (unlimited), or Ellipsis when the option was not given."""
    if text is None:
        return ...
    if text.strip().lower() in _UNLIMITED:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a whole number", hint="use e.g. 60, or 'none' for no limit") \
            from None


@contextmanager
def _open(ctx: typer.Context) -> Iterator[tuple[Any, Any]]:
    """The migrated gateway database of the settings, as (engine, AccountStore); disposed after."""
    from distillscope.gateway.accounts import AccountStore
    from distillscope.gateway.db import make_engine, upgrade_database

    from sqlalchemy.exc import SQLAlchemyError

    engine = make_engine(state(ctx).settings().resolved_database_url)
    try:
        upgrade_database(engine)
        yield engine, AccountStore(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise GatewayError(f"the gateway database failed: {reason}", hint="check that it is reachable and retry",
                           code="database_unavailable") from exc
    finally:
        engine.dispose()


def _fmt(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def _show_key_once(plaintext: str, key_id: str) -> None:
    err_console.print(f"API key {key_id} created. It is shown only now; store it safely:")
    typer.echo(plaintext)


def _limit_changes(rpm: str | None, tpm: str | None, conc: str | None, factor: float | None) -> dict:
    """The limit fields given on the command line (validated before anything is touched)."""
    changes = {k: v for k, v in (("rpm", _limit_value(rpm, "--rpm")), ("tpm", _limit_value(tpm, "--tpm")),
                                 ("max_concurrent", _limit_value(conc, "--concurrency"))) if v is not ...}
    if factor is not None:
        changes["throttle_factor"] = factor
    return changes


def _limits_line(limits: Any) -> str:
    return (f"rpm={_fmt(limits.rpm)} tpm={_fmt(limits.tpm)} concurrency={_fmt(limits.max_concurrent)} "
            f"throttle_factor={limits.throttle_factor}")


def _account_json(a: Any) -> dict:
    return {"account_id": a.account_id, "name": a.name, "state": a.state.value,
            "limits": {"rpm": a.limits.rpm, "tpm": a.limits.tpm, "max_concurrent": a.limits.max_concurrent,
                       "throttle_factor": a.limits.throttle_factor},
            "created_at": a.created_at.isoformat(), "monthly_token_budget": a.monthly_token_budget,
            "model_limits": {m: {"rpm": x.rpm, "tpm": x.tpm, "max_concurrent": x.max_concurrent}
                             for m, x in a.model_limits.items()},
            "keys": [{"key_id": k.key_id, "state": k.state.value, "created_at": k.created_at.isoformat(),
                      "expires_at": k.expires_at.isoformat() if k.expires_at else None} for k in a.keys]}


def _print_audit(entries: Any) -> None:
    print_table("audit", ["time", "target", "action", "from", "to", "actor", "reason"],
                [[e.ts.isoformat(timespec="seconds"), f"{e.target_kind} {e.target_id}", e.action,
                  e.old_state.value if e.old_state else "", e.new_state.value if e.new_state else "", e.actor,
                  e.reason] for e in entries])


RPM = typer.Option(None, "--rpm", help="Requests per minute ('none' = unlimited).")
TPM = typer.Option(None, "--tpm", help="Tokens per minute ('none' = unlimited).")
CONC = typer.Option(None, "--concurrency", help="Concurrent requests ('none' = unlimited).")
FACTOR = typer.Option(None, "--throttle-factor", help="Limit multiplier while throttled, in (0, 1].")
ACCOUNT = typer.Argument(..., help="Account id or name.")
EXPIRES = typer.Option(None, "--expires", help="The key stops working after this long, e.g. 30d or 12h "
                                               "(default: never).")


def _expiry(text: str | None) -> datetime | None:
    return None if text is None else datetime.now(timezone.utc) + parse_duration(text, option="--expires")

accounts_app = typer.Typer(help="Gateway accounts, API keys, limits and enforcement states.", no_args_is_help=True)
logs_app = typer.Typer(help="The gateway's request log: export, retention, usage.", no_args_is_help=True)


@accounts_app.command("create")
def create(ctx: typer.Context, name: str = typer.Argument(..., help="Account name (unique)."),
           rpm: Optional[str] = RPM, tpm: Optional[str] = TPM, concurrency: Optional[str] = CONC,
           throttle_factor: Optional[float] = FACTOR,
           key: bool = typer.Option(True, "--key/--no-key", help="Also create a first API key."),
           expires: Optional[str] = EXPIRES) -> None:
    """Create an account (and its first API key, printed once)."""
    from distillscope.gateway.accounts import Limits

    limits = replace(Limits(), **_limit_changes(rpm, tpm, concurrency, throttle_factor))
    expires_at = _expiry(expires)
    with _open(ctx) as (_, store):
        info = store.create_account(name, limits=limits, actor="cli")
        err_console.print(f"account {info.account_id} ({info.name}) created: {_limits_line(limits)}",
                          highlight=False)
        if key:
            plaintext, k = store.create_key(info.account_id, actor="cli", expires_at=expires_at)
            _show_key_once(plaintext, k.key_id)


@accounts_app.command("add-key")
def add_key(ctx: typer.Context, account: str = ACCOUNT, expires: Optional[str] = EXPIRES) -> None:
    """Create another API key for an account (printed once)."""
    expires_at = _expiry(expires)
    with _open(ctx) as (_, store):
        plaintext, k = store.create_key(account, actor="cli", expires_at=expires_at)
    if expires_at is not None:
        err_console.print(f"key {k.key_id} expires at {expires_at.isoformat(timespec='seconds')}", highlight=False)
    _show_key_once(plaintext, k.key_id)


@accounts_app.command("model-limits")
def model_limits(ctx: typer.Context, account: str = ACCOUNT,
                 model: str = typer.Argument(..., help="Model id as clients send it."),
                 rpm: Optional[str] = RPM, tpm: Optional[str] = TPM, concurrency: Optional[str] = CONC,
                 remove: bool = typer.Option(False, "--remove", help="Drop this model's limits.")) -> None:
    """Limit an account's keys on one model, on top of their own limits (unset flags: unlimited)."""
    from distillscope.gateway.accounts import Limits

    changes = _limit_changes(rpm, tpm, concurrency, None)
    if remove and changes:
        raise ConfigError("--remove takes no limit flags", hint="drop --rpm/--tpm/--concurrency or --remove")
    limits = None if remove else replace(Limits(rpm=None, tpm=None, max_concurrent=None), **changes)
    with _open(ctx) as (_, store):
        store.set_model_limits(account, model, limits, actor="cli")
    console.print(f"{account} on {model}: " + ("no model limits" if limits is None else _limits_line(limits)),
                  highlight=False)


@accounts_app.command("budget")
def budget(ctx: typer.Context, account: str = ACCOUNT,
           monthly_tokens: str = typer.Argument(..., help="Tokens per UTC month, or 'none' to lift the budget.")
           ) -> None:
    """Set an account's monthly token budget; once spent, its requests get 429 insufficient_quota."""
    value = _limit_value(monthly_tokens, "MONTHLY_TOKENS")
    with _open(ctx) as (_, store):
        store.set_budget(account, value, actor="cli")
    console.print(f"{account}: monthly token budget {_fmt(value)}", highlight=False)


@accounts_app.command("spend")
def spend(ctx: typer.Context,
          period: Optional[str] = typer.Option(None, "--period", help="UTC month YYYY-MM (default: this month)."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON lines.")) -> None:
    """Per-account requests, tokens and budget left in one month."""
    from distillscope.gateway.budgets import spend_report
    from distillscope.gateway.requestlog import RequestLog

    with _open(ctx) as (engine, store):
        rows = spend_report(store, RequestLog(engine), period)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(vars(r)))
        return
    print_table(f"spend {rows[0].period if rows else period or ''}",
                ["account", "name", "requests", "prompt tokens", "completion tokens", "total", "budget", "left"],
                [[r.account_id, r.account_name or "", r.requests, r.prompt_tokens, r.completion_tokens,
                  r.total_tokens, _fmt(r.monthly_token_budget), _fmt(r.budget_left)] for r in rows])


@accounts_app.command("list")
def list_accounts(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON lines.")) -> None:
    """List accounts with their state, limits and number of active keys."""
    with _open(ctx) as (_, store):
        rows = store.list_accounts()
    if as_json:
        for a in rows:
            typer.echo(json.dumps(_account_json(a)))
        return
    print_table("accounts", ["id", "name", "state", "rpm", "tpm", "concurrency", "keys (active/all)"],
                [[a.account_id, a.name, a.state.value, _fmt(a.limits.rpm), _fmt(a.limits.tpm),
                  _fmt(a.limits.max_concurrent), f"{sum(k.state.value != 'revoked' for k in a.keys)}/{len(a.keys)}"]
                 for a in rows])


@accounts_app.command("show")
def show(ctx: typer.Context, account: str = ACCOUNT,
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one account, its keys and its recent audit entries."""
    with _open(ctx) as (_, store):
        a = store.get_account(account)
        entries = store.audit_log(target=a.account_id, limit=20)
    if as_json:
        typer.echo(json.dumps(_account_json(a)))
        return
    console.print(f"[bold]{a.name}[/] {a.account_id}  state={a.state.value}  {_limits_line(a.limits)}",
                  highlight=False)
    print_table("keys", ["key id", "shown as", "state", "created", "revoked", "expires"],
                [[k.key_id, k.display, k.state.value, k.created_at.isoformat(timespec="seconds"),
                  k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
                  k.expires_at.isoformat(timespec="seconds") if k.expires_at else "never"] for k in a.keys])
    _print_audit(entries)


@accounts_app.command("limits")
def limits(ctx: typer.Context, account: str = ACCOUNT, rpm: Optional[str] = RPM, tpm: Optional[str] = TPM,
           concurrency: Optional[str] = CONC, throttle_factor: Optional[float] = FACTOR) -> None:
    """Show or change an account's per-key limits."""
    changes = _limit_changes(rpm, tpm, concurrency, throttle_factor)
    with _open(ctx) as (_, store):
        a = store.get_account(account)
        new = replace(a.limits, **changes)
        if changes:
            store.set_limits(a.account_id, new, actor="cli")
    console.print(f"{a.name} ({a.account_id}): {_limits_line(new)}" + ("" if changes else "  (unchanged)"),
                  highlight=False)


def _state_command(verb: str, target_state: str, doc: str) -> None:
    def command(ctx: typer.Context,
                target: str = typer.Argument(..., help="Account id or name; a key id with --key."),
                key: bool = typer.Option(False, "--key", help="TARGET is an API key id, not an account."),
                reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log).")) -> None:
        with _open(ctx) as (_, store):
            setter = store.set_key_state if key else store.set_account_state
            setter(target, target_state, reason=reason, actor="cli")
        console.print(f"{'key' if key else 'account'} {target} is now {target_state}", highlight=False)

    command.__doc__ = doc
    accounts_app.command(verb)(command)


_state_command("throttle", "throttled", "Throttle an account or key: its limits × throttle factor.")
_state_command("suspend", "suspended", "Suspend an account or key: requests fail until reactivated.")
_state_command("revoke", "revoked", "Revoke an account or key for good; it fails on its next request.")
_state_command("activate", "active", "Reactivate a throttled or suspended account or key.")


@accounts_app.command("rotate")
def rotate(ctx: typer.Context, key_id: str = typer.Argument(..., help="Key id to replace.")) -> None:
    """Replace an API key: a new key is printed once, the old one is revoked."""
    with _open(ctx) as (_, store):
        plaintext, k = store.rotate_key(key_id, actor="cli")
    err_console.print(f"key {key_id} revoked; replaced by {k.key_id}")
    _show_key_once(plaintext, k.key_id)


@accounts_app.command("audit")
def audit(ctx: typer.Context,
          target: Optional[str] = typer.Argument(None, help="Account id/name or key id (default: all)."),
          limit: int = typer.Option(50, "--limit", min=1, help="Newest entries to show.")) -> None:
    """Show the enforcement audit log: every state change with reason, actor and time."""
    with _open(ctx) as (_, store):
        _print_audit(store.audit_log(target=target, limit=limit))


def export_format(out: Path, fmt: str | None) -> str:
    """The export format: ``--format`` or the file's suffix; a suffix naming another format is an error."""
    from distillscope.gateway.requestlog import EXPORT_FORMATS, EXPORT_SUFFIXES

    by_suffix = EXPORT_SUFFIXES.get(out.suffix.lower())
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format {fmt!r} is not supported", hint=f"use one of {', '.join(EXPORT_FORMATS)}")
    if fmt is None and by_suffix is None:
        raise ConfigError(f"cannot tell the export format from the file name {out.name!r}",
                          hint="use a .parquet, .jsonl or .csv suffix, or pass --format")
    if fmt is not None and by_suffix is not None and fmt != by_suffix:
        raise ConfigError(f"{out.name} has the suffix of {by_suffix} but --format {fmt} was asked",
                          hint=f"name the file *.{fmt}, or drop --format")
    return fmt or by_suffix


@logs_app.command("export")
def export(ctx: typer.Context, out: Path = typer.Argument(..., help="Output file (.parquet, .jsonl or .csv)."),
           since: Optional[str] = typer.Option(None, "--since", help="Start: ISO date/time or '7d' ago."),
           until: Optional[str] = typer.Option(None, "--until", help="End (exclusive): ISO date/time or '1d' ago."),
           fmt: Optional[str] = typer.Option(None, "--format", help="parquet, jsonl or csv (default: from the "
                                                                    "suffix)."),
           account: Optional[str] = typer.Option(None, "--account",
                                                 help="Only this account (id or name), e.g. the corpus of an audit.")
           ) -> None:
    """Export the request log for analytics (streamed, written atomically)."""
    from distillscope.gateway.requestlog import RequestLog

    fmt = export_format(out, fmt)
    start, end = parse_time(since, option="--since"), parse_time(until, option="--until")
    with _open(ctx) as (engine, store):
        account_id = store.get_account(account).account_id if account else None
        n = RequestLog(engine).export(out, since=start, until=end, format=fmt, progress=RichProgress(transient=True),
                                      account_id=account_id)
    console.print(f"exported {n} requests to {out} ({fmt})", highlight=False)


@logs_app.command("prune")
def prune(ctx: typer.Context,
          redact_prompts_after: Optional[str] = typer.Option(
              None, "--redact-prompts-after", help="Drop prompt and completion text older than this, e.g. 30d."),
          delete_after: Optional[str] = typer.Option(None, "--delete-after",
                                                     help="Delete rows older than this, e.g. 365d.")) -> None:
    """Apply retention: redact old prompt text and delete old rows."""
    from distillscope.gateway.requestlog import RequestLog

    if redact_prompts_after is None and delete_after is None:
        raise ConfigError("nothing to prune", hint="pass --redact-prompts-after and/or --delete-after, e.g. 30d")
    redact = parse_duration(redact_prompts_after, option="--redact-prompts-after") if redact_prompts_after else None
    delete = parse_duration(delete_after, option="--delete-after") if delete_after else None
    with _open(ctx) as (engine, _):
        res = RequestLog(engine).apply_retention(redact_prompts_after=redact, delete_after=delete)
    console.print(f"redacted {res.redacted} requests, deleted {res.deleted}", highlight=False)


@logs_app.command("usage")
def usage(ctx: typer.Context,
          since: Optional[str] = typer.Option(None, "--since", help="Start: ISO date/time or '1d' ago.")) -> None:
    """Per-account requests, rejections and tokens from the request log."""
    from distillscope.gateway.requestlog import RequestLog

    start = parse_time(since, option="--since")
    with _open(ctx) as (engine, store):
        names = {a.account_id: a.name for a in store.list_accounts()}
        rows = RequestLog(engine).usage(since=start)
    print_table("usage", ["account", "name", "requests", "accepted", "rejected", "prompt tokens",
                          "completion tokens"],
                [[u.account_id or "(failed auth)", names.get(u.account_id, ""), u.requests, u.accepted,
                  u.rejected, u.prompt_tokens, u.completion_tokens] for u in rows])


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(logs_app, name="logs")
