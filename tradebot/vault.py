"""Encryption of exchange secrets at rest (Fernet; MultiFernet for key rotation).

The key file holds one Fernet key per line, newest first. TRADEBOT_SECRET_KEY (same
format, comma-separated) takes precedence over the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from . import logging_setup


class VaultError(Exception):
    pass


def generate_key_file(path: Path) -> bool:
    """Create `path` with a fresh key, mode 0600. Never overwrites: returns False if it exists."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # includes a parent that is a file (FileExistsError)
        raise VaultError(f"encryption key file {path}: cannot create it ({exc.strerror or exc})") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.is_dir():
            raise VaultError(f"encryption key file {path}: is a directory") from None
        return False
    except OSError as exc:
        raise VaultError(f"encryption key file {path}: cannot create it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    os.chmod(path, 0o600)
    return True


def _parse_keys(text: str, where: str) -> list[bytes]:
    keys = [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip() and not k.startswith("#")]
    if not keys:
        raise VaultError(f"{where}: no encryption key found")
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise VaultError(f"{where}: not a valid Fernet key (expected 32 url-safe base64 bytes)") from None
    return [k.encode() for k in keys]


def _write_keys_atomic(path: Path, keys: list[bytes]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n".join(keys) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    os.chmod(path, 0o600)


class Vault:
    def __init__(self, keys: list[bytes], source: str, key_file: Path | None = None):
        self._keys = keys
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self.source = source
        self.key_file = key_file

    @classmethod
    def load(cls, key_file: Path, env=None) -> Vault:
        env = os.environ if env is None else env
        if env.get("TRADEBOT_SECRET_KEY"):
            return cls(_parse_keys(env["TRADEBOT_SECRET_KEY"], "TRADEBOT_SECRET_KEY"), "env")
        try:
            text = Path(key_file).read_text()
        except FileNotFoundError:
            raise VaultError(
                f"encryption key file {key_file} is missing: restore it from your backup or set "
                "TRADEBOT_SECRET_KEY (a new installation: run `tradebot init`); stored secrets are untouched"
            ) from None
        except OSError as exc:
            raise VaultError(f"encryption key file {key_file}: cannot read ({exc.strerror})") from None
        return cls(_parse_keys(text, str(key_file)), "file", Path(key_file))

    def encrypt(self, plaintext: str) -> str:
        logging_setup.register_secret(plaintext)
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            value = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise VaultError(
                "cannot decrypt a stored secret: wrong encryption key (check the key file or "
                "TRADEBOT_SECRET_KEY); nothing was changed"
            ) from None
        logging_setup.register_secret(value)
        return value

    def seal(self, text: str) -> str:
        """Encrypt data that may CONTAIN a secret (a Telegram update with a /connect) without registering
        all of it with the log scrubber, as encrypt() does for a secret itself. AES-256-GCM under a key
        derived from the current key: a tenth of Fernet's cost, which a flood of updates felt."""
        nonce = os.urandom(12)
        return "g1:" + base64.b64encode(nonce + self._sealers()[0].encrypt(nonce, text.encode(), None)).decode()

    def unseal(self, token: str) -> str:
        """seal()'s inverse (any key of the file); raises VaultError on a wrong key."""
        from cryptography.exceptions import InvalidTag

        blob = base64.b64decode(token[3:]) if token.startswith("g1:") else b""
        for sealer in self._sealers():
            try:
                return sealer.decrypt(blob[:12], blob[12:], None).decode()
            except (InvalidTag, ValueError):
                continue
        raise VaultError("cannot decrypt sealed data: wrong encryption key")

    def _sealers(self) -> list:
        sealers = getattr(self, "_sealer_cache", None)
        if sealers is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            sealers = [AESGCM(hashlib.sha256(b"tradebot seal v1|" + k).digest()) for k in self._keys]
            self._sealer_cache = sealers
        return sealers

    def can_decrypt(self, token: str) -> bool:
        try:
            self._fernet.decrypt(token.encode())
            return True
        except InvalidToken:
            return False

    def check_canary(self, tokens: list[str]) -> int:
        """Refuses a key that cannot decrypt what the database holds (a lost key file replaced by a new one
        would make every cycle fail). Returns how many stored secrets it cannot decrypt (0 = all fine);
        raises when it decrypts none of them."""
        if not tokens:
            return 0
        bad = sum(1 for token in tokens if not self.can_decrypt(token))
        if bad == len(tokens):
            raise VaultError(cannot_decrypt_message(self.describe(), len(tokens)))
        return bad

    def describe(self) -> str:
        return "TRADEBOT_SECRET_KEY" if self.source == "env" else f"key file {self.key_file}"

    def rotate(self, tokens_by_id: dict, save) -> Path:
        """Re-encrypt every token under a new key.

        Crash-safe order: (1) key file = new + old keys, (2) re-encrypt and `save` all tokens in
        one transaction, (3) key file = new key only, old file kept as a timestamped backup.
        A crash at any point leaves every secret decryptable."""
        if self.source != "file" or self.key_file is None:
            raise VaultError("key comes from TRADEBOT_SECRET_KEY: rotate it outside tradebot (key file only)")
        for ident, token in tokens_by_id.items():
            if not self.can_decrypt(token):
                raise VaultError(f"secret #{ident} does not decrypt with the current key; rotation aborted")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        backup = self._write_backup(stamp)
        new_key = Fernet.generate_key()
        _write_keys_atomic(self.key_file, [new_key, *self._keys])
        rotating = MultiFernet([Fernet(new_key), *[Fernet(k) for k in self._keys]])
        save({ident: rotating.rotate(token.encode()).decode() for ident, token in tokens_by_id.items()})
        _write_keys_atomic(self.key_file, [new_key])
        self._keys = [new_key]
        self._fernet = MultiFernet([Fernet(new_key)])
        return backup


    def _write_backup(self, stamp: str) -> Path:
        """A copy of the key file that is never overwritten (two rotations in one second keep both)."""
        for n in range(100):
            backup = self.key_file.with_name(f"{self.key_file.name}.{stamp}{f'.{n}' if n else ''}.bak")
            try:
                fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise VaultError(f"cannot write the key backup {backup} ({exc.strerror or exc}); nothing was changed"
                                 ) from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key_file.read_bytes())
            os.chmod(backup, 0o600)
            return backup
        raise VaultError("too many key backups in one second; nothing was changed")


def cannot_decrypt_message(key: str, count: int) -> str:
    return (
        f"the {key} cannot decrypt the {count} exchange secret(s) stored in the database: restore the key "
        "file that encrypted them (or set TRADEBOT_SECRET_KEY to that key), or wipe them with "
        "`tradebot admin forget-credentials` (users must /connect again)"
    )


def mask(value: str) -> str:
    """abcd…wxyz: enough to recognise a key, not enough to use it."""
    if len(value) <= 10:
        return "…" + value[-2:] if len(value) > 4 else "…"
    return f"{value[:4]}…{value[-4:]}"
