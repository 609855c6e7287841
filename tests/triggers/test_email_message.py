"""The Email trigger's message parser (functions/email/function/message.py): raw RFC 5322
bytes to the job's payload, whatever a sender put in them."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .email_function import message

parse_message = message.parse_message

PAYLOAD_KEYS = {
    "message_id", "from", "to", "cc", "subject", "date", "text", "html", "attachments",
    "truncated",
}


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")


def alternative() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Zoë Ada <zoe@example.org>"
    msg["To"] = "Bob <bob@example.com>, carol@example.com"
    msg["Cc"] = "Dan <dan@example.net>"
    msg["Subject"] = "Pedido nº 42 — confirmação"
    msg["Date"] = "Sun, 22 Nov 2026 12:30:00 +0200"
    msg["Message-ID"] = "<42@example.org>"
    msg.set_content("Olá, o pedido está confirmado.\n", cte="quoted-printable")
    msg.add_alternative("<p>Olá, o pedido <b>está</b> confirmado.</p>\n", subtype="html",
                        cte="base64")
    return msg


def test_multipart_alternative_gives_both_bodies_and_every_header() -> None:
    payload = parse_message(alternative().as_bytes())
    assert set(payload) == PAYLOAD_KEYS
    assert payload["message_id"] == "<42@example.org>"
    assert payload["from"] == {"name": "Zoë Ada", "address": "zoe@example.org"}
    assert payload["to"] == [
        {"name": "Bob", "address": "bob@example.com"},
        {"name": "", "address": "carol@example.com"},
    ]
    assert payload["cc"] == [{"name": "Dan", "address": "dan@example.net"}]
    assert payload["subject"] == "Pedido nº 42 — confirmação"
    assert payload["date"] == "2026-11-22T10:30:00+00:00"
    assert payload["text"] == "Olá, o pedido está confirmado.\n"
    assert payload["html"] == "<p>Olá, o pedido <b>está</b> confirmado.</p>\n"
    assert payload["attachments"] == []
    assert payload["truncated"] is False


def test_the_wire_form_is_decoded_quoted_printable_and_base64() -> None:
    raw = alternative().as_bytes()
    assert b"Subject: Pedido =?utf-8?b?" in raw  # the subject went as encoded words
    assert b"est=C3=A1 confirmado" in raw  # the text really went quoted-printable
    assert parse_message(raw)["text"] == "Olá, o pedido está confirmado.\n"


def test_a_latin_1_body_and_encoded_word_headers() -> None:
    raw = crlf(
        "From: =?iso-8859-1?q?Jos=E9_Silva?= <jose@example.com>\n"
        "To: =?utf-8?b?w4lsb2lzZQ==?= <eloise@example.com>\n"
        "Subject: =?iso-8859-1?q?Rel=E1torio?= =?utf-8?b?IGZpbmFs?=\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Ol=E1, Jos=E9.\n"
    )
    payload = parse_message(raw)
    assert payload["from"] == {"name": "José Silva", "address": "jose@example.com"}
    assert payload["to"] == [{"name": "Éloise", "address": "eloise@example.com"}]
    assert payload["subject"] == "Relátorio final"
    assert payload["text"] == "Olá, José.\r\n"
    assert payload["html"] is None


def test_an_8bit_latin_1_body_is_read_with_its_charset() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: text/plain; charset=latin-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9\r\n"
    )
    assert parse_message(raw)["text"] == "Café\r\n"


def test_an_unknown_charset_is_read_as_utf_8_without_failing() -> None:
    raw = (
        b"Subject: =?x-no-such-charset?q?abc?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
        b"ol\xc3\xa1 \xff\r\n"
    )
    payload = parse_message(raw)
    assert payload["text"] == "olá \ufffd\r\n"
    assert isinstance(payload["subject"], str)


def test_a_charset_that_is_no_text_encoding_does_not_fail() -> None:
    raw = b"Content-Type: text/plain; charset=hex\r\n\r\nhello\r\n"
    assert parse_message(raw)["text"] == "hello\r\n"


def with_attachments() -> EmailMessage:
    msg = alternative()
    msg.add_attachment(b"%PDF-1.7 " + bytes(1000), maintype="application", subtype="pdf",
                       filename="nota fiscal nº 7.pdf")
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("the original\n")
    msg.add_attachment(inner)
    return msg


def test_attachments_are_listed_with_name_type_and_decoded_size() -> None:
    payload = parse_message(with_attachments().as_bytes())
    pdf, forwarded = payload["attachments"]
    assert pdf == {
        "filename": "nota fiscal nº 7.pdf", "content_type": "application/pdf", "size": 1009
    }
    assert forwarded["content_type"] == "message/rfc822"
    assert forwarded["filename"] is None and forwarded["size"] > 0
    # the bodies are still the alternative's, not the forwarded message's
    assert payload["text"] == "Olá, o pedido está confirmado.\n"


def test_attachments_none_drops_the_list() -> None:
    payload = parse_message(with_attachments().as_bytes(), attachments="none")
    assert payload["attachments"] == []
    assert payload["html"] is not None


def test_a_message_that_is_only_an_attachment() -> None:
    raw = crlf(
        "Subject: scan\n"
        "Content-Type: image/png\n"
        'Content-Disposition: attachment; filename="scan.png"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "iVBORw0KGgo=\n"
    )
    payload = parse_message(raw)
    assert payload["text"] is None and payload["html"] is None
    assert payload["attachments"] == [
        {"filename": "scan.png", "content_type": "image/png", "size": 8}
    ]


def test_text_and_html_are_cut_at_the_limit_with_a_flag() -> None:
    msg = EmailMessage()
    msg.set_content("a" * 100)
    msg.add_alternative("<p>" + "b" * 10 + "</p>", subtype="html")
    payload = parse_message(msg.as_bytes(), text_limit=50)
    assert payload["text"] == "a" * 50
    assert payload["html"] == "<p>" + "b" * 10 + "</p>\n"
    assert payload["truncated"] is True
    assert parse_message(msg.as_bytes(), text_limit=200)["truncated"] is False


def test_the_default_limit_is_the_documented_one() -> None:
    msg = EmailMessage()
    msg.set_content("x" * (message.TEXT_LIMIT_CHARS + 10))
    payload = parse_message(msg.as_bytes())
    assert len(payload["text"]) == message.TEXT_LIMIT_CHARS and payload["truncated"]


def test_dates_become_utc_and_a_missing_or_broken_one_is_null() -> None:
    def date_of(value: str | None) -> str | None:
        header = f"Date: {value}\r\n" if value is not None else ""
        return parse_message(f"{header}Subject: d\r\n\r\nx\r\n".encode())["date"]

    assert date_of("Mon, 23 Nov 2026 01:15:00 -0300") == "2026-11-23T04:15:00+00:00"
    assert date_of("Mon, 23 Nov 2026 01:15:00 -0000") == "2026-11-23T01:15:00+00:00"
    assert date_of(None) is None
    assert date_of("yesterday, around noon") is None


def test_absent_headers_give_empty_values() -> None:
    payload = parse_message(b"\r\njust a body\r\n")
    assert payload["message_id"] is None and payload["from"] is None
    assert payload["to"] == [] and payload["cc"] == [] and payload["subject"] == ""
    assert payload["text"] == "just a body\r\n"


def test_malformed_address_headers_keep_what_can_be_read() -> None:
    raw = crlf("From: <<<@@@>>>\nTo: ,,, \"unterminated <a@b\nSubject: s\n\nbody\n")
    payload = parse_message(raw)
    assert payload["subject"] == "s" and payload["text"] == "body\r\n"
    assert isinstance(payload["to"], list)


def check_payload(payload: dict) -> None:
    assert set(payload) == PAYLOAD_KEYS
    assert isinstance(payload["subject"], str) and isinstance(payload["attachments"], list)
    for item in payload["attachments"]:
        assert isinstance(item["size"], int) and isinstance(item["content_type"], str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check_payload(parse_message(raw))


HEADER_LINES = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b",
    b"Content-Type: multipart/alternative; boundary=\"b\"",
    b"Content-Type: text/plain; charset=x-unknown",
    b"Content-Type: text/html; charset=utf-7",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset*=utf-8''%FF%FE",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Disposition: attachment; filename*=iso-8859-1''n%E9.txt",
    b"Content-Disposition: attachment; filename=\"=?utf-8?q?=FF?=\"",
    b"From: =?utf-8?b?////?= <a@b>",
    b"To: a@b, <c@d>, \"x\" <@>, ;;",
    b"Subject: =?unknown?q?=41?=",
    b"Date: Mon, 99 Nov 99999 99:99:99 +9999",
    b"Message-ID: <<>>",
    b"--b",
    b"--b--",
    b"",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(HEADER_LINES, st.binary(max_size=40)), max_size=30))
def test_message_shaped_garbage_never_raises(lines: list[bytes]) -> None:
    check_payload(parse_message(b"\r\n".join(lines)))
