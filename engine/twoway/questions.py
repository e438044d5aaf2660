"""Questions and answers shared by surveys and health notes: definition, checking, storage form.

Staff define questions (``Question``); a guardian's form values (text, as a page receives them)
are checked against them by ``check_answers``, which returns typed answers or raises
``AnswerError`` listing every problem in Japanese (with English), changing nothing.

Kinds: ``single`` (one option, stored as its index), ``multiple`` (option indexes), ``number``
(a head count or a temperature: ``Decimal`` within ``minimum``..``maximum``), ``text`` (free
words, at most ``max_length`` characters; sealed at rest by the callers).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from engine.platform.errors import InputError

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_QUESTIONS = 30
MAX_OPTIONS = 30


class QuestionKind(StrEnum):
    SINGLE = "single"
    MULTIPLE = "multiple"
    NUMBER = "number"
    TEXT = "text"


# An answer once checked: option index, option indexes, number or text.
Answer = int | tuple[int, ...] | Decimal | str


class AnswerError(InputError):
    """Answers that do not fit their questions; ``problems`` maps question key -> message."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__(
            "回答に不備があります (some answers are not valid): "
            + "; ".join(f"{k}: {m}" for k, m in problems.items())
        )


@dataclass(frozen=True)
class Question:
    key: str
    label: str
    kind: QuestionKind
    required: bool = False
    options: tuple[str, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    max_length: int = 1000
    # Extra fields a page may show (unit such as 人 or ℃); not interpreted here.
    unit: str = field(default="")

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "kind": self.kind.value,
            "required": self.required, "options": list(self.options),
            "minimum": None if self.minimum is None else str(self.minimum),
            "maximum": None if self.maximum is None else str(self.maximum),
            "max_length": self.max_length, "unit": self.unit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Question:
        return cls(
            key=data["key"], label=data["label"], kind=QuestionKind(data["kind"]),
            required=bool(data.get("required", False)), options=tuple(data.get("options", ())),
            minimum=None if data.get("minimum") is None else Decimal(data["minimum"]),
            maximum=None if data.get("maximum") is None else Decimal(data["maximum"]),
            max_length=int(data.get("max_length", 1000)), unit=str(data.get("unit", "")),
        )


def check_questions(questions: Sequence[Question]) -> None:
    """Refuse a question list staff cannot mean (InputError, in Japanese and English)."""
    if len(questions) > MAX_QUESTIONS:
        raise InputError(f"質問は {MAX_QUESTIONS} 個までです (at most {MAX_QUESTIONS} questions)")
    seen: set[str] = set()
    for q in questions:
        if not _KEY.match(q.key):
            raise InputError(
                f"質問のキー {q.key!r} は英小文字で始まる英数字と _ にしてください "
                "(a question key is a lower-case letter then letters, digits or _)"
            )
        if q.key in seen:
            raise InputError(f"質問のキー {q.key} が重複しています (duplicate question key)")
        seen.add(q.key)
        if not q.label.strip():
            raise InputError(f"質問 {q.key} の文がありません (question {q.key} has no text)")
        choice = q.kind in (QuestionKind.SINGLE, QuestionKind.MULTIPLE)
        if choice and not 2 <= len(q.options) <= MAX_OPTIONS:
            raise InputError(
                f"質問 {q.key} の選択肢は 2〜{MAX_OPTIONS} 個にしてください "
                f"(question {q.key} needs 2 to {MAX_OPTIONS} options)"
            )
        if choice and len(set(q.options)) != len(q.options):
            raise InputError(f"質問 {q.key} の選択肢が重複しています (duplicate options)")
        if not choice and q.options:
            raise InputError(f"質問 {q.key} に選択肢は不要です (only choices have options)")
        if q.minimum is not None and q.maximum is not None and q.minimum > q.maximum:
            raise InputError(f"質問 {q.key} の最小値が最大値より大きいです (minimum > maximum)")


def questions_json(questions: Sequence[Question]) -> str:
    return json.dumps([q.as_json() for q in questions], ensure_ascii=False)


def questions_from_json(text: str | list[Any]) -> list[Question]:
    data = json.loads(text) if isinstance(text, str) else text
    return [Question.from_json(d) for d in data]


def check_answers(
    questions: Sequence[Question], form: Mapping[str, str | Sequence[str]]
) -> dict[str, Answer]:
    """The form's answers, typed; unanswered optional questions are left out.

    ``form`` maps a question key to the submitted value: an option index ("0", "1" ...) for a
    single choice, a list of them for a multiple choice, digits for a number, words for text.
    Keys that are not questions are refused, so nothing unexpected is stored.
    """
    problems: dict[str, str] = {}
    known = {q.key for q in questions}
    for key in form:
        if key not in known:
            problems[str(key)[:40]] = "この質問はありません (no such question)"
    out: dict[str, Answer] = {}
    for q in questions:
        raw = form.get(q.key)
        values = [raw] if isinstance(raw, str) else list(raw or [])
        if q.kind is not QuestionKind.TEXT:
            # Phones send full-width digits (３７．５); free words are kept as written.
            values = [unicodedata.normalize("NFKC", v) for v in values]
        values = [v.strip() for v in values if v.strip()]
        if not values:
            if q.required:
                problems[q.key] = "回答が必要です (an answer is required)"
            continue
        try:
            out[q.key] = _one(q, values)
        except ValueError as exc:
            problems[q.key] = str(exc)
    if problems:
        raise AnswerError(problems)
    return out


def _one(q: Question, values: list[str]) -> Answer:
    if q.kind is QuestionKind.TEXT:
        text = "\n".join(values)
        if len(text) > q.max_length:
            raise ValueError(
                f"{q.max_length} 文字以内にしてください (at most {q.max_length} characters)"
            )
        return text
    if q.kind is QuestionKind.NUMBER:
        if len(values) != 1:
            raise ValueError("数を一つ入れてください (one number)")
        try:
            number = Decimal(values[0])
        except InvalidOperation:
            raise ValueError("数字で入れてください (not a number)") from None
        if not number.is_finite() or number.as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValueError("数字で入れてください (not a number)")
        if (q.minimum is not None and number < q.minimum) or (
            q.maximum is not None and number > q.maximum
        ):
            low = "" if q.minimum is None else q.minimum
            high = "" if q.maximum is None else q.maximum
            raise ValueError(f"{low}〜{high} の範囲で入れてください (out of range)")
        return number
    indexes: list[int] = []
    for v in values:
        if not v.isdigit() or int(v) >= len(q.options):
            raise ValueError("選択肢から選んでください (choose one of the options)")
        indexes.append(int(v))
    if q.kind is QuestionKind.SINGLE:
        if len(indexes) != 1:
            raise ValueError("一つだけ選んでください (choose exactly one)")
        return indexes[0]
    return tuple(sorted(set(indexes)))


def split_answers(answers: Mapping[str, Answer]) -> tuple[dict[str, Any], dict[str, str]]:
    """(choices and numbers as JSON values, free texts): the texts are to be sealed."""
    clear: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for key, value in answers.items():
        if isinstance(value, str):
            # Only the fact that it was answered stays in clear (it is counted).
            texts[key] = value
            clear[key] = True
        elif isinstance(value, Decimal):
            clear[key] = str(value)
        elif isinstance(value, tuple):
            clear[key] = list(value)
        else:
            clear[key] = value
    return clear, texts


def join_answers(
    questions: Sequence[Question], clear: Mapping[str, Any], texts: Mapping[str, str]
) -> dict[str, Answer]:
    """The typed answers back from their stored form."""
    out: dict[str, Answer] = {}
    for q in questions:
        if q.kind is QuestionKind.TEXT and q.key in texts:
            out[q.key] = texts[q.key]
        elif q.key in clear:
            value = clear[q.key]
            if q.kind is QuestionKind.NUMBER:
                out[q.key] = Decimal(value)
            elif q.kind is QuestionKind.MULTIPLE:
                out[q.key] = tuple(int(i) for i in value)
            else:
                out[q.key] = int(value)
    return out


def answer_text(q: Question, answer: Answer | None) -> str:
    """An answer as words for a CSV cell or a page: option labels, the number, the text."""
    if answer is None:
        return ""
    if isinstance(answer, tuple):
        return "、".join(q.options[i] for i in answer)
    if isinstance(answer, int):
        return q.options[answer]
    return str(answer)
