"""The fake Bot API itself: parameter encodings, long polling, recording, fault injection."""

from __future__ import annotations

import json
import threading
import time

import requests

from tests.fakes.telegram import FakeTelegram


def url(fake, method):
    return f"{fake.api_url}/bot{fake.token}/{method}"


# a PNG signature and IHDR chunk header are all the fake reads of an image (width 3, height 2)
PNG_3X2 = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x08\x02"


def test_uploads_must_be_images_or_documents(fake_telegram):
    f = fake_telegram
    bad = requests.post(url(f, "sendPhoto"), data={"chat_id": 5}, files={"photo": ("p.png", b"GIF89a......")})
    assert bad.status_code == 400 and "IMAGE_PROCESS_FAILED" in bad.json()["description"]
    missing = requests.post(url(f, "sendPhoto"), data={"chat_id": 5, "photo": "some-file-id"})
    assert missing.status_code == 400
    doc = requests.post(url(f, "sendDocument"), data={"chat_id": 5, "caption": "csv"},
                        files={"document": ("a.csv", b"x,y\n1,2\n")}).json()
    assert doc["ok"] and doc["result"]["document"]["file_name"] == "a.csv"
    assert f.sent_to(5)[-1].document == b"x,y\n1,2\n" and f.sent_to(5)[-1].filename == "a.csv"


def test_parameters_in_query_form_json_and_multipart(fake_telegram):
    f = fake_telegram
    assert requests.get(url(f, "getMe")).json()["result"]["username"] == f.username
    r1 = requests.post(
        url(f, "sendMessage"),
        params={"chat_id": 5, "text": "query", "reply_markup": json.dumps({"inline_keyboard": []})},
    ).json()
    r2 = requests.post(url(f, "sendMessage"), data={"chat_id": 5, "text": "form"}).json()
    r3 = requests.post(url(f, "sendMessage"), json={"chat_id": 5, "text": "json"}).json()
    r4 = requests.post(
        url(f, "sendPhoto"),
        data={"chat_id": 5, "caption": "chart"},
        files={"photo": ("p.png", PNG_3X2)},
    ).json()
    assert [r["ok"] for r in (r1, r2, r3, r4)] == [True] * 4
    assert r4["result"]["photo"][0]["width"] == 3 and r4["result"]["photo"][0]["height"] == 2
    assert f.replies(5) == ["query", "form", "json", "chart"]
    assert f.sent_to(5)[0].reply_markup == {"inline_keyboard": []}
    assert f.calls_of("sendPhoto")[0].params["photo"]["size"] == len(PNG_3X2)
    assert f.sent_to(5)[3].photo == PNG_3X2  # the uploaded bytes, for tests to inspect
    mid = r1["result"]["message_id"]
    assert requests.post(
        url(f, "editMessageText"), params={"chat_id": 5, "message_id": mid, "text": "edited"}
    ).json()["ok"]
    assert f.replies(5)[0] == "edited"
    assert requests.post(url(f, "deleteMessage"), params={"chat_id": 5, "message_id": mid}).json()["ok"]
    assert requests.post(url(f, "answerCallbackQuery"), params={"callback_query_id": "x"}).json()["ok"]
    assert requests.post(
        url(f, "setMyCommands"), params={"commands": json.dumps([{"command": "a", "description": "b"}])}
    ).json()["ok"]
    assert f.commands[0]["commands"][0]["command"] == "a"
    assert requests.get(f"{f.api_url}/botWRONG/getMe").status_code == 401
    long = requests.post(url(f, "sendMessage"), params={"chat_id": 5, "text": "x" * 4097})
    assert long.status_code == 400


def test_get_updates_long_polls_and_confirms_with_offset(fake_telegram):
    f = fake_telegram
    t0 = time.monotonic()
    assert requests.get(url(f, "getUpdates"), params={"timeout": 1}).json()["result"] == []
    assert time.monotonic() - t0 >= 0.9
    threading.Timer(0.3, lambda: f.push_message(7, "/start", username="bob")).start()
    updates = requests.get(url(f, "getUpdates"), params={"timeout": 5}).json()["result"]
    assert updates[0]["message"]["text"] == "/start" and updates[0]["message"]["from"]["username"] == "bob"
    f.push_callback(7, "start:1")
    again = requests.get(url(f, "getUpdates"), params={"timeout": 0}).json()["result"]
    assert len(again) == 2
    last = again[-1]["update_id"]
    assert again[-1]["callback_query"]["data"] == "start:1"
    assert (
        requests.get(url(f, "getUpdates"), params={"offset": last + 1, "timeout": 0}).json()["result"] == []
    )


def test_fault_injection(fake_telegram):
    f = fake_telegram
    f.inject_status("sendMessage", 429, retry_after=3)
    r = requests.post(url(f, "sendMessage"), params={"chat_id": 1, "text": "a"})
    assert r.status_code == 429 and r.json()["parameters"]["retry_after"] == 3
    f.inject_status("*", 503)
    assert requests.get(url(f, "getMe")).status_code == 503
    f.inject_drop("getMe")
    try:
        requests.get(url(f, "getMe"), timeout=2)
        raise AssertionError("expected a dropped connection")
    except requests.exceptions.ConnectionError:
        pass
    assert requests.get(url(f, "getMe")).ok
    assert [c.status for c in f.calls_of("getMe")] == [503, 0, 200]
    assert f.replies(1) == []


def test_wait_for_replies_times_out_clearly():
    f = FakeTelegram().start()
    try:
        t0 = time.monotonic()
        try:
            f.wait_for_replies(1, 1, timeout=0.2)
            raise AssertionError("expected a timeout")
        except TimeoutError as exc:
            assert "expected 1 replies" in str(exc)
        assert time.monotonic() - t0 < 2
    finally:
        f.stop()
