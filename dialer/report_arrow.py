"""The contact report's columns decoded by Arrow's JSON reader instead of one Python dict per record.

Profiling the 1M-contact export showed most of its time in Python objects: ``orjson.loads``
of three records per contact, a list comprehension per column, converting the lists to
Arrow, and freeing it all. Here the raw records of a batch are joined into JSON lines and
parsed by Arrow against an explicit schema, and each report column is computed with Arrow
kernels, the same rules as ``reports._contact_columns`` (a missing or empty value falls back
to the next source, then to the default).

A batch whose records do not fit the schema (a number where text was expected, say) raises
``pa.ArrowInvalid``; the caller then builds that batch the Python way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

_STR = pa.string()
_INT = pa.int64()
_FLOAT = pa.float64()
_TURNS = pa.list_(pa.struct([("role", _STR), ("text", _STR)]))

STATUS_SCHEMA = pa.schema([
    ("outcome", _STR), ("state", _STR), ("attempts", _INT), ("dials", _INT), ("last_caller_id", _STR),
    ("last_sip_code", _INT), ("last_sip_status", _STR), ("last_reason", _STR), ("callbacks", _INT),
    ("callbacks_done", _INT), ("callback_skipped", _STR), ("first_attempt_at", _FLOAT),
    ("last_attempt_at", _FLOAT), ("answered_at", _FLOAT), ("talk_s", _FLOAT), ("sip_call_id", _STR),
    ("result", _STR), ("number_index", _INT), ("last_number", _STR),
])


#: A list read only for whether it is there (its items' fields are not read).
_PRESENT = pa.list_(pa.struct([]))


def contact_schema(variables: Sequence[str]) -> pa.Schema:
    return pa.schema([
        ("id", _INT), ("phone_e164", _STR), ("phone_raw", _STR), ("extension", _STR), ("number_type", _STR),
        ("time_zones", pa.list_(_STR)), ("variables", pa.struct([(name, _STR) for name in variables])),
        ("numbers", _PRESENT), ("dropped", _PRESENT),  # for ``several_numbers``
    ])


def result_schema(captured: Sequence[str]) -> pa.Schema:
    fields = [("disposition", _STR), ("notes", _STR), ("callback_at", _STR), ("answered_at", _FLOAT),
              ("talk_s", _FLOAT), ("sip_call_id", _STR), ("transcript", _TURNS)]
    if captured:
        fields.append(("captured", pa.struct([(name, _STR) for name in captured])))
    return pa.schema(fields)


def read_records(raws: Sequence[bytes], schema: pa.Schema) -> pa.Table:
    """One row per raw JSON object (``b"{}"`` for a missing one), typed by ``schema``."""
    if not raws:
        return schema.empty_table()
    data = b"\n".join(raws)
    options = pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    table = pa_json.read_json(pa.BufferReader(data), read_options=options, parse_options=parse)
    if table.num_rows != len(raws):
        raise pa.ArrowInvalid(f"{table.num_rows} rows parsed from {len(raws)} records")
    return table.combine_chunks()


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _given(values: pa.Array) -> pa.Array:
    """``values`` with "", 0 and 0.0 as null: what Python's ``or`` skips."""
    zero = "" if pa.types.is_string(values.type) else 0
    return pc.if_else(pc.equal(values, pa.scalar(zero, values.type)), pa.scalar(None, values.type), values)


def _first(*values: pa.Array, default: Any = None) -> pa.Array:
    """Per row, the first given value among ``values`` (Python's ``a or b or default``)."""
    merged = pc.coalesce(*(_given(v) for v in values))
    return merged if default is None else pc.fill_null(merged, pa.scalar(default, merged.type))


def _field(struct: pa.Array, name: str) -> pa.Array:
    return pc.struct_field(struct, name)


def transcript_text(turns: pa.Array, max_chars: int) -> pa.Array:
    """"role: text" lines of each transcript, cut to ``max_chars``; "" where there is none."""
    turn = turns.values  # every turn of the batch; ``turns.offsets`` says whose
    lines = pc.binary_join_element_wise(pc.fill_null(pc.struct_field(turn, "role"), ""), ": ",
                                        pc.fill_null(pc.struct_field(turn, "text"), ""), "")
    joined = pc.binary_join(pa.ListArray.from_arrays(turns.offsets, lines), "\n")
    text = pc.utf8_slice_codeunits(pc.fill_null(joined, ""), 0, max_chars)
    return pc.if_else(turns.is_null(), "", text)


def read_statuses(raws: Sequence[bytes | None]) -> pa.Table:
    return read_records([raw or b"{}" for raw in raws], STATUS_SCHEMA)


def result_rows(status: pa.Table) -> tuple[list[str], pa.Array]:
    """The call results a batch needs: their members (``status.result``, in row order) and, per
    row, the position of its result among them (null for a row without one), for ``take``."""
    members = status.column("result").combine_chunks()
    has = pc.fill_null(pc.not_equal(members, ""), False).to_numpy(zero_copy_only=False)
    positions = np.full(len(has), -1, dtype=np.int64)
    positions[has] = np.arange(int(has.sum()), dtype=np.int64)
    return members.filter(pa.array(has)).to_pylist(), pa.array(positions, mask=~has)


def read_contacts(raws: Sequence[bytes], source_columns: Sequence[str], phone_column: str) -> pa.Table:
    return read_records(raws, contact_schema([name for name in source_columns if name != phone_column]))


def several_numbers(contact: pa.Table) -> list[int]:
    """The rows of contacts with several numbers, or numbers left out at ingest (``read_contacts``):
    the kernels here assume one number, so ``reports`` recomputes the number columns of these."""
    listed = pc.or_(_column(contact, "numbers").is_valid(), _column(contact, "dropped").is_valid())
    return [int(row) for row in np.flatnonzero(listed.to_numpy(zero_copy_only=False))]


def contact_columns(*, source_columns: Sequence[str], phone_column: str, captured: Sequence[str],
                    contact: pa.Table, status: pa.Table, results: Sequence[bytes | None],
                    result_index: pa.Array, full_transcript: bool, transcript_chars: int) -> dict[str, pa.Array]:
    """The contact report's columns for one batch, in report order, as Arrow arrays.

    ``contact`` are the contacts that exist (``read_contacts``), ``status`` their statuses
    (``read_statuses``), ``results`` the raw call results the rows point at (None for one that
    is missing) and ``result_index`` each row's position in ``results`` (``result_rows``).
    """
    # Kept whole, the transcript is taken from the stored JSON below: Arrow need not parse its turns.
    schema = result_schema(captured)
    if full_transcript:
        schema = schema.remove(schema.get_field_index("transcript"))
    records = [raw or b"{}" for raw in results]
    result = read_records(records, schema).take(result_index)
    if not contact.num_rows == status.num_rows == result.num_rows:
        raise pa.ArrowInvalid("contacts, statuses and results of a batch differ in length")
    bag = _column(contact, "variables")
    columns: dict[str, pa.Array] = {"contact_id": _column(contact, "id")}
    for name in source_columns:
        values = _column(contact, "phone_raw") if name == phone_column else _field(bag, name)
        columns[name] = pc.fill_null(values, "")
    st = {name: _column(status, name) for name in STATUS_SCHEMA.names}
    rs = {name: _column(result, name) for name in result.column_names}
    e164, extension = _column(contact, "phone_e164"), pc.fill_null(_column(contact, "extension"), "")
    # One number per contact here; ``reports`` recomputes these four for contacts with several.
    used = pc.if_else(pc.greater(pc.fill_null(st["dials"], 0), 0), _first(st["last_number"], e164, default=""), "")
    columns.update({
        "phone_e164": e164,
        "extension": extension,
        "phones": pc.binary_join_element_wise(
            e164, pc.if_else(pc.equal(extension, ""), "", pc.binary_join_element_wise("x", extension, "")), ""),
        "numbers_dropped": pa.nulls(contact.num_rows, _STR).fill_null(""),
        "number_type": pc.fill_null(_column(contact, "number_type"), ""),
        "time_zones": pc.fill_null(pc.binary_join(_column(contact, "time_zones"), " "), ""),
        "outcome": _first(st["outcome"], st["state"], default="pending"),
        "number_index": pc.if_else(pc.equal(used, e164), pa.scalar(1, _INT), pa.scalar(None, _INT)),
        "phone_used": used,
        "attempts": pc.fill_null(st["attempts"], 0),
        "dials": pc.fill_null(st["dials"], 0),
        "caller_id": _first(st["last_caller_id"], default=""),
        "last_sip_status": st["last_sip_code"],
        "last_sip_reason": _first(st["last_sip_status"], st["last_reason"], default=""),
        "disposition": _first(rs["disposition"], default=""),
        "notes": _first(rs["notes"], default=""),
    })
    for name in captured:
        columns[f"captured_{name}"] = pc.fill_null(_field(rs["captured"], name), "")
    columns.update({
        "callback_at": _first(rs["callback_at"], default=""),
        "callbacks_scheduled": pc.fill_null(st["callbacks"], 0),
        "callbacks_done": pc.fill_null(st["callbacks_done"], 0),
        "callback_skipped": _first(st["callback_skipped"], default=""),
        "first_attempt_at": st["first_attempt_at"],
        "last_attempt_at": st["last_attempt_at"],
        "answered_at": _first(st["answered_at"], rs["answered_at"]),
        "talk_s": _first(st["talk_s"], rs["talk_s"], default=0.0),
        "sip_call_id": _first(st["sip_call_id"], rs["sip_call_id"], default=""),
    })
    if full_transcript:  # the turns exactly as stored, as JSON text; "[]" where there are none
        texts = pa.array([orjson.dumps(orjson.loads(raw).get("transcript") or []).decode() for raw in records], _STR)
        columns["transcript"] = texts.take(result_index).fill_null("[]")
    else:
        columns["transcript"] = transcript_text(rs["transcript"], transcript_chars)
    return columns
