import pytest

from dialer.models import Outcome
from dialer.policy import Action, SipClass, classify, is_ambiguous


@pytest.mark.parametrize(
    ("code", "status", "twirp", "expected"),
    [
        (486, "Busy Here", "resource_exhausted", SipClass.BUSY),
        (600, "Busy Everywhere", "resource_exhausted", SipClass.BUSY),
        (480, "Temporarily Unavailable", "resource_exhausted", SipClass.NO_ANSWER),
        (408, "Request Timeout", "deadline_exceeded", SipClass.NO_ANSWER),
        (487, "Request Terminated", "aborted", SipClass.NO_ANSWER),
        (None, None, "canceled", SipClass.NO_ANSWER),
        (404, "Not Found", "not_found", SipClass.INVALID_NUMBER),
        (484, "Address Incomplete", "invalid_argument", SipClass.INVALID_NUMBER),
        (603, "Decline", "permission_denied", SipClass.DECLINED),
        (607, "Unwanted", "permission_denied", SipClass.DECLINED),
        (503, "Service Unavailable", "failed_precondition", SipClass.CARRIER_ERROR),
        (503, "CPS limit exceeded", "failed_precondition", SipClass.CAPACITY),
        (403, "Channel limit reached", "permission_denied", SipClass.CAPACITY),
        (None, None, "resource_exhausted", SipClass.CAPACITY),
        (403, "Forbidden", "permission_denied", SipClass.TRUNK_CONFIG),
        (407, "Proxy Authentication Required", "unauthenticated", SipClass.TRUNK_CONFIG),
        (488, "Not Acceptable Here", "invalid_argument", SipClass.UNKNOWN),
    ],
)
def test_sip_code_first_then_twirp_code(code: int | None, status: str | None, twirp: str, expected: SipClass) -> None:
    assert classify(code, status, twirp).sip_class is expected


def test_old_livekit_503_for_busy_is_still_busy() -> None:
    # Older LiveKit SIP sent HTTP 503 for busy; the SIP code decides.
    assert classify(486, "Busy Here", "unavailable").sip_class is SipClass.BUSY


def test_what_each_class_does() -> None:
    assert classify(486, "", "").rule.action is Action.RESCHEDULE
    assert classify(404, "", "").rule.action is Action.FINAL
    assert classify(404, "", "").rule.outcome is Outcome.INVALID_NUMBER
    assert classify(503, "", "").rule.action is Action.RETRY_SOON
    assert classify(403, "", "").rule.action is Action.PAUSE
    assert not classify(403, "", "").rule.counts
    assert not classify(None, None, "resource_exhausted").rule.counts


def test_spam_flag_on_607_and_608() -> None:
    assert classify(608, "Rejected", "").spam_flagged
    assert not classify(603, "Decline", "").spam_flagged


def test_campaign_overrides_win() -> None:
    assert classify(480, "", "", {480: SipClass.BUSY}).sip_class is SipClass.BUSY


def test_reasons_read_as_what_happened() -> None:
    assert classify(486, "Busy Here", "resource_exhausted").reason == "SIP 486 Busy Here"
    assert classify(None, None, "canceled").reason == "ring timeout"


def test_a_rejected_token_pauses_like_a_trunk_refusal() -> None:
    # LiveKit answers a bad secret with HTTP 401 and a plain-text body (Twirp code "unknown").
    assert classify(None, None, "unknown", http_status=401).sip_class is SipClass.TRUNK_CONFIG


def test_only_a_5xx_without_a_sip_answer_is_ambiguous() -> None:
    assert is_ambiguous(None, 503)
    assert not is_ambiguous(None, 401)
    assert not is_ambiguous(503, 412)
