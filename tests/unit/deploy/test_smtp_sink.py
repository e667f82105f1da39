"""The sink's fast path for plain addresses answers exactly as aiosmtpd's own parser does."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.local.smtp_sink import MailSink, PlainAddressSMTP

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
# Characters that make an address or its parameters not plain: aiosmtpd's parser decides.
AWKWARD = ' <>@."\\()[],:;\t'


def servers(tmp_path_factory: pytest.TempPathFactory) -> tuple[SMTP, PlainAddressSMTP]:
    handler = MailSink(tmp_path_factory.mktemp("mail"))
    return SMTP(handler), PlainAddressSMTP(handler)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[SMTP, PlainAddressSMTP]:
    return servers(tmp_path_factory)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("<kontakt@kommune.example>", ("kontakt@kommune.example", "")),
        ("<a.b+c@x.y.de> SIZE=4400 BODY=8BITMIME", ("a.b+c@x.y.de", "SIZE=4400 BODY=8BITMIME")),
        ("<a@b>", ("a@b", "")),
        ("<>", ("<>", "")),
        ("<@relay.example:a@b.de>", ("a@b.de", "")),
        ('<"two words"@b.de>', ('"two words"@b.de', "")),
        ("<a@[192.0.2.1]>", ("a@[192.0.2.1]", "")),
        ("plain@b.de SIZE=1", ("plain@b.de", "SIZE=1")),
        ("", ("", "")),
    ],
)
def test_addresses_read_as_aiosmtpd_reads_them(
    both: tuple[SMTP, PlainAddressSMTP], arg: str, expected: tuple[str, str]
) -> None:
    original, fast = both
    assert fast._getaddr(arg) == original._getaddr(arg) == expected


def test_an_over_long_local_part_is_refused_as_aiosmtpd_refuses_it(
    both: tuple[SMTP, PlainAddressSMTP],
) -> None:
    original, fast = both
    arg = "<" + "x" * 65 + "@b.de>"
    fast.local_part_limit = original.local_part_limit = 64
    try:
        assert fast._getaddr(arg) == original._getaddr(arg) == (None, None)
    finally:
        fast.local_part_limit = original.local_part_limit = 0


addresses = st.text(alphabet=ATEXT + AWKWARD, max_size=30)
plain_like = st.builds(
    lambda local, domain, params: f"<{local}@{domain}>{params}",
    st.text(alphabet=ATEXT + ".", min_size=1, max_size=12),
    st.text(alphabet=ATEXT + ".", min_size=1, max_size=12),
    st.text(alphabet=ATEXT + " =", max_size=20),
)


def outcome(server: SMTP, arg: str) -> object:
    """What the server makes of the argument, a crash included (aiosmtpd's parser raises
    IndexError on a lone "<"): the fast path must not change either."""
    try:
        return server._getaddr(arg)
    except Exception as error:  # the crash itself is the outcome compared
        return type(error)


@settings(max_examples=500)
@given(arg=st.one_of(addresses, plain_like))
def test_every_argument_reads_as_aiosmtpd_reads_it(both: tuple[SMTP, PlainAddressSMTP], arg: str) -> None:
    original, fast = both
    assert outcome(fast, arg) == outcome(original, arg)
