"""Property tests of the incremental frame parsers: garbage between frames and arbitrary chunking never
produce a wrong weight, never lose a frame, and every garbage byte is counted."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices.scale import PROTOCOLS, mtsics, scp01, toledo8217

grams = st.integers(min_value=0, max_value=99_999)  # 0.000 .. 99.999 kg in 1 g steps


def encode(protocol: str, g: int) -> bytes:
    kg = g / 1000
    if protocol == "toledo8217":
        return toledo8217.encode_weight(kg)
    if protocol == "mt-sics":
        return mtsics.encode_weight(kg, "kg")
    return scp01.encode_weight(kg, "KG", int_digits=3, decimals=3)


def frames_alone(protocol: str, data: bytes) -> int:
    parser = PROTOCOLS[protocol].parser()
    parser.feed(data)
    return parser.frames


def check(protocol: str, weights: list[int], garbage: list[bytes], cuts: list[int]) -> None:
    for g in garbage:
        assume(frames_alone(protocol, g) == 0)
    stream = b"".join(junk + encode(protocol, w) for junk, w in zip(garbage, weights))
    p = PROTOCOLS[protocol]
    parser = p.parser()
    decoded = []
    start = 0
    for cut in sorted({min(c, len(stream)) for c in cuts}) + [len(stream)]:
        decoded += [p.decode(f).reading.weight_kg for f in parser.feed(stream[start:cut])]
        start = cut
    assert decoded == [w / 1000 for w in weights]
    assert parser.garbage_bytes == sum(map(len, garbage)) and parser.pending == 0


@settings(max_examples=150, deadline=None)
@given(weights=st.lists(grams, min_size=1, max_size=6), data=st.data())
def test_toledo8217_garbage_never_yields_a_wrong_weight(weights: list[int], data: st.DataObject) -> None:
    garbage = data.draw(st.lists(st.binary(max_size=12), min_size=len(weights), max_size=len(weights)))
    cuts = data.draw(st.lists(st.integers(0, 200), max_size=8))
    check("toledo8217", weights, garbage, cuts)


@settings(max_examples=150, deadline=None)
@given(weights=st.lists(grams, min_size=1, max_size=6), data=st.data())
def test_mtsics_garbage_never_yields_a_wrong_weight(weights: list[int], data: st.DataObject) -> None:
    garbage = data.draw(st.lists(st.binary(max_size=12), min_size=len(weights), max_size=len(weights)))
    cuts = data.draw(st.lists(st.integers(0, 200), max_size=8))
    check("mt-sics", weights, garbage, cuts)


@settings(max_examples=150, deadline=None)
@given(weights=st.lists(grams, min_size=1, max_size=6), data=st.data())
def test_scp01_garbage_never_yields_a_wrong_weight(weights: list[int], data: st.DataObject) -> None:
    garbage = data.draw(st.lists(st.binary(max_size=12), min_size=len(weights), max_size=len(weights)))
    cuts = data.draw(st.lists(st.integers(0, 200), max_size=8))
    check("scp01", weights, garbage, cuts)


@settings(max_examples=100, deadline=None)
@given(protocol=st.sampled_from(sorted(PROTOCOLS)), w1=grams, w2=grams, data=st.data())
def test_a_cut_short_frame_is_garbage_and_the_next_frame_survives(protocol: str, w1: int, w2: int,
                                                                  data: st.DataObject) -> None:
    first = encode(protocol, w1)
    keep = data.draw(st.integers(1, len(first) - 1))
    p = PROTOCOLS[protocol]
    parser = p.parser()
    frames = parser.feed(first[:keep] + encode(protocol, w2))
    assert [p.decode(f).reading.weight_kg for f in frames] == [w2 / 1000]
    assert parser.garbage_bytes == keep
