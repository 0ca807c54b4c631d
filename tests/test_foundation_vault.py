"""Vault: encryption at rest, rotation without loss, wrong/missing key, no plaintext anywhere."""

import logging
import os
import stat

import pytest
from cryptography.fernet import Fernet, InvalidToken

from tradebot import admin as uc
from tradebot import logging_setup
from tradebot.models import ExchangeCredential, User
from tradebot.vault import Vault, VaultError, generate_key_file, mask

SECRET = "xyz789secret-KNOWN-PLAINTEXT-4242"
API_KEY = "abc123key-KNOWN-APIKEY-9999"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "secret.key"
    assert generate_key_file(path)
    return path


def store(vault):
    user = User.create(telegram_id=5, username="u")
    return ExchangeCredential.create(user=user, exchange="binance", network="testnet",
                                     api_key_enc=vault.encrypt(API_KEY), secret_enc=vault.encrypt(SECRET))


def test_key_file_mode_and_never_overwritten(key_file):
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()
    assert not generate_key_file(key_file)
    assert key_file.read_bytes() == before


def test_no_plaintext_in_database_file_or_logs(database, sqlite_url, key_file, tmp_path):
    log_file = tmp_path / "logs" / "bot.log"
    logging_setup.setup_logging("DEBUG", log_file)
    vault = Vault.load(key_file, env={})
    cred = store(vault)
    log = logging.getLogger("tradebot.test")
    log.info("connecting with key %s and secret %s", API_KEY, SECRET)
    try:
        raise RuntimeError(f"exchange said: bad signature for {SECRET}")
    except RuntimeError:
        log.exception("failure")
    logging.getLogger("telebot").debug("request params text=/connect binance %s %s", API_KEY, SECRET)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert vault.decrypt(ExchangeCredential.get_by_id(cred.id).secret_enc) == SECRET
    from tradebot import db as dbmod

    dbmod.db.execute_sql("PRAGMA wal_checkpoint(FULL)")
    db_path = sqlite_url.replace("sqlite:///", "")
    blobs = b"".join(p.read_bytes() for p in tmp_path.glob("tradebot.db*"))
    assert os.path.exists(db_path) and blobs
    logs = log_file.read_bytes()
    assert b"failure" in logs and b"connecting with key" in logs  # the lines were written...
    for needle in (SECRET.encode(), API_KEY.encode()):
        assert needle not in blobs
        assert needle not in logs  # ...with the secrets scrubbed
    assert b"***" in logs


def test_rotation_reencrypts_everything_and_keeps_backup(database, key_file):
    vault = Vault.load(key_file, env={})
    cred = store(vault)
    old_token = cred.secret_enc
    old_key = key_file.read_bytes()
    backup = vault.rotate(uc.credential_tokens(), uc.save_credential_tokens)
    assert backup.read_bytes() == old_key
    new_key = key_file.read_bytes()
    assert new_key != old_key and len(new_key.split()) == 1
    row = ExchangeCredential.get_by_id(cred.id)
    assert row.secret_enc != old_token
    # the new key alone decrypts everything; the old key alone no longer does
    fresh = Vault.load(key_file, env={})
    assert fresh.decrypt(row.secret_enc) == SECRET and fresh.decrypt(row.api_key_enc) == API_KEY
    with pytest.raises(InvalidToken):
        Fernet(old_key.strip()).decrypt(row.secret_enc.encode())


def test_wrong_key_is_clear_and_destroys_nothing(database, key_file, tmp_path):
    vault = Vault.load(key_file, env={})
    cred = store(vault)
    other = Vault.load(key_file, env={"TRADEBOT_SECRET_KEY": Fernet.generate_key().decode()})
    with pytest.raises(VaultError, match="wrong encryption key"):
        other.decrypt(cred.secret_enc)
    with pytest.raises(VaultError):
        other.rotate(uc.credential_tokens(), uc.save_credential_tokens)  # env key cannot rotate
    wrong_file = tmp_path / "wrong.key"
    generate_key_file(wrong_file)
    wrong = Vault.load(wrong_file, env={})
    with pytest.raises(VaultError, match="does not decrypt"):
        wrong.rotate(uc.credential_tokens(), uc.save_credential_tokens)
    assert ExchangeCredential.get_by_id(cred.id).secret_enc == cred.secret_enc
    assert vault.decrypt(ExchangeCredential.get_by_id(cred.id).secret_enc) == SECRET


def test_missing_or_garbage_key(tmp_path):
    with pytest.raises(VaultError, match="missing"):
        Vault.load(tmp_path / "nope.key", env={})
    bad = tmp_path / "bad.key"
    bad.write_text("not-a-key\n")
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        Vault.load(bad, env={})


def test_mask():
    assert mask("abcd1234567890wxyz") == "abcd…wxyz"
    assert SECRET not in mask(SECRET)


def test_seal_round_trips_under_any_key_of_the_file_and_is_not_a_registered_secret():
    from cryptography.fernet import Fernet

    from tradebot import logging_setup
    from tradebot.vault import Vault, VaultError

    old, new = Fernet.generate_key(), Fernet.generate_key()
    text = '{"text": "/connect binance SEALKEYAAAA SEALSECRETBBBB"}'
    token = Vault([old], "env").seal(text)
    assert "SEALSECRETBBBB" not in token
    assert Vault([new, old], "env").unseal(token) == text  # after a key rotation
    with pytest.raises(VaultError):
        Vault([new], "env").unseal(token)
    assert "SEALSECRETBBBB" in logging_setup.scrub("x SEALSECRETBBBB y")  # not registered with the scrubber
