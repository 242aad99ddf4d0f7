"""What a caller consented to: the scope, checked against the agent, and the exact words."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from agents.models import Agent, ConsentText


def consent_text_for(agent: Agent) -> ConsentText:
    """The current version of the agent's consent prompt, written the first time it is shown.

    Concurrent first callers may race to write the same version: the unique constraint
    keeps one, and the loser reads it.
    """
    latest = agent.consent_texts.order_by("-version").first()
    if latest is not None and latest.text == agent.consent_prompt:
        return latest
    version = (latest.version + 1) if latest is not None else 1
    try:
        with transaction.atomic():
            return ConsentText.objects.create(
                agent=agent, version=version, text=agent.consent_prompt
            )
    except IntegrityError:
        return agent.consent_texts.get(version=version)
