"""The Sms trigger's provider seam (stepline.sms): Twilio's inbound-message webhook,
signed here by the ``twilio`` package's own validator exactly as Twilio signs it, and
every way a forged or altered request is refused."""

from __future__ import annotations

from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from stepline import sms
from stepline.errors import MalformedEvent, PermanentError

TOKEN = "12345678901234567890123456789012"
SECRET = {"auth_token": TOKEN}
URL = "https://stepline.example.com/v1/hooks/7d3c9a52-0f6e-4d1b-9d3c-2b8f3f1e9a10"
FIELDS = [
    ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ("From", "+5511999990000"),
    ("To", "+5511333330000"),
    ("Body", "Quero 2 pizzas & 1 refri, por favor"),
    ("NumMedia", "2"),
    ("MediaUrl0", "https://api.twilio.com/media/ME1"),
    ("MediaContentType0", "image/jpeg"),
    ("MediaUrl1", "https://api.twilio.com/media/ME2"),
    ("MediaContentType1", "audio/ogg"),
]
twilio = sms.PROVIDERS["twilio"]


def form_of(fields: list[tuple[str, str]]) -> sms.Form:
    return sms.Form.parse(urlencode(fields).encode())


def signed(url: str, fields: list[tuple[str, str]], token: str = TOKEN) -> dict[str, str]:
    """The headers Twilio would send: its signature, computed by its own library."""
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form_of(fields))}


def test_a_request_twilio_signed_is_accepted() -> None:
    twilio.verify(URL, form_of(FIELDS), signed(URL, FIELDS), SECRET)


def test_the_header_name_is_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in signed(URL, FIELDS).items()}
    twilio.verify(URL, form_of(FIELDS), headers, SECRET)


@pytest.mark.parametrize(
    "fields",
    [
        [(k, "Quero 20 pizzas" if k == "Body" else v) for k, v in FIELDS],
        [*FIELDS, ("Extra", "x")],
        [(k, v) for k, v in FIELDS if k != "MediaUrl1"],
        [*FIELDS, ("Body", "a second body")],
    ],
    ids=["changed", "added", "removed", "repeated"],
)
def test_a_tampered_form_is_refused(fields: list[tuple[str, str]]) -> None:
    with pytest.raises(sms.SignatureInvalid, match="does not match"):
        twilio.verify(URL, form_of(fields), signed(URL, FIELDS), SECRET)


@pytest.mark.parametrize(
    "url",
    [
        URL.replace("7d3c9a52", "00000000"),  # another step's URL
        URL.replace("stepline.example.com", "evil.example.com"),
        URL.replace("https://", "http://"),
        URL + "?replay=1",
    ],
)
def test_a_signature_for_another_url_is_refused(url: str) -> None:
    with pytest.raises(sms.SignatureInvalid):
        twilio.verify(url, form_of(FIELDS), signed(URL, FIELDS), SECRET)


def test_another_accounts_token_is_refused() -> None:
    headers = signed(URL, FIELDS, token="another-accounts-auth-token-0000")
    with pytest.raises(sms.SignatureInvalid):
        twilio.verify(URL, form_of(FIELDS), headers, SECRET)


def test_no_signature_is_refused() -> None:
    with pytest.raises(sms.SignatureInvalid, match="no X-Twilio-Signature"):
        twilio.verify(URL, form_of(FIELDS), {}, SECRET)


def test_a_connection_without_a_token_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="auth_token"):
        twilio.verify(URL, form_of(FIELDS), signed(URL, FIELDS), {})


def test_behind_a_proxy_the_public_url_is_what_twilio_signed() -> None:
    reached = "http://127.0.0.1:8000/v1/hooks/7d3c9a52-0f6e-4d1b-9d3c-2b8f3f1e9a10?v=2"
    public = "https://stepline.example.com/"
    signed_for = "https://stepline.example.com/v1/hooks/7d3c9a52-0f6e-4d1b-9d3c-2b8f3f1e9a10?v=2"
    headers = signed(signed_for, FIELDS)
    assert sms.signed_url(reached, public) == signed_for
    twilio.verify(sms.signed_url(reached, public), form_of(FIELDS), headers, SECRET)
    with pytest.raises(sms.SignatureInvalid):
        twilio.verify(sms.signed_url(reached, None), form_of(FIELDS), headers, SECRET)


def test_a_public_url_with_a_path_prefix() -> None:
    reached = "http://10.0.0.5:8000/v1/hooks/abc"
    assert sms.signed_url(reached, "https://example.com/stepline") == (
        "https://example.com/stepline/v1/hooks/abc"
    )


def test_the_payload() -> None:
    assert twilio.parse(form_of(FIELDS)) == {
        "from": "+5511999990000",
        "to": "+5511333330000",
        "body": "Quero 2 pizzas & 1 refri, por favor",
        "message_sid": "SM0123456789abcdef0123456789abcdef",
        "media": [
            {"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"},
            {"url": "https://api.twilio.com/media/ME2", "content_type": "audio/ogg"},
        ],
    }


@pytest.mark.parametrize("num_media", ["", "two", "-1", "²", "0"])
def test_a_bad_media_count_gives_no_media(num_media: str) -> None:
    fields = [(k, num_media if k == "NumMedia" else v) for k, v in FIELDS]
    assert twilio.parse(form_of(fields))["media"] == []


def test_media_are_capped_at_twilios_maximum() -> None:
    fields = [("MessageSid", "SM1"), ("NumMedia", "500")] + [
        (f"MediaUrl{n}", f"https://m/{n}") for n in range(20)
    ]
    assert len(twilio.parse(form_of(fields))["media"]) == sms.MAX_MEDIA


def test_the_message_sid_is_the_idempotency_key() -> None:
    assert twilio.idempotency_key(form_of(FIELDS)) == "SM0123456789abcdef0123456789abcdef"
    with pytest.raises(MalformedEvent, match="MessageSid"):
        twilio.idempotency_key(form_of([("Body", "no sid")]))


def test_the_answer_is_an_empty_twiml_response() -> None:
    content_type, body = twilio.answer()
    assert content_type == "text/xml"
    root = ElementTree.fromstring(body)
    assert root.tag == "Response" and len(root) == 0
    assert root.tag == ElementTree.fromstring(str(MessagingResponse())).tag


def test_a_body_that_is_not_a_utf_8_form_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="UTF-8 form"):
        sms.Form.parse(b"Body=\xff\xfe")
    with pytest.raises(MalformedEvent):
        sms.Form.parse(b"&".join(b"f%d=1" % n for n in range(sms.MAX_FORM_FIELDS + 1)))

