"""What ``read_number`` answers, as Python objects and as JSON, and its picture."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from .separators import KINDS

__all__ = ["DigitRead", "NumberResult", "Separator", "draw_number"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image's pixels


@dataclass
class DigitRead:
    label: str
    confidence: float
    box: Box
    probabilities: list[float] = field(default_factory=list)
    digit_score: float = 1.0  # how digit-like (models/_reject.py); 1.0 where none was asked


@dataclass
class Separator:
    kind: str  # one of separators.KINDS: "dash", "point", "comma", "slash", "colon"
    box: Box

    @property
    def text(self) -> str:
        return KINDS[self.kind]


@dataclass
class NumberResult:
    number: str  # the digits alone, a string: leading zeros survive
    confidence: float  # the product of the digits' confidences (0 with a problem)
    digits: list[DigitRead]
    text: str | None = None  # as written: digits, separators and spaces (None: the number)
    separators: list[Separator] = field(default_factory=list)
    skipped: list[Box] = field(default_factory=list)  # marks neither digits nor separators
    problem: str | None = None  # why the row cannot be read: then number, text are "", no digits

    def __post_init__(self) -> None:
        if self.text is None:
            self.text = self.number

    def to_json(self) -> dict:
        return {
            "number": self.number,
            "text": self.text,
            "confidence": self.confidence,
            "problem": self.problem,
            "digits": [
                {"label": d.label, "confidence": d.confidence, "box": list(d.box)}
                for d in self.digits
            ],
            "separators": [
                {"kind": s.kind, "text": s.text, "box": list(s.box)} for s in self.separators
            ],
            "skipped": [list(b) for b in self.skipped],
        }


DIGIT, SEPARATOR, SKIPPED = (220, 30, 30), (30, 90, 220), (140, 140, 140)


def draw_number(img: Image.Image, result: NumberResult, width: int = 800) -> Image.Image:
    """``img`` (shown as RGB, at most ``width`` wide) with each digit's box and label in
    red, each separator's in blue, each skipped mark's box in grey, and the problem (if
    any) written at the top."""
    from PIL import ImageDraw

    from .preprocess import for_display

    shown = for_display(img)
    k = min(1.0, width / shown.width)
    if k < 1:
        shown = shown.resize((round(shown.width * k), max(1, round(shown.height * k))))
    draw = ImageDraw.Draw(shown)

    def boxed(box: Box, colour, label: str | None) -> None:
        x0, y0, x1, y1 = (round(v * k) for v in box)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        if label:
            draw.text((x0 + 2, max(0, y0 - 12)), label, fill=colour)

    for d in result.digits:
        boxed(d.box, DIGIT, f"{d.label} {d.confidence:.0%}")
    for s in result.separators:
        boxed(s.box, SEPARATOR, s.text)
    for b in result.skipped:
        boxed(b, SKIPPED, "?")
    if result.problem:
        draw.text((4, 4), f"cannot read: {result.problem}", fill=DIGIT)
    return shown
