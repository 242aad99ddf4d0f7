"""What a caller consented to: the scope, checked against the agent, and the exact words."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from agents.models import Agent, ConsentText

# Shown (and recorded) when an agent's own consent prompt is blank: a caller is never asked
# to answer a question that was not put to them, and the call keeps the words they read.
# The choices themselves (record and transcribe, transcript only, no) are the widget's buttons.
DEFAULT_CONSENT_TEXT = (
    "You are about to talk with an automated assistant. Please choose whether we may keep "
    "a transcript of this call (and, where offered, a recording of it)."
)


def prompt_shown(agent: Agent) -> str:
    """The words a caller is asked: the agent's prompt, or the platform's default if blank."""
    return agent.consent_prompt if agent.consent_prompt.strip() else DEFAULT_CONSENT_TEXT


def consent_text_for(agent: Agent) -> ConsentText:
    """The current version of the agent's consent prompt, written the first time it is shown.

    Concurrent first callers may race to write the same version: the unique constraint
    keeps one, and the loser reads it.
    """
    text = prompt_shown(agent)
    latest = agent.consent_texts.order_by("-version").first()
    if latest is not None and latest.text == text:
        return latest
    version = (latest.version + 1) if latest is not None else 1
    try:
        with transaction.atomic():
            return ConsentText.objects.create(agent=agent, version=version, text=text)
    except IntegrityError:
        return agent.consent_texts.get(version=version)
