"""The participant's pseudonymised identity for the prerequisite of a follow-up course (ADR 0014).

`HMAC-SHA256(key, normalised email)`, hex with a version prefix. The address is normalised by
removing surrounding white space, Unicode NFC, then `casefold()` of the whole address; no
provider rules (dots, `+tags`), which would merge different people. Funding stores only the
hash, and only where its programme checks the prerequisite.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from shared.program import Course, Program

VERSION = "v1"
MIN_KEY_BYTES = 32


class ParticipantKeyError(ValueError):
    """The programme needs the participant key and it is missing or too short."""


def normalised_email(email: str) -> str:
    return unicodedata.normalize("NFC", email.strip()).casefold()


def participant_hash(key: bytes, email: str) -> str:
    digest = hmac.new(key, normalised_email(email).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{VERSION}:{digest}"


def needs_participant_identity(program: Program) -> bool:
    """True if the programme checks a prerequisite, so that funding must know who holds which course."""
    return any(program.requires_funded_basic(course) for course in Course)


def checked_key(program: Program, key: bytes | None) -> bytes | None:
    """The key to hash with, None where the programme needs no identity (nothing is stored then);
    ParticipantKeyError where it needs one and the key is missing or shorter than 32 bytes."""
    if not needs_participant_identity(program):
        return None
    if key is None:
        raise ParticipantKeyError(
            f"programme {program.id} checks the prerequisite of follow-up courses: set "
            "FUNDING_PARTICIPANT_KEY or FUNDING_PARTICIPANT_KEY_FILE (at least 32 random bytes, "
            "e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ParticipantKeyError(f"the participant key has {len(key)} bytes, fewer than {MIN_KEY_BYTES}")
    return key
