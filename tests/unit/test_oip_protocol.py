"""The Open Inference Protocol v2 codec: JSON and binary tensors, both directions, and
every malformed message refused with a line naming the tensor."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlperf_pilot.oip.protocol import (
    BINARY_TYPE,
    HEADER_LENGTH,
    JSON_TYPE,
    ProtocolError,
    datatype_of,
    decode_request,
    decode_response,
    dtype_of,
    encode_request,
    encode_response,
    error_body,
    header_length_of,
)

NUMERIC = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
           "FP16", "FP32", "FP64"]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_datatype_names_round_trip(datatype):
    assert datatype_of(dtype_of(datatype)) == datatype


def test_unknown_datatype_is_refused():
    with pytest.raises(ProtocolError, match="unknown datatype 'FP8'"):
        dtype_of("FP8")
    with pytest.raises(ProtocolError, match="complex"):
        datatype_of(np.complex64)


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(st.sampled_from([np.float32, np.float16, np.int64, np.uint8,
                                         np.bool_, np.int8, np.float64]),
                        hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)),
       binary=st.booleans())
def test_request_and_response_round_trip(array, binary):
    # JSON has no infinity (it is written null and read back NaN); binary carries it
    assume(binary or array.dtype.kind != "f" or not np.isinf(array).any())
    body, headers = encode_request([("input", array)], outputs=["logits"],
                                   binary_inputs=binary, binary_outputs=binary,
                                   request_id="r1")
    assert headers["Content-Type"] == (BINARY_TYPE if binary else JSON_TYPE)
    request = decode_request(body, header_length_of(headers))
    got = request.input("input")
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert request.id == "r1" and request.wants_binary("logits") is binary

    body, headers = encode_response("m", [("logits", array)], binary=binary,
                                    model_version="1", request_id="r1")
    response = decode_response(body, header_length_of(headers))
    assert (response.model_name, response.model_version, response.id) == ("m", "1", "r1")
    np.testing.assert_array_equal(response.output("logits"), array)


def test_binary_tensors_are_views_of_the_body_and_json_header_is_exact():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    body, headers = encode_request([("input", array)])
    length = int(headers[HEADER_LENGTH])
    header = orjson.loads(body[:length])
    assert header["inputs"][0]["parameters"] == {"binary_data_size": 96}
    assert header["parameters"] == {"binary_data_output": True}
    assert len(body) == length + 96
    got = decode_request(body, length).input("input")
    assert not got.flags.writeable  # a view into the body, no copy


def test_bytes_tensors_in_both_forms():
    strings = np.array([b"ab", b"", "x\u00e9".encode()], dtype=object)
    for binary in (True, False):
        body, headers = encode_request([("text", strings)], binary_inputs=binary)
        got = decode_request(body, header_length_of(headers)).input("text")
        assert list(got) == list(strings)


def test_mixed_binary_and_json_outputs():
    a, b = np.ones((2, 2), np.float32), np.arange(3, dtype=np.int64)
    body, headers = encode_response("m", [("a", a), ("b", b)], binary={"b"})
    header = orjson.loads(body[:int(headers[HEADER_LENGTH])])
    assert "data" in header["outputs"][0] and "data" not in header["outputs"][1]
    response = decode_response(body, header_length_of(headers))
    np.testing.assert_array_equal(response.output("a"), a)
    np.testing.assert_array_equal(response.output("b"), b)
    with pytest.raises(ProtocolError, match="'c' is not in the response"):
        response.output("c")


def _json(message):
    return orjson.dumps(message)


@pytest.mark.parametrize(("body", "length", "match"), [
    (b"{not json", None, "does not parse"),
    (b"[]", None, "not an object"),
    (_json({"inputs": {}}), None, "'inputs' is not a list"),
    (_json({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}), None, "no name"),
    (_json({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}),
     None, "input tensor 'x': 1 elements of data, but shape \\[2\\] holds 2"),
    (_json({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}),
     None, "input tensor 'x' has no valid shape"),
    (_json({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}),
     None, "'x' has neither 'data' nor binary_data_size"),
    (_json({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                        "data": ["a"]}]}), None, "'x': its data is not FP32"),
    (_json({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32",
                        "parameters": {"binary_data_size": 8}}]}) + b"\0" * 4,
     None, "runs past the body"),
])
def test_malformed_requests_name_the_problem(body, length, match):
    if length is None and b"binary_data_size" in body:
        length = body.index(b"}]}") + 3
    with pytest.raises(ProtocolError, match=match):
        decode_request(body, length)


def test_binary_size_must_match_the_shape_and_all_bytes_be_claimed():
    head = _json({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32",
                              "parameters": {"binary_data_size": 4}}]})
    with pytest.raises(ProtocolError, match="'x': 4 bytes of binary data, but shape"):
        decode_request(head + b"\0" * 4, len(head))
    head = _json({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                              "parameters": {"binary_data_size": 4}}]})
    with pytest.raises(ProtocolError, match="4 bytes of binary data follow"):
        decode_request(head + b"\0" * 8, len(head))


def test_header_length_values():
    assert header_length_of({}) is None
    assert header_length_of({HEADER_LENGTH.lower(): "12"}) == 12
    with pytest.raises(ProtocolError, match="not a number"):
        header_length_of({HEADER_LENGTH: "twelve"})
    with pytest.raises(ProtocolError, match="longer than the body"):
        decode_request(b"{}", 10)


def test_error_bodies():
    assert orjson.loads(error_body('bad "x"')) == {"error": 'bad "x"'}
    with pytest.raises(ProtocolError, match="the server answered an error: boom"):
        decode_response(error_body("boom"), None)


def test_json_cannot_carry_infinity_and_says_nan():
    body, _ = encode_response("m", [("y", np.array([np.inf, 1.0], np.float32))])
    got = decode_response(body, None).output("y")
    assert np.isnan(got[0]) and got[1] == 1.0  # read back NaN: the SUT counts it failed
