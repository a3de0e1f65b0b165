"""Adapter helpers shared by the converters."""

from __future__ import annotations

from mlpack.bundle.frameworks import converter_reason


def test_converter_reason_keeps_the_first_line() -> None:
    boilerplate = ("Unable to find a shape calculator for type '<class 'HashingVectorizer'>'.\n"
                   "It usually means the pipeline being converted contains a\ntransformer or a predictor with no "
                   "corresponding converter\nimplemented in sklearn-onnx.\n")
    assert converter_reason(RuntimeError(boilerplate)) == "Unable to find a shape calculator for type '<class 'HashingVectorizer'>'."
    assert converter_reason(ValueError("\n\n  only tokenizer='word' is supported\nmore")) == "only tokenizer='word' is supported"


def test_converter_reason_of_an_empty_or_huge_message() -> None:
    assert converter_reason(KeyError()) == "KeyError"
    long = converter_reason(RuntimeError("x" * 5000), limit=50)
    assert len(long) == 50 and long.endswith("...")
