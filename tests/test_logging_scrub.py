"""The log scrubber: credential-shaped values only, matched as whole tokens, bounded in memory."""

from tradebot import logging_setup as ls


def test_registered_secrets_are_masked_as_tokens():
    ls.register_secret("Zq81kLm0PpQ2rT7vWx9y")
    assert ls.scrub("key=Zq81kLm0PpQ2rT7vWx9y&x=1") == "key=***&x=1"
    assert ls.scrub("'Zq81kLm0PpQ2rT7vWx9y': failed") == "'***': failed"
    # a bot token is masked even unregistered
    assert ls.scrub("url /bot123456:AAbbCCddEEffGGhhIIjjKKll/getMe") == "url /bot***/getMe"


def test_words_and_identifiers_are_never_registered():
    for word in ("responsibilities", "internationalization", "Exchange", "take_profit_percent", "TESTNETMAINNET",
                 "1234567890123", "market", "short"):
        ls.register_secret(word)
        assert ls.scrub(f"a {word} b") == f"a {word} b", word


def test_a_secret_with_other_characters_is_masked_piecewise():
    ls.register_secret("aB3dE5gH7jK9/mN1pQ3sT5uX+vW7yZ9bC1dF==")
    assert ls.scrub("secret aB3dE5gH7jK9/mN1pQ3sT5uX+vW7yZ9bC1dF== used") == "secret ***/***+***== used"


def test_memory_is_bounded_and_the_newest_secrets_are_kept():
    for i in range(ls.MAX_SECRETS + 500):
        ls.register_secret(f"k{i:08d}Xy7z")
    assert ls.secret_count() <= ls.MAX_SECRETS
    newest = f"k{ls.MAX_SECRETS + 499:08d}Xy7z"
    assert ls.scrub(f"x {newest} y") == "x *** y"
