"""Mosquitto password files, written without ``mosquitto_passwd``.

Mosquitto 2.x lines are ``user:$7$<iterations>$<salt b64>$<hash b64>`` where hash is
PBKDF2-HMAC-SHA512(password, salt, iterations) of 64 bytes and the salt is 12 random bytes —
the format ``mosquitto_passwd -b`` writes (iterations 101 there)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

ITERATIONS = 101
SALT_BYTES = 12


def generate_password() -> str:
    """A random password (URL-safe text, 24 bytes of entropy)."""
    return secrets.token_urlsafe(24)


def password_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """One password-file line for ``username``.

    Args:
        username: MQTT user name (no ':' allowed).
        password: clear-text password.
        salt: fixed salt for reproducible output (tests); random when None.
        iterations: PBKDF2 iterations.

    Returns:
        the line, without newline.
    """
    if ":" in username or not username:
        raise ValueError(f"user name {username!r} must be non-empty and hold no ':'")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def password_file_text(credentials: dict[str, str]) -> str:
    """A whole password file from {user: clear-text password}."""
    return "".join(password_line(user, pw) + "\n" for user, pw in sorted(credentials.items()))


def check_password_line(line: str, username: str, password: str) -> bool:
    """Whether ``line`` grants ``username`` with ``password`` (constant-time compare)."""
    user, _, rest = line.strip().partition(":")
    parts = rest.split("$")
    if user != username or len(parts) != 5 or parts[1] != "7":
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(got, expected)
