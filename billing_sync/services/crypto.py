"""Encryption of ledger credentials at rest.

The key never lives in the database: it comes from Odoo's configuration file
(``billing_sync_encryption_key``), so a stolen database dump or a neutralized
copy holds nothing usable. Several comma-separated keys may be given: the first
encrypts, every one decrypts, which lets an administrator rotate the key.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

CONFIG_KEY = "billing_sync_encryption_key"


class CipherError(Exception):
    """The key is missing or wrong; the message says what to do, never the secret."""


def generate_key():
    """A new random key, in the form ``billing_sync_encryption_key`` expects."""
    return Fernet.generate_key().decode("ascii")


class TokenCipher:
    """Encrypts and decrypts short secrets (tokens, client secrets) with Fernet."""

    def __init__(self, keys):
        """``keys``: the configuration value, one or more comma-separated Fernet keys."""
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        if not parts:
            raise CipherError(
                f"No encryption key: add `{CONFIG_KEY} = <key>` to the [options] of Odoo's "
                "configuration file (generate one with: python3 -c \"from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())\") and restart Odoo."
            )
        try:
            self._fernet = MultiFernet([Fernet(p.encode("ascii")) for p in parts])
        except (ValueError, UnicodeEncodeError) as exc:
            raise CipherError(
                f"`{CONFIG_KEY}` in Odoo's configuration file is not a valid key "
                "(32 url-safe base64-encoded bytes)."
            ) from exc

    def encrypt(self, plaintext):
        """Ciphertext (str) of ``plaintext``; ``None`` and '' stay empty."""
        if not plaintext:
            return False
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext):
        """Plaintext of ``ciphertext``; raises CipherError when no configured key fits."""
        if not ciphertext:
            return None
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise CipherError(
                f"Stored credentials cannot be decrypted with the configured `{CONFIG_KEY}`: "
                "the key changed. Put the previous key after the new one (comma separated) "
                "or reconnect the ledger."
            ) from exc
