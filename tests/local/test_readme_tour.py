"""README's five-minute tour: its code, run as written against the demo on a real Daphne."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path

import pytest

from dashboard.management.commands.seed_demo import seed_demo
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_code() -> str:
    text = README.read_text()
    tour = text[text.index("## A five-minute tour") :]
    tour = tour[: tour.index("\n## ", 1)]
    [block] = re.findall(r"```python\n(.*?)```", tour, re.DOTALL)
    return textwrap.dedent(block)


def test_the_tours_code_hears_the_greeting_and_the_answer() -> None:
    demo = seed_demo()
    with daphne_server(KOE_LOCAL_WARM_UP="1") as base:
        code = (
            tour_code()
            .replace("sk_...", demo["secret_key"])
            .replace("agt_...", demo["agent_id"])
            .replace("http://127.0.0.1:8000", base)
        )
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})

    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("Hello, you've reached Koe Bistro")  # the greeting
    assert len(lines) == 2, lines  # then the answer to the typed question, and it stops
    assert "sunday" in lines[1].lower() or "open" in lines[1].lower(), lines[1]
