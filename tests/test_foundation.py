"""Settings, error translation and CLI help: the foundation every command relies on."""

from __future__ import annotations

import pytest
import typer

from distillscope.cli import app, main
from distillscope.errors import ConfigError, DistillscopeError
from distillscope.settings import load_settings


def test_settings_file_env_and_override_priority(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9000\nhost: 0.0.0.0\nteacher: gemma3-270m\n")
    monkeypatch.setenv("DISTILLSCOPE_PORT", "9100")
    s = load_settings(cfg, teacher="smollm2")
    assert s.host == "0.0.0.0"          # from the file
    assert s.port == 9100               # env beats file
    assert s.teacher == "smollm2"       # explicit override beats both


def test_settings_unknown_key_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match="unknown setting.*prot"):
        load_settings(cfg)


def test_secret_settings_never_print(monkeypatch):
    monkeypatch.setenv("DISTILLSCOPE_ADMIN_TOKEN", "supersecret-admin")
    s = load_settings()
    assert "supersecret-admin" not in repr(s) and "supersecret-admin" not in str(s.model_dump())
    assert s.admin_token.get_secret_value() == "supersecret-admin"


def test_cli_error_is_one_line(tmp_path, capsys):
    code = main(["--config", str(tmp_path / "missing.yaml"), "demo", "--quick"])
    err = capsys.readouterr().err
    assert code == 2
    assert "config file" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def _walk(cmd, path=()):
    yield path, cmd
    # typer's groups are not click.Group subclasses (typer vendors click): go by the attribute.
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from _walk(sub, path + (name,))


def test_every_command_has_help():
    root = typer.main.get_command(app)
    walked = list(_walk(root))
    assert len(walked) > 20  # the walk reaches the subcommands, not only the root
    for path, cmd in walked:
        assert (cmd.help or "").strip(), f"command {' '.join(path) or '<root>'} has no help text"
        assert main([*path, "--help"]) == 0


@pytest.mark.parametrize("argv", [["no-such-command"], ["watermark", "detect"], ["generate", "--no-such-flag", "x"]])
def test_usage_errors_are_short_and_have_no_traceback(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and ("No such" in err or "Missing" in err)


def test_cli_reference_is_current():
    from pathlib import Path

    from distillscope.cli.reference import render_reference, render_settings_reference

    docs = Path(__file__).resolve().parents[1] / "docs"
    assert (docs / "cli.md").read_text() == render_reference(), \
        "docs/cli.md is stale: run `python -m distillscope.cli.reference > docs/cli.md`"
    assert (docs / "configuration.md").read_text() == render_settings_reference(), \
        "docs/configuration.md is stale: run `python -m distillscope.cli.reference --settings > docs/configuration.md`"


def test_error_tree_has_one_base():
    import distillscope.errors as e

    classes = [v for v in vars(e).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert all(issubclass(c, DistillscopeError) for c in classes)


def test_mapping_settings_come_from_json_in_the_environment(monkeypatch):
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_PARAMS", '{"gamma": 0.5, "delta": 3.0}')
    assert load_settings().watermark_params == {"gamma": 0.5, "delta": 3.0}
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_PARAMS", "gamma=0.5")
    with pytest.raises(ConfigError, match="DISTILLSCOPE_WATERMARK_PARAMS is not a JSON object"):
        load_settings()
