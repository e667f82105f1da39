from pathlib import Path

from bench.observe import mail_names, mails

LETTER = "3f2a9c1e-0000-5000-8000-00000000abcd"
HEAD = (
    "X-Client-Addr: 127.0.0.1\r\nX-Mail-Args: <a@b.example>\r\n"  # smtp-sink's own lines
    f"Subject: Förderung\r\nMessage-ID: <{LETTER}@nsi.example>\r\n"
    "X-Registration-ID: BENCH-steady100-0000007\r\n"
    "\r\nX-Registration-ID: BENCH-in-the-body\r\n"
)


def test_both_sinks_files_are_messages_and_nothing_else_is(tmp_path: Path) -> None:
    for name in ("20261202T031502.57e6dc24", "20261202T031502123456Z-ab12.eml", ".faults.json", "x.part"):
        (tmp_path / name).write_text(HEAD)
    assert mail_names(tmp_path) == {"20261202T031502.57e6dc24", "20261202T031502123456Z-ab12.eml"}


def test_a_message_names_its_registration_and_letter_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "20261202T031502.57e6dc24").write_text(HEAD)
    (mail,) = mails(tmp_path, mail_names(tmp_path))
    assert mail.registration_id() == "BENCH-steady100-0000007"
    assert mail.letter_id() == LETTER
    assert mail.accepted == (tmp_path / "20261202T031502.57e6dc24").stat().st_mtime
