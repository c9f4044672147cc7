from agent.fleet.subscription import Received
from agent.trust.envelope import Verdict
from simulators.demo.view import REJECTED, VERIFIED, PlantView, render


def received(stream: str, body: dict, valid: bool = True, seq: int = 1, reason: str = "bad_signature") -> Received:
    fields = {"node": "panel-1", "seq": seq, "body": body}
    return Received(f"edge/panel-1/{stream}", Verdict(valid, None if valid else reason, "", fields), False)


def test_view_shows_values_with_units_and_verified_marks():
    view = PlantView("mqtt://b", live=False)
    view.update(received("status", {"state": "online"}))
    view.update(received("host", {"cpu": {"percent": 12.0}, "memory": {"percent": 40.0},
                                  "clock": {"synchronized": True}}))
    view.update(received("modbus/plc-1", {"status": {"state": "online"}, "values": {"speed": 1450.25},
                                          "units": {"speed": "rpm"}}, seq=2))
    view.update(received("patches", {"status": "stale", "security_pending": 3, "upgradable": 9,
                                      "reboot_required": None}, seq=3))
    text = "\n".join(render(view, now=0.0))
    assert "node panel-1  [online]" in text
    assert "cpu 12%  mem 40%  clock synced" in text
    assert "device plc-1  [online]  speed=1450.25 rpm" in text
    assert "patch data stale  3 security updates pending  9 upgradable  reboot state unknown" in text
    assert text.count(VERIFIED) == 3
    assert view.verified == 4 and view.rejected == 0


def test_rejected_messages_are_marked_and_counted():
    view = PlantView("mqtt://b", live=False)
    view.update(received("modbus/plc-1", {"status": {"state": "online"}, "values": {"speed": 1}}, valid=False))
    text = "\n".join(render(view, now=0.0))
    assert f"{REJECTED} (bad_signature)" in text
    assert VERIFIED not in text
    assert view.rejected == 1


def test_a_duplicate_is_counted_apart_and_the_verified_message_stays() -> None:
    view = PlantView("mqtt://b", live=False)
    view.update(received("patches", {"status": "ok", "security_pending": 2, "upgradable": 5}, seq=7))
    view.update(received("patches", {"status": "ok", "security_pending": 2, "upgradable": 5}, seq=7,
                         valid=False, reason="duplicate"))
    text = "\n".join(render(view, now=0.0))
    assert (view.verified, view.rejected, view.duplicates) == (1, 0, 1)
    assert "rejected 0  duplicates ignored 1" in text
    assert VERIFIED in text and REJECTED not in text


def test_a_replay_stays_a_loud_rejection() -> None:
    view = PlantView("mqtt://b", live=False)
    view.update(received("patches", {"status": "ok"}, seq=7))
    view.update(received("patches", {"status": "ok"}, seq=7, valid=False, reason="replay"))
    text = "\n".join(render(view, now=0.0))
    assert view.rejected == 1 and view.duplicates == 0
    assert f"{REJECTED} (replay)" in text
