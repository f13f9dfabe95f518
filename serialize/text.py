"""The text envelope: the reference SDK's wire format, byte for byte.

A text payload is ``identifier + body`` where ``identifier`` is two characters and a
newline.  Several payloads travel together as ``pack_buffers`` output: each payload
prefixed with its length in characters and a newline, concatenated.  Binary bodies
travel base64-encoded (``freight.serialize.b64``).  This module only frames; it
never looks inside a body.
"""

from __future__ import annotations

from freight.serialize.errors import DeserializationError, UnknownStrategy

#: Two identifying characters and a newline.
IDENTIFIER_LENGTH = 3

# A length prefix longer than this many digits cannot describe a real payload and is
# refused before int() is asked to parse it (int() on a huge digit string is slow).
_MAX_LENGTH_DIGITS = 19


class PackedBuffersError(DeserializationError, ValueError):
    """``unpack_buffers`` was given malformed input.

    A ``DeserializationError`` like every decode failure, and a ``ValueError`` as
    the reference SDK's ``unpack_buffers`` raises, so code that catches either
    works.  Each message starts with the reference's phrase for the case
    (``Missing newline delimiter``, ``Invalid length delimiter``, ``Length
    delimiter must be non-negative``, ``Truncated buffer``) and then says where.
    """


def pack_buffers(buffers: list[str]) -> str:
    """Join payloads into one string: each as ``f"{len(payload)}\\n{payload}"``."""
    return "".join([f"{len(b)}\n{b}" for b in buffers])


def unpack_buffers(packed_buffer: str) -> list[str]:
    """Split ``pack_buffers`` output back into its payloads.

    Raises ``PackedBuffersError`` (a ``DeserializationError`` and a
    ``ValueError``) naming the offset of the problem on a missing delimiter, a
    non-numeric or negative length, or a length that runs past the end.
    """
    if not isinstance(packed_buffer, str):
        raise DeserializationError(
            f"packed buffers must be str, got {type(packed_buffer).__name__}"
        )
    unpacked: list[str] = []
    pos, end = 0, len(packed_buffer)
    while pos < end:
        newline = packed_buffer.find("\n", pos, pos + _MAX_LENGTH_DIGITS + 2)
        if newline < 0:
            raise PackedBuffersError(
                f"Missing newline delimiter: {_where(unpacked, pos)} has no newline"
                f" after the length prefix {_excerpt(packed_buffer[pos : pos + 24])}"
            )
        length_text = packed_buffer[pos:newline]
        if not (length_text.isascii() and length_text.isdigit()):
            if length_text.startswith("-") and length_text[1:].isdigit():
                raise PackedBuffersError(
                    "Length delimiter must be non-negative:"
                    f" {_where(unpacked, pos)} has a negative length"
                    f" {_excerpt(length_text)}"
                )
            raise PackedBuffersError(
                f"Invalid length delimiter {_excerpt(length_text)}:"
                f" {_where(unpacked, pos)} has a bad length; expected a non-negative"
                " decimal integer"
            )
        length = int(length_text)
        start = newline + 1
        if length > end - start:
            raise PackedBuffersError(
                f"Truncated buffer: {_where(unpacked, pos)} is truncated; its length"
                f" prefix says {length} characters but only {end - start} remain"
            )
        unpacked.append(packed_buffer[start : start + length])
        pos = start + length
    return unpacked


def bad_header_error(payload: str) -> DeserializationError:
    """The error for a ``payload`` whose header names no registered strategy:
    ``UnknownStrategy`` for a well-formed identifier, else a
    ``DeserializationError`` saying how the header is malformed."""
    reason = describe_bad_header(payload)
    header = payload[:IDENTIFIER_LENGTH]
    if len(header) == IDENTIFIER_LENGTH and header.find("\n") == 2:
        return UnknownStrategy(reason, identifier=header)
    return DeserializationError(reason)


def _where(unpacked: list[str], pos: int) -> str:
    return f"packed buffer {len(unpacked)} at offset {pos}"


def describe_bad_header(payload: str) -> str:
    """Explain why ``payload`` does not start with a well-formed identifier header."""
    if len(payload) < IDENTIFIER_LENGTH:
        return (
            f"payload too short for an identifier header: {len(payload)} characters"
            f" {_excerpt(payload)}"
        )
    header = payload[:IDENTIFIER_LENGTH]
    if header[-1] != "\n" or "\n" in header[:-1]:
        return (
            f"malformed identifier header {header!r}: expected two characters"
            " followed by a newline"
        )
    return f"unknown strategy identifier {header!r}"


def _excerpt(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
