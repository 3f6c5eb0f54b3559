"""Byte-exact protocol tests: frames written out from DESIGN.md §7 as bytes literals, both directions."""

from __future__ import annotations

import pytest

from devices.scale import PROTOCOLS, mtsics, scp01, toledo8217
from devices.scale.parity import add_parity, strip_parity
from devices.scale.reading import to_kg
from devices.scale.sim.devices import ScaleState, make_responder

STX, CR = b"\x02", b"\r"


def decode_all(protocol: str, data: bytes, unit: str = "kg"):
    p = PROTOCOLS[protocol]
    parser = p.parser()
    return [p.decode(f, unit) for f in parser.feed(data)], parser


# -- Toledo 8217 -----------------------------------------------------------------------------------
def test_toledo8217_requests_and_line_settings() -> None:
    p = PROTOCOLS["toledo8217"]
    assert [p.request(c) for c in ("weight", "zero", "tare", "clear_tare")] == [b"W", b"Z", b"T", b"C"]
    assert (p.serial.baudrate, p.serial.bytesize, p.serial.parity, p.serial.stopbits) == (9600, 7, "E", 1)


def test_toledo8217_weight_frames_gross_and_net() -> None:
    assert toledo8217.encode_weight(4.08) == STX + b"004.080" + CR
    assert toledo8217.encode_weight(4.08, net=True) == STX + b"004.080N" + CR
    (gross, net), _ = decode_all("toledo8217", STX + b"004.080" + CR + STX + b"012.345N" + CR)
    assert gross.reading.weight_kg == 4.08 and not gross.reading.net and not gross.reading.motion
    assert net.reading.weight_kg == 12.345 and net.reading.net


def test_toledo8217_weight_in_pounds_is_normalised() -> None:
    (reply,), _ = decode_all("toledo8217", STX + b"001.000" + CR, unit="lb")
    assert reply.reading.weight_kg == pytest.approx(0.45359237) and reply.reading.unit == "lb"


@pytest.mark.parametrize(("bit", "field"), [(0, "motion"), (1, "overload"), (2, "underload"), (4, "zero"),
                                             (5, "net")])
def test_toledo8217_status_bits(bit: int, field: str) -> None:
    frame = STX + b"?" + bytes([0x40 | (1 << bit)]) + CR
    assert toledo8217.encode_status(1 << bit) == frame
    (reply,), _ = decode_all("toledo8217", frame)
    r = reply.reading
    assert r.weight_kg is None
    flags = {f: getattr(r, f) for f in ("motion", "overload", "underload", "zero", "net")}
    assert flags == {f: f == field for f in flags}


def test_toledo8217_outside_zero_range_bit() -> None:
    (reply,), _ = decode_all("toledo8217", STX + b"?H" + CR)  # 0x48: bit 3
    assert reply.reading.faults == ("outside_zero_range",)


def test_toledo8217_rejects_malformed_frames() -> None:
    replies, parser = decode_all("toledo8217", STX + b"04.080" + CR + STX + b"004,080" + CR + STX + b"?\x01" + CR)
    assert replies == [] and parser.garbage_bytes == 8 + 9 + 4


# -- MT-SICS ---------------------------------------------------------------------------------------
def test_mtsics_requests_and_line_settings() -> None:
    p = PROTOCOLS["mt-sics"]
    assert [p.request(c) for c in ("weight", "zero", "tare", "clear_tare")] == [b"SI\r\n", b"Z\r\n", b"T\r\n",
                                                                               b"TAC\r\n"]
    assert p.continuous_start() == b"SIR\r\n" and p.continuous_stop() == b"@\r\n"
    assert (p.serial.bytesize, p.serial.parity, p.serial.stopbits) == (8, "N", 1)


def test_mtsics_design_frame_both_directions() -> None:
    frame = b"S S     4.08 kg\r\n"  # DESIGN.md §7, verbatim
    assert mtsics.encode_weight(4.08, "kg", decimals=2) == frame
    (reply,), _ = decode_all("mt-sics", frame)
    assert reply.kind == "reading" and reply.reading.weight_kg == 4.08 and not reply.reading.motion


def test_mtsics_dynamic_grams_and_real_balance_padding() -> None:
    (dyn, padded, neg), _ = decode_all("mt-sics", b"S D     412 g\r\nS S      100.00 g\r\nS S   -0.050 kg\r\n")
    assert (dyn.reading.weight_kg, dyn.reading.motion, dyn.reading.unit) == (0.412, True, "g")
    assert padded.reading.weight_kg == 0.1
    assert neg.reading.weight_kg == -0.05 and neg.reading.negative


def test_mtsics_overload_underload_and_errors() -> None:
    replies, _ = decode_all("mt-sics", b"S +\r\nS -\r\nES\r\nET\r\nEL\r\nS I\r\n")
    over, under, es, et, el, busy = replies
    assert over.reading.overload and over.reading.weight_kg is None
    assert under.reading.underload
    assert [r.code for r in (es, et, el)] == ["ES", "ET", "EL"] and all(r.kind == "error" for r in (es, et, el))
    assert busy.kind == "ack" and not busy.ok and busy.command == "S"


def test_mtsics_command_answers() -> None:
    p = PROTOCOLS["mt-sics"]
    (z_ok, z_busy, tare, tac, serial), _ = decode_all(
        "mt-sics", b'Z A\r\nZ I\r\nT S    0.120 kg\r\nTAC A\r\nI4 A "0123456789"\r\n')
    assert p.answers("zero", z_ok) and p.command_ok("zero", z_ok)
    assert p.answers("zero", z_busy) and not p.command_ok("zero", z_busy)
    assert p.answers("tare", tare) and p.command_ok("tare", tare) and tare.reading.weight_kg == 0.12
    assert p.answers("clear_tare", tac) and p.command_ok("clear_tare", tac)
    assert serial.text == "0123456789"
    assert not p.answers("weight", z_ok)


# -- SCP-01 ----------------------------------------------------------------------------------------
def test_scp01_requests_and_line_settings() -> None:
    p = PROTOCOLS["scp01"]
    assert [p.request(c) for c in ("weight", "zero", "tare")] == [b"W\r", b"Z\r", b"T\r"]
    with pytest.raises(ValueError):
        p.request("clear_tare")
    assert (p.serial.bytesize, p.serial.parity) == (7, "E")


def test_scp01_design_frame_both_directions() -> None:
    frame = b"\n0001.26LB\r\n00\r\x03"  # DESIGN.md §7: LF 0001.26LB CR LF s1 s2 CR ETX, all status bits clear
    assert scp01.encode_weight(1.26, "LB", status=b"00") == frame
    (reply,), _ = decode_all("scp01", frame)
    r = reply.reading
    assert r.value == 1.26 and r.unit == "lb" and r.weight_kg == to_kg(1.26, "lb")
    assert not (r.motion or r.zero or r.overload or r.underload or r.net)


@pytest.mark.parametrize(("status", "field"), [(b"10", "motion"), (b"20", "zero"), (b"01", "underload"),
                                                (b"02", "overload")])
def test_scp01_status_bits(status: bytes, field: str) -> None:
    (reply,), _ = decode_all("scp01", b"\n0000.00KG\r\n" + status + b"\r\x03")
    flags = {f: getattr(reply.reading, f) for f in ("motion", "zero", "underload", "overload")}
    assert flags == {f: f == field for f in flags}


def test_scp01_third_status_byte_net_and_faults() -> None:
    (reply,), _ = decode_all("scp01", b"\n0000.50KG\r\n<t4\r\x03")  # s1 RAM+EEPROM, s2 ROM + more, s3 net
    r = reply.reading
    assert r.net and set(r.faults) == {"ram", "eeprom", "rom"}
    assert scp01.status_bytes(motion=True, net=True) == b"1p4"


def test_scp01_status_unknown_and_out_of_range() -> None:
    replies, _ = decode_all("scp01", b"\n10\r\x03" + b"\n?\r\x03" + b"\n^^^^^^^LB\r\n02\r\x03")
    status, unknown, over = replies
    assert status.reading.motion and status.reading.weight_kg is None
    assert unknown.kind == "error" and unknown.code == "?"
    assert over.reading.overload and over.reading.weight_kg is None


def test_scp01_rejects_inconsistent_status_bytes() -> None:
    # s2 announces a third byte that is missing; s1 with bit 6 set
    replies, parser = decode_all("scp01", b"\n0000.50KG\r\n0p\r\x03" + b"\n0000.50KG\r\np0\r\x03")
    assert replies == [] and parser.garbage_bytes > 0


# -- the simulator's device side -------------------------------------------------------------------
def test_responders_answer_byte_for_byte() -> None:
    state = ScaleState(gross_kg=0.412)
    assert make_responder("toledo8217", state).feed(b"W", 0) == [STX + b"000.412" + CR]
    state.motion = True
    # motion (bit 0) + outside the zero capture range (bit 3: 0.412 kg > 2 % of 15 kg)
    assert make_responder("toledo8217", state).feed(b"W", 0) == [STX + b"?I" + CR]
    assert make_responder("mt-sics", state).feed(b"SI\r\n", 0) == [b"S D    0.412 kg\r\n"]
    state.motion = False
    assert make_responder("mt-sics", state).feed(b"SI\r", 0) == []  # waits for the LF
    assert make_responder("mt-sics", state).feed(b"XYZ\r\nSI 1\r\n", 0) == [b"ES\r\n", b"EL\r\n"]
    lb = ScaleState(gross_kg=to_kg(1.26, "lb"), unit="lb")
    scp = make_responder("scp01", lb)
    assert scp.feed(b"W\r", 0) == [b"\n0001.26LB\r\n00\r\x03"]
    assert scp.feed(b"Q\r", 0) == [b"\n?\r\x03"]
    assert scp.feed(b"T\r", 0) == [b"\n2p4\r\x03"] and scp.feed(b"W\r", 0) == [b"\n0000.00LB\r\n2p4\r\x03"]


def test_responders_zero_tare_and_limits() -> None:
    state = ScaleState(gross_kg=0.2)
    t = make_responder("toledo8217", state)
    assert t.feed(b"T", 0) == [STX + b"?p" + CR]  # net (bit 5) + centre of zero (bit 4)
    assert t.feed(b"C", 0) == [STX + b"?@" + CR] and t.feed(b"W", 0) == [STX + b"000.200" + CR]
    state.gross_kg = 16.0
    m = make_responder("mt-sics", state)
    assert m.feed(b"SI\r\n", 0) == [b"S +\r\n"] and m.feed(b"Z\r\n", 0) == [b"Z +\r\n"]
    state.gross_kg = 0.05
    assert m.feed(b"Z\r\n", 0) == [b"Z A\r\n"] and m.feed(b"SI\r\n", 0) == [b"S S    0.000 kg\r\n"]


def test_software_parity_is_even_parity_in_bit_7() -> None:
    wire = add_parity(b"W\r", "E")
    assert wire == b"\xd7\x8d"  # 'W' 0x57 and CR 0x0D have an odd number of ones
    assert strip_parity(wire + b"\x57", "E") == (b"W\r", 1)


def test_units_we_cannot_convert_give_no_weight_and_a_fault() -> None:
    (ct, mg), _ = decode_all("mt-sics", b"S S    2.000 ct\r\nS S  412000 mg\r\n")
    assert ct.reading.weight_kg is None and ct.reading.faults == ("unknown_unit:ct",)
    assert mg.reading.weight_kg == 0.412
    (oz,), _ = decode_all("scp01", b"\n0016.00OZ\r\n00\r\x03")
    assert oz.reading.weight_kg == pytest.approx(0.45359237)
