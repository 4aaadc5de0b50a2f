"""Rules a new password must follow; each broken rule is named in the answer."""

from __future__ import annotations

from app.core.errors import Invalid

# Among the most used passwords of 12 characters or more in public breach lists; a short list is
# enough here since the minimum length already rules out the far larger set of short ones.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456123456",
        "qwertyuiopasdfghjkl",
        "qwertyuiop123",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "administrator",
        "iloveyou1234",
        "welcome12345",
        "letmein12345",
        "changeme1234",
        "qwerty123456",
        "abc123456789",
        "aaaaaaaaaaaa",
        "111111111111",
        "000000000000",
        "football1234",
        "baseball1234",
        "sommer123456",
        "velkommen123",
        "sommar123456",
        "sommer2024!!",
        "trustno1trustno1",
    }
)


def check_password(password: str, *, email: str, min_length: int) -> None:
    """Raise ``Invalid`` (422) naming the rule ``password`` breaks, if any; ``min_length`` is
    the running app's ``TICKETRY_PASSWORD_MIN_LENGTH``."""
    if len(password) < min_length:
        raise Invalid(
            f"The password is too short: use at least {min_length} characters.",
            field="body.password",
            rule="min_length",
        )
    lowered = password.lower()
    local_part = email.lower().partition("@")[0]
    if email.lower() in lowered or (len(local_part) >= 4 and local_part in lowered):
        raise Invalid(
            "The password must not contain your email address or its name part.",
            field="body.password",
            rule="contains_email",
        )
    if "".join(lowered.split()) in COMMON_PASSWORDS:
        raise Invalid(
            "The password is among the most common ones and is guessed first: choose another.",
            field="body.password",
            rule="common",
        )
