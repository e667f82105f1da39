"""`SMTP_SINK`: the local stack's SMTP server, the bundled sink or Postfix's smtp-sink (the bench's)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deploy.local import stack
from deploy.local.config import local_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.setenv("LOTSE_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SMTP_SINK", raising=False)
    return local_env()


def test_the_bundled_sink_is_the_default(env: dict[str, str]) -> None:
    assert env["SMTP_SINK"] == "aiosmtpd"
    assert stack.smtp_command(env) == [sys.executable, "-m", stack.SMTP_MARKER]


def test_postfix_dumps_each_message_into_the_mail_folder(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = tmp_path / "smtp-sink"
    binary.write_text("")
    monkeypatch.setattr(stack, "POSTFIX_SMTP_SINK", str(binary))
    command = stack.smtp_command({**env, "SMTP_SINK": "postfix"})
    assert command[0] == str(binary)
    assert command[command.index("-d") + 1] == f"{env['MAIL_DIR']}/%Y%m%dT%H%M%S."
    assert f"{env['SMTP_HOST']}:{env['SMTP_PORT']}" in command
    # As root it must drop to a user, who can write the folder.
    assert ("-u" in command) == (os.geteuid() == 0)
    assert Path(env["MAIL_DIR"]).is_dir()


def test_postfix_without_its_package_says_how_to_install_it(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(stack, "POSTFIX_SMTP_SINK", str(tmp_path / "absent"))
    with pytest.raises(stack.StackError, match=r"bench-packages\.sh"):
        stack.smtp_command({**env, "SMTP_SINK": "postfix"})


def test_an_unknown_sink_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(stack.StackError, match="aiosmtpd or postfix"):
        stack.smtp_command({**env, "SMTP_SINK": "sendmail"})
